"""CSV files, PNG plots and ``report.md`` of a study run."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fileio import atomic_path, atomic_write_text

_STATS = ("lcc", "srcc", "krcc")


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as CSV text; ``None`` and NaN become empty cells."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else
                        (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in r.items()})
    return buf.getvalue()


def variant_rows(variants: dict) -> list[dict[str, Any]]:
    """One row per encoded variant: video, name, CRF, cap, measured bitrate, frames."""
    return [{"video": video, "variant": v.name, "crf": v.crf, "cap_bpp": v.cap_bpp,
             "maxrate_kbps": None if v.maxrate_kbps is None else round(v.maxrate_kbps, 3),
             "bitrate_kbps": round(v.bitrate_kbps, 3), "frames": v.frames}
            for video, vs in variants.items() for v in vs]


def frames_csv(frames: dict[str, dict[str, dict[str, np.ndarray]]]) -> str:
    """Per-frame values of every metric: video, variant, frame, then one column per metric."""
    rows = []
    for video, by_var in frames.items():
        for name, arrs in by_var.items():
            cols = [k for k in arrs if k != "frame_indices"]
            for i, f in enumerate(arrs["frame_indices"]):
                rows.append({"video": video, "variant": name, "frame": int(f),
                             **{c: float(arrs[c][i]) for c in cols}})
    return rows_to_csv(rows)


def _higher_better(col: str) -> bool:
    from ..baselines import BASELINES

    if col.startswith("dctqa"):
        return False
    if col == "psnr_global":
        return True
    return BASELINES[col].higher_is_better


def _fmt(r, lo, hi) -> str:
    if r is None:
        return "n/a"
    return f"{r:+.3f} [{lo:+.2f}, {hi:+.2f}]" if lo is not None else f"{r:+.3f}"


def _plots(result, cfg, plot_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for r in result.windows if r["ap50"] is not None]
    cols = result.metric_columns
    crfs = sorted({int(r["crf"]) for r in result.windows})
    videos = list(dict.fromkeys(r["video"] for r in result.windows))
    markers = "os^vD<>p*h"
    cmap = plt.get_cmap("viridis")
    names = []

    ncol = 4
    nrow = math.ceil(len(cols) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        for vi, video in enumerate(videos):
            sub = [r for r in rows if r["video"] == video]
            ax.scatter([r[col] for r in sub], [r["ap50"] for r in sub], s=10, marker=markers[vi % len(markers)],
                       c=[cmap(crfs.index(int(r["crf"])) / max(1, len(crfs) - 1)) for r in sub], alpha=0.7,
                       label=video)
        ax.set_xlabel(col)
        ax.set_ylabel("AP50")
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("AP50 per window against each metric's window mean (colour: CRF, dark = low)")
    fig.tight_layout()
    names.append("ap50_vs_metrics.png")
    _save(fig, plot_dir / names[-1])
    plt.close(fig)

    panels = ["ap50", "ap"] + list(cols)
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.0 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, panels):
        for vi, video in enumerate(videos):
            means, stds = [], []
            for c in crfs:
                v = np.array([r[col] for r in result.windows if r["video"] == video and int(r["crf"]) == c
                              and r[col] is not None], dtype=np.float64)
                v = v[~np.isnan(v)]
                means.append(v.mean() if v.size else np.nan)
                stds.append(v.std() if v.size else np.nan)
            ax.errorbar(crfs, means, yerr=stds, marker=markers[vi % len(markers)], capsize=3, label=video)
        ax.set_xlabel("CRF")
        ax.set_title(col, fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Per-CRF mean over windows and variants (bars: one standard deviation)")
    fig.tight_layout()
    names.append("per_crf.png")
    _save(fig, plot_dir / names[-1])
    plt.close(fig)
    return names


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=70)


def verdict_lines(corr: Sequence[dict], primary: str, others: Sequence[str], target: str = "ap50",
                  stat: str = "srcc") -> list[str]:
    """Plain statements: in each subset, is ``primary``'s sign-adjusted ``stat`` (srcc, lcc or
    krcc) above each of ``others``?

    Sign-adjusted: a lower-is-better metric's correlation is negated so that larger always
    means "tracks detection performance in the expected direction".
    """
    lines = []
    by = {(c["subset"], c["target"], c["metric"]): c for c in corr}
    for subset in dict.fromkeys(c["subset"] for c in corr):
        p = by.get((subset, target, primary))
        if p is None or p[stat] is None:
            lines.append(f"- **{subset}**: {primary} has no {stat.upper()} here ({p['notes'] if p else 'missing'}).")
            continue
        sp = 1 if _higher_better(primary) else -1
        ps = sp * p[stat]
        plo, phi = sorted((sp * p[f"{stat}_lo"], sp * p[f"{stat}_hi"])) if p[f"{stat}_lo"] is not None else (None, None)
        parts = []
        for o in others:
            c = by.get((subset, target, o))
            if c is None or c[stat] is None:
                parts.append(f"{o}: n/a")
                continue
            so = 1 if _higher_better(o) else -1
            os_ = so * c[stat]
            olo, ohi = sorted((so * c[f"{stat}_lo"], so * c[f"{stat}_hi"])) if c[f"{stat}_lo"] is not None else (None, None)
            word = "beats" if ps > os_ + 1e-9 else "ties with" if abs(ps - os_) <= 1e-9 else "does not beat"
            overlap = (plo is not None and olo is not None and not (plo > ohi or olo > phi))
            parts.append(f"{word} {o} ({ps:+.3f} vs {os_:+.3f}{', intervals overlap' if overlap else ', intervals disjoint'})")
        lines.append(f"- **{subset}** (n={p['n']}): {primary} " + "; ".join(parts) + ".")
    return lines


def write_report(result, cfg, cache) -> Path:
    """Write ``report.md`` (and the plots) under ``cfg.out``; returns its path."""
    out = Path(cfg.out)
    plots = _plots(result, cfg, out / "plots")
    cols = result.metric_columns
    dctqa_cols = [c for c in cols if c.startswith("dctqa")]
    primary = dctqa_cols[0] if dctqa_cols else None
    L: list[str] = []
    L += ["# dctqa study: does the metric track object-detection AP under H.264 compression?", ""]
    if cfg.command:
        L += ["Command:", "", "```", cfg.command, "```", ""]
    enc = cfg.encode
    L += ["## Setup", "",
          f"- Videos: {', '.join(v.name for v in cfg.videos)}. These sources are already compressed once; "
          "their decoded frames are treated as the reference and compressed again.",
          f"- Variants: CRF {list(enc.crfs)}; uncapped{'' if enc.include_uncapped else ' (off)'} plus VBV caps "
          + (f"{list(enc.caps_kbps)} kbit/s" if enc.caps_kbps is not None else
             f"{list(enc.cap_bpp)} bit/pixel/frame (cap = bpp x W x H x fps)")
          + f"; x264 preset {enc.preset}, GOP {enc.gop or 'x264 default (250)'}, VBV buffer {enc.bufsize_s} s, yuv420p.",
          f"- Detector: `{getattr(cfg.detector, 'name', cfg.detector)}` on every frame f with f mod {cfg.frame_stride} = 0; pseudo ground truth = its detections "
          f"on the reference with score >= {cfg.gt_score_threshold}. AP50 and AP@[.5:.95] (faster-coco-eval) per "
          f"non-overlapping window of {cfg.window} source frames; windows without ground truth are left out.",
          f"- Metrics scored on frames f mod {cfg.metric_stride} = 0 and averaged per window: "
          + ", ".join(f"`{c}`" for c in cols) + ". dctqa columns are lower-is-better (Q = 1 for identical frames).",
          "- Baselines follow shared/docs/BASELINES.md. The paper's no-reference indicators come from AGH's closed "
          "binaries whose formulas are not public; blockiness, blur (Marziliano, threshold 2 x mean |Sobel_x|), "
          "noise (Immerkaer) and contrast (RMS) use published definitions instead.",
          f"- Correlations: Pearson LCC, Spearman SRCC, Kendall KRCC (tau-b) of the window means with AP, each "
          f"with a percentile bootstrap 95 % interval ({cfg.n_boot} resamples, seed {cfg.seed}).", ""]
    n_rows = len(result.windows)
    n_nogt = sum(1 for r in result.windows if r["ap50"] is None)
    L += [f"Windows: {n_rows} (video x variant x window), of which {n_nogt} without ground truth.", ""]

    L += ["## Variants and bitrates (kbit/s, measured on the encoded stream)", ""]
    videos = list(result.variants)
    crfs = sorted({v.crf for vs in result.variants.values() for v in vs})
    for video in videos:
        vs = result.variants[video]
        caps = list(dict.fromkeys(v.maxrate_kbps for v in vs))
        L += [f"**{video}**", "", "| CRF | " + " | ".join("uncapped" if c is None else f"cap {c:.0f}" for c in caps)
              + " |", "|---|" + "---|" * len(caps)]
        for crf in crfs:
            cells = []
            for c in caps:
                m = [v for v in vs if v.crf == crf and v.maxrate_kbps == c]
                cells.append(f"{m[0].bitrate_kbps:.1f}" if m else "")
            L.append(f"| {crf} | " + " | ".join(cells) + " |")
        L.append("")

    L += ["## Mean AP50 / AP per CRF (over windows with ground truth and all caps)", "",
          "| video | " + " | ".join(f"CRF {c}" for c in crfs) + " |", "|---|" + "---|" * len(crfs)]
    for video in videos:
        cells = []
        for c in crfs:
            a = [r for r in result.windows if r["video"] == video and r["crf"] == c and r["ap50"] is not None]
            cells.append(f"{np.mean([r['ap50'] for r in a]):.3f} / {np.mean([r['ap'] for r in a]):.3f}" if a else "")
        L.append(f"| {video} | " + " | ".join(cells) + " |")
    L.append("")

    if primary:
        others = [c for c in ("psnr", "psnr_global", "ssim") if c in cols]
        comp = others + [c for c in dctqa_cols if c != primary]
        L += ["## Verdict (computed from the tables below)", "",
              "Sign-adjusted correlations (lower-is-better metrics negated, so higher = tracks detection "
              f"better) of the primary metric `{primary}` against the others; 'intervals overlap' means the two "
              "bootstrap 95 % intervals overlap, i.e. the difference is not clear-cut.", ""]
        for target in ("ap50", "ap"):
            for stat in ("srcc", "lcc"):
                L += [f"**{stat.upper()} with {target.upper()}**:", ""]
                L += verdict_lines(result.correlations, primary, comp, target, stat)
                L.append("")
    L += ["## Correlation tables", "", "Each cell: estimate [95 % bootstrap interval]; n = windows used.", ""]
    for target in ("ap50", "ap"):
        for subset in dict.fromkeys(c["subset"] for c in result.correlations):
            sub = [c for c in result.correlations if c["subset"] == subset and c["target"] == target]
            if not sub:
                continue
            L += [f"### {target.upper()} — {subset} (n = {sub[0]['n']}, windows without GT left out: "
                  f"{sub[0]['n_no_gt']})", "", "| metric | better | LCC | SRCC | KRCC |", "|---|---|---|---|---|"]
            for c in sub:
                L.append(f"| {c['metric']} | {'higher' if _higher_better(c['metric']) else 'lower'} | "
                         + " | ".join(_fmt(c[s], c[f'{s}_lo'], c[f'{s}_hi']) for s in _STATS) + " |")
            notes = [c["notes"] for c in sub if c.get("notes")]
            if notes:
                L.append("")
                L.append("Notes: " + "; ".join(dict.fromkeys(notes)))
            L.append("")

    L += ["## Plots", ""] + [f"![{p}](plots/{p})" for p in plots] + [""]

    L += ["## Where the time goes (seconds)", "",
          "`computed` = time the results took when first computed (also for results reused from the cache); "
          "`this run` = time spent in this run.", "", "| part | computed | this run |", "|---|---|---|"]
    for part, t in result.timings.items():
        comp = t["computed_s"]
        L.append(f"| {part} | {'' if comp != comp else f'{comp:.1f}'} | {t['this_run_s']:.1f} |")
    L += ["", "Stage cache: " + ", ".join(f"{s}: {cache.hits.get(s, 0)} reused, {cache.misses.get(s, 0)} computed"
                                          for s in sorted(set(cache.hits) | set(cache.misses))), ""]
    L += ["Files: `windows.csv` (one row per video x variant x window), `correlations.csv`, `variants.csv`, "
          "`frames.csv` (per-frame values).", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L))
    return path
