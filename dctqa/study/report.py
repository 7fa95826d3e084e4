"""CSV files, PNG plots and ``report.md`` of a study run."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fileio import atomic_path, atomic_write_text
from ..log import csv_text
from .analysis import higher_is_better, is_cut_short
from .detect.categories import class_names

_STATS = ("lcc", "srcc", "krcc")


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as the study's CSV text: the core's one writer
    (:func:`dctqa.log.csv_text`) with floats to 6 significant digits, ``\n`` line ends, and
    ``""`` for no rows; ``None`` and non-finite numbers become empty cells."""
    return csv_text(rows, float_format=".6g", lineterminator="\n", empty_ok=True)


def _stat_columns() -> tuple[str, ...]:
    return tuple(c for k in _STATS for c in (k, f"{k}_lo", f"{k}_hi"))


#: The columns of each study table, in order: the header written when a table has no rows
#: (a CSV file is never empty). ``windows`` and ``frames`` add the run's metric columns.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "windows": ("video", "variant", "crf", "maxrate_kbps", "cap_bpp", "bitrate_kbps", "window_start", "window_end",
                "window_frames", "n_det_frames", "n_metric_frames", "n_gt", "ap50", "ap"),
    "correlations": ("subset", "target", "metric", "n", "n_clusters", "resampling", "notes") + _stat_columns(),
    "within": ("view", "subset", "target", "metric", "n_groups", "n_undefined") + _stat_columns(),
    "differences": ("view", "subset", "target", "stat", "metric", "baseline", "diff", "lo", "hi", "verdict",
                    "resampling", "n_clusters"),
    "sensitivity": ("gt_score", "pred_score", "target", "baseline", "share_ap_1", "n", "n_few_gt", "srcc_primary",
                    "srcc_baseline", "diff", "lo", "hi", "verdict", "within_diff", "within_lo", "within_hi"),
    "variants": ("video", "variant", "crf", "cap_bpp", "maxrate_kbps", "bitrate_kbps", "frames"),
    "frames": ("video", "variant", "frame"),
}


def table_csv(name: str, rows: Sequence[dict[str, Any]], metric_columns: Sequence[str] = ()) -> str:
    """The CSV text of study table ``name`` (a key of :data:`TABLE_COLUMNS`): :func:`rows_to_csv`,
    or, without rows, the header alone (its columns, then ``metric_columns`` for ``windows``
    and ``frames``, and the duplicate marks for ``windows``), never an empty file."""
    if rows:
        return rows_to_csv(rows)
    cols = list(TABLE_COLUMNS[name])
    if name in ("windows", "frames"):
        cols += list(metric_columns) + (["duplicate_of", "duplicate_reason"] if name == "windows" else [])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cols)
    return buf.getvalue()


def variant_rows(variants: dict) -> list[dict[str, Any]]:
    """One row per encoded variant: video, name, CRF, cap, measured bitrate, frames."""
    return [{"video": video, "variant": v.name, "crf": v.crf, "cap_bpp": v.cap_bpp,
             "maxrate_kbps": None if v.maxrate_kbps is None else round(v.maxrate_kbps, 3),
             "bitrate_kbps": round(v.bitrate_kbps, 3), "frames": v.frames}
            for video, vs in variants.items() for v in vs]


def frames_csv(frames: dict[str, dict[str, dict[str, np.ndarray]]], metric_columns: Sequence[str] = ()) -> str:
    """Per-frame values of every metric: video, variant, frame, then one column per metric (the
    header alone, with ``metric_columns``, when there is no frame)."""
    rows = []
    for video, by_var in frames.items():
        for name, arrs in by_var.items():
            cols = [k for k in arrs if k != "frame_indices"]
            for i, f in enumerate(arrs["frame_indices"]):
                rows.append({"video": video, "variant": name, "frame": int(f),
                             **{c: float(arrs[c][i]) for c in cols}})
    return table_csv("frames", rows, metric_columns)


def _fmt(r, lo, hi) -> str:
    if r is None:
        return "n/a"
    return f"{r:+.3f} [{lo:+.2f}, {hi:+.2f}]" if lo is not None else f"{r:+.3f}"


def _plots(result, cfg, plot_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    rows = (result.analysis.selection.rows if result.analysis is not None
            else [r for r in result.windows if r["ap50"] is not None])
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
                              and r[col] is not None and not is_cut_short(r)], dtype=np.float64)
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


#: The paper's Tables 1 and 2: the measures in its row order (our stand-ins for its no-reference
#: indicators) and the subsets with the part of the paper's table each is (Table 1: all windows;
#: Table 2: CRF 35/41/47 on top, CRF 41/47 below).
PAPER_ROWS = ("contrast", "noise", "blur", "psnr", "blockiness", "ssim")
PAPER_SUBSETS = (("Table 1", "all"), ("Table 2", "crf 35,41,47"), ("Table 2", "crf 41,47"))
_PAPER_PART = {"all": "Table 1", "crf 35,41,47": "Table 2, top", "crf 41,47": "Table 2, bottom"}
#: The paper's own Tables 1 and 2 as printed (Beniwal, Mantini & Shah, VISAPP 2022; copied
#: from the shared data folder's ../shared/docs/PAPER-TABLES.md): (LCC, SRCC, KRCC) with its one AP per
#: 100-frame window (Faster R-CNN, its 11 videos), keyed by our subset name and our row name;
#: "primary" is its proposed metric (the spectral domain on Faster R-CNN's conv1). The paper
#: prints every correlation as a positive number; kept as the printed text (its digits). Shown in columns
#: of their own, never mixed into ours.
PAPER_NUMBERS: dict[str, dict[str, tuple[str, str, str]]] = {
    "all": {  # Table 1
        "contrast": ("0.050", "0.180", "0.168"), "noise": ("0.102", "0.074", "0.047"),
        "blur": ("0.221", "0.143", "0.089"), "psnr": ("0.627", "0.695", "0.508"),
        "blockiness": ("0.627", "0.670", "0.491"), "ssim": ("0.650", "0.614", "0.440"),
        "primary": ("0.701", "0.693", "0.503")},
    "crf 35,41,47": {  # Table 2, top
        "contrast": ("0.015", "0.147", "0.138"), "noise": ("0.089", "0.066", "0.044"),
        "blur": ("0.160", "0.141", "0.089"), "psnr": ("0.564", "0.604", "0.431"),
        "blockiness": ("0.514", "0.570", "0.403"), "ssim": ("0.549", "0.527", "0.431"),
        "primary": ("0.626", "0.640", "0.447")},
    "crf 41,47": {  # Table 2, bottom
        "contrast": ("0.026", "0.111", "0.106"), "noise": ("0.102", "0.041", "0.021"),
        "blur": ("0.044", "0.045", "0.027"), "psnr": ("0.427", "0.461", "0.320"),
        "blockiness": ("0.307", "0.390", "0.262"), "ssim": ("0.378", "0.375", "0.25"),
        "primary": ("0.498", "0.511", "0.337")},
}


_VIEW_QUESTION = {
    "pooled": "all windows of a subset on one scale: *which clips, across cameras, will the detector do "
              "worst on?* (a fleet operator's question)",
    "content window": "variants of one content window (same video and frames) ranked against each other, "
                      "averaged over content windows: *which encoder setting hurts this scene most?* "
                      "(someone tuning one camera)",
    "video": "the windows of one video ranked, averaged over videos: *which stretches of this camera's "
             "footage will suffer?*",
}


_VIEW_TITLE = {"pooled": "Pooled view", "content window": "Within content window", "video": "Within video"}


def _ci(r, lo, hi, digits: int = 3) -> str:
    if r is None:
        return "n/a"
    return (f"{r:+.{digits}f} [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None
            else f"{r:+.{digits}f}")


def _signed(rec: dict, stat: str) -> tuple:
    """Sign-adjusted (estimate, lo, hi) of a correlation record."""
    from .analysis import sign

    sg = sign(rec["metric"])
    r, lo, hi = rec[stat], rec[f"{stat}_lo"], rec[f"{stat}_hi"]
    if r is None:
        return None, None, None
    if lo is None or hi is None:
        return sg * r, None, None
    lo, hi = sorted((sg * lo, sg * hi))
    return sg * r, lo, hi


def _resampling_words(resampling: str) -> str:
    return {"content": "content windows resampled (all variants of a video x window move together)",
            "video": "whole videos resampled",
            "window": "single windows resampled as if independent (overconfident: variants of one scene are "
                      "not independent)"}[resampling]


def _selection_lines(a) -> list[str]:
    from .analysis import share_perfect

    sel = a.selection
    used = sel.rows
    scored = [r for r in a.rows if r["ap50"] is not None]
    return [
        "## Which windows count", "",
        f"- Windows: {sel.n_total} (video x variant x window); cut short (the last window of a video whose "
        f"length is not a multiple of the window, `window_frames` in windows.csv), left out: {sel.n_cut_short}; "
        f"without ground truth: {sel.n_no_gt}.",
        f"- Fewer than {sel.min_gt} ground-truth boxes (`--min-gt`): {sel.n_few_gt} windows "
        f"({sel.n_content_few_gt} content windows x their variants), left out.",
        f"- Duplicates of the uncapped variant among the {sel.n_capped} capped windows: {sel.n_duplicates} "
        f"({sel.n_dup_identical} identical to the uncapped window, {sel.n_dup_bitrate} more in variants whose "
        f"bitrate is within {a.settings.dup_tolerance:.0%} of the uncapped one); "
        + ("kept (`--keep-duplicates`)." if sel.keep_duplicates else "left out (`--keep-duplicates` keeps them)."),
        f"- Used in the correlations: **{len(used)} windows** from "
        f"{len({(r['video'], r['window_start']) for r in used})} content windows.",
        f"- Saturated targets: AP50 = 1 in {share_perfect(scored, 'ap50'):.1%} of windows with ground truth "
        f"({share_perfect(used, 'ap50'):.1%} of those used), AP@[.5:.95] = 1 in "
        f"{share_perfect(scored, 'ap'):.1%} ({share_perfect(used, 'ap'):.1%}). A window whose AP does not move "
        "across its variants cannot rank them.", ""]


def _difference_table(diffs: list[dict], view: str, target: str, stat: str, baselines: list[str],
                      skip: frozenset = frozenset()) -> list[str]:
    """One verdict table; the subsets in ``skip`` (uninformative for this view) are left out."""
    sub = [d for d in diffs if d["view"] == view and d["target"] == target and d["stat"] == stat
           and d["subset"] not in skip]
    subsets = list(dict.fromkeys(d["subset"] for d in sub))
    if not subsets:
        return []
    L = ["| subset | " + " | ".join(f"vs {b}" for b in baselines) + " |", "|---|" + "---|" * len(baselines)]
    by = {(d["subset"], d["baseline"]): d for d in sub}
    for name in subsets:
        k = next(d["n_clusters"] for d in sub if d["subset"] == name)
        cells = []
        for b in baselines:
            d = by.get((name, b))
            cells.append("n/a" if d is None or d["diff"] is None else
                         f"{_ci(d['diff'], d['lo'], d['hi'])} **{d['verdict']}**")
        L.append(f"| {name} ({k}) | " + " | ".join(cells) + " |")
    return L + [""]


def _verdict_lines(a) -> list[str]:
    s = a.settings
    base = [b for b in s.compared]
    L = ["## Verdict: paired differences", "",
         f"Each cell: sign-adjusted correlation of `{s.primary}` minus that of the other measure (higher = "
         "tracks detection better), with the 95 % interval of the *paired* difference (both measures on the "
         "same resamples); **ahead** only when the interval lies above 0, **behind** when below, else **no clear "
         f"difference**. Pooled intervals: {_resampling_words(s.resampling)}. Within-content-window intervals: "
         "content windows resampled; within-video: content windows resampled inside each video. In brackets "
         "after the subset: the number of resampling units (content windows, or videos with `--resampling "
         "video`); with fewer than 5 no verdict is given.", ""]
    flawed = _flawed(a)
    for view in ("pooled", "content window", "video"):
        L += [f"### {_VIEW_TITLE[view]}", "",
              f"Question answered: {_VIEW_QUESTION[view]}.", ""]
        skip = frozenset(flawed.get(view, {}))
        if skip:
            L += ["Left out here, uninformative for these variants (see *Views that cannot inform* above): "
                  + ", ".join(f"`{n}`" for n in flawed[view]) + ".", ""]
        for target in ("ap50", "ap"):
            for stat in (("srcc", "lcc") if view == "pooled" else ("srcc", "krcc")):
                t = _difference_table(a.differences, view, target, stat, base, skip)
                if t:
                    L += [f"**{stat.upper()} with {target.upper()}**", ""] + t
    return L


def _flawed(a) -> dict[str, dict[str, str]]:
    """view -> subset -> why it is uninformative (:func:`dctqa.study.analysis.uninformative_views`)."""
    from .analysis import uninformative_views

    out: dict[str, dict[str, str]] = {}
    for u in uninformative_views(a):
        out.setdefault(u["view"], {})[u["subset"]] = u["reason"]
    return out


def _uninformative_lines(a) -> list[str]:
    """The report's section naming the views that say nothing for the variants given, and why."""
    flawed = _flawed(a)
    if not flawed:
        return []
    L = ["## Views that cannot inform for these variants", "",
         "These (view, subset) pairs cannot tell the measures apart with the variants this run was given; "
         "their verdict rows are left out below (the CSV tables keep them).", ""]
    for view in ("pooled", "content window", "video"):
        by_reason: dict[str, list[str]] = {}
        for name, why in flawed.get(view, {}).items():
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            L.append(f"- **{_VIEW_TITLE[view]}**, " + ", ".join(f"`{n}`" for n in names) + f": {why}.")
    return L + [""]


def _views_table(a, target: str) -> list[str]:
    """Pooled, within-content and within-video SRCC side by side for each metric (subset all)."""
    pooled = {c["metric"]: c for c in a.correlations if c["subset"] == "all" and c["target"] == target}
    within = {(w["view"], w["metric"]): w for w in a.within if w["subset"] == "all" and w["target"] == target}
    flawed = _flawed(a)
    bad_wc, bad_wv = "all" in flawed.get("content window", {}), "all" in flawed.get("video", {})
    L = [f"**SRCC with {target.upper()}, all windows** (sign-adjusted; 95 % intervals)", "",
         "| metric | pooled | within content window | within video | content windows where undefined |",
         "|---|---|---|---|---|"]
    for col in a.settings.metrics:
        p = pooled.get(col)
        wc, wv = within.get(("content window", col)), within.get(("video", col))
        cells = [_ci(*_signed(p, "srcc")) if p else "n/a",
                 (_ci(*_signed(wc, "srcc")) if wc else "n/a") + (" (uninformative)" if bad_wc else ""),
                 "= pooled" if bad_wv else _ci(*_signed(wv, "srcc")) if wv else "n/a",
                 f"{wc['n_undefined']} of {wc['n_groups']}" if wc else ""]
        L.append(f"| {col} | " + " | ".join(cells) + " |")
    notes = [f"{_VIEW_TITLE[v]}: {flawed[v]['all']}." for v, bad in (("content window", bad_wc), ("video", bad_wv))
             if bad]
    return L + ([""] + notes if notes else []) + [""]


def _lovo_lines(a) -> list[str]:
    subsets = [n for n in dict.fromkeys(c["subset"] for c in a.correlations) if n.startswith("without ")]
    if not subsets:
        return []
    cols = [a.settings.primary] + list(a.settings.compared)
    L = ["## Leave one video out (pooled)", "",
         "Does the pooled conclusion survive without each video? Sign-adjusted SRCC; the paired differences "
         "are in the verdict tables above (rows `without ...`).", ""]
    for target in ("ap50", "ap"):
        L += [f"**SRCC with {target.upper()}**", "", "| subset | n | " + " | ".join(cols) + " |",
              "|---|---|" + "---|" * len(cols)]
        by = {(c["subset"], c["metric"]): c for c in a.correlations if c["target"] == target}
        for name in ["all"] + subsets:
            cells = [_ci(*_signed(by[(name, c)], "srcc")) if (name, c) in by else "n/a" for c in cols]
            L.append(f"| {name} | {by[(name, cols[0])]['n']} | " + " | ".join(cells) + " |")
        L.append("")
    return L


def _paper_cells(subset: str, col: str, primary: str) -> str:
    """The paper's LCC, SRCC and KRCC for our row ``col`` on ``subset`` (empty cells when it has none)."""
    paper = PAPER_NUMBERS.get(subset, {}).get("primary" if col == primary else col)
    return " | ".join(paper) if paper else " | ".join("" for _ in _STATS)


def _paper_lines(a) -> list[str]:
    """Tables 1 and 2 in the paper's layout: our LCC, SRCC, KRCC with intervals, and the paper's
    own values in three columns of their own (:data:`PAPER_NUMBERS`)."""
    if a.settings.primary is None:
        return []
    primary = a.settings.primary
    rows = [c for c in PAPER_ROWS if c in a.settings.metrics] + [primary]
    L = ["## The paper's layout (Tables 1 and 2)", "",
         "LCC, SRCC and KRCC as computed (not sign-adjusted; dctqa is lower-is-better, so a good dctqa "
         "correlation is negative, and so is noise's when more noise means worse), intervals as in the "
         "verdict. The paper's rows blockiness, blur, noise and contrast are AGH's closed indicators; ours are "
         "published-definition stand-ins.", "",
         "The columns **paper LCC / SRCC / KRCC** are the paper's own numbers as printed in the table named "
         "above them (Beniwal, Mantini & Shah, VISAPP 2022): its 11 videos, its Faster R-CNN, its one AP per "
         f"100-frame window (shown beside both of our targets), every value printed positive; its proposed metric "
         f"stands in the `{primary}` row. Other data, detector and encodes: compare sizes and orders, "
         "not digits.", ""]
    by = {(c["subset"], c["target"], c["metric"]): c for c in a.correlations}
    for table, subset in PAPER_SUBSETS:
        for target in ("ap", "ap50"):
            if (subset, target, primary) not in by or by[(subset, target, primary)]["n"] < 3:
                continue
            L += [f"**{table}: {subset} ({target.upper()}, n = {by[(subset, target, primary)]['n']}; "
                  f"paper: its {_PAPER_PART[subset]})**", "",
                  "| metric | LCC | SRCC | KRCC | paper LCC | paper SRCC | paper KRCC |", "|---" * 7 + "|"]
            for col in rows:
                c = by.get((subset, target, col))
                ours = " | ".join(_ci(c[k], c[f'{k}_lo'], c[f'{k}_hi']) if c else "n/a" for k in _STATS)
                L.append(f"| {col} | {ours} | {_paper_cells(subset, col, primary)} |")
            L.append("")
    return L


def _sensitivity_lines(result, cfg) -> list[str]:
    sens = result.sensitivity
    if not sens:
        return []
    a = result.analysis
    L = ["## Sensitivity to the detection thresholds", "",
         f"Headline numbers recomputed with other ground-truth score thresholds (`--gt-score`) and prediction "
         f"score thresholds (`--pred-score`; 0 = every detection the detector returned), same row selection "
         f"rules (min {a.settings.min_gt} ground-truth boxes, duplicates "
         f"{'kept' if a.settings.keep_duplicates else 'left out'}). Pooled SRCC (sign-adjusted) of "
         f"`{a.settings.primary}` and `{sens[0]['baseline']}`, their paired difference, and the "
         f"within-content-window SRCC difference; this run used gt {cfg.gt_score_threshold}, pred "
         f"{cfg.pred_score_threshold}.", "",
         f"| target | gt score | pred score | windows used | AP = 1 | dctqa | {sens[0]['baseline']} | pooled difference "
         "| within-content difference |", "|---|---|---|---|---|---|---|---|---|"]
    for t in ("ap50", "ap"):
        for h in (h for h in sens if h["target"] == t):
            share = "n/a" if h["share_ap_1"] is None else f"{h['share_ap_1']:.1%}"
            L.append(f"| {t.upper()} | {h['gt_score']} | {h['pred_score']} | {h['n']} | {share} | "
                     f"{_ci(h['srcc_primary'], None, None)} | {_ci(h['srcc_baseline'], None, None)} | "
                     f"{_ci(h['diff'], h['lo'], h['hi'])} {h['verdict']} | "
                     f"{_ci(h['within_diff'], h['within_lo'], h['within_hi'])} |")
    why = _flawed(a).get("content window", {}).get("all")
    return L + ([""] + [f"The within-content column is uninformative for these variants: {why}."] if why else []) + [""]


def _analysis_lines(a) -> list[str]:
    """Verdict tables, the views side by side, leave-one-video-out and the paper's layout."""
    if not a.settings.primary:
        return []
    L = _uninformative_lines(a) + _verdict_lines(a)
    L += ["## Pooled and within-content views side by side", "",
          "Pooled: " + _VIEW_QUESTION["pooled"] + ". Within content window: "
          + _VIEW_QUESTION["content window"] + ". Within video: " + _VIEW_QUESTION["video"] + ".", ""]
    L += _views_table(a, "ap50") + _views_table(a, "ap")
    return L + _lovo_lines(a) + _paper_lines(a)


#: The files ``dctqa study-tables`` writes into its output folder.
TABLES_REPORT_FILES = ("report.md", "windows.csv", "correlations.csv", "within.csv", "differences.csv")


def write_tables_report(a, out: str | Path, source: str, command: str = "", outputs=None) -> Path:
    """Write the analysis of an existing window table (``dctqa study-tables``): ``report.md``,
    ``windows.csv`` (with duplicate marks), ``correlations.csv``, ``within.csv`` and
    ``differences.csv`` under ``out``, all of them or none. No plots, bitrate tables, threshold
    sensitivity or timings: those need the study's videos and detections. outputs: the
    :class:`~dctqa.fileio.OutputSet` to stage them in (committed by its owner), else one of
    this call's own. Returns the report's path."""
    from ..fileio import OutputSet

    out = Path(out)
    if outputs is None:
        with OutputSet() as own:
            return write_tables_report(a, own.make_dir(out), source, command, own)
    for name, rows in (("windows", a.rows), ("correlations", a.correlations), ("within", a.within),
                       ("differences", a.differences)):
        outputs.write_text(out / f"{name}.csv", table_csv(name, rows, a.settings.metrics))
    s = a.settings
    L = ["# dctqa study tables: does the metric track object-detection AP under H.264 compression?", "",
         f"Re-analysis of the window table `{source}` (videos: {', '.join(a.videos)}); metrics: "
         + ", ".join(f"`{c}`" for c in s.metrics) + ". Correlations: Pearson LCC, Spearman SRCC, Kendall KRCC "
         f"(tau-b) of the window means with AP; percentile bootstrap 95 % intervals ({s.n_boot} resamples, seed "
         f"{s.seed}), {_resampling_words(s.resampling)}.", ""]
    if command:
        L[1:1] = ["", "Command:", "", "```", command, "```"]
    L += _selection_lines(a) + _analysis_lines(a) + _correlation_lines(a)
    path = out / "report.md"
    outputs.write_text(path, "\n".join(L))
    return path


def write_report(result, cfg, cache, outputs=None, finish_timings=None) -> Path:
    """Write ``report.md`` (and the plots) under ``cfg.out``; returns its path. outputs: the
    :class:`~dctqa.fileio.OutputSet` to stage ``report.md`` in (committed by its owner), else
    it is written at once, atomically. The plots are each written atomically at once.
    finish_timings: called once the rest of the report is done, just before the time table is
    rendered from ``result.timings`` (so the table shows the final numbers)."""
    out = Path(cfg.out)
    plots = _plots(result, cfg, out / "plots")
    a = result.analysis
    cols = result.metric_columns
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
          + f"; x264 preset {enc.preset}, GOP {enc.gop or 'x264 default (250)'}, VBV buffer {enc.bufsize_s} s, "
          "yuv420p.",
          f"- Detector: `{getattr(cfg.detector, 'name', cfg.detector)}` on every frame f with f mod "
          f"{cfg.frame_stride} = 0; pseudo ground truth = its detections on the reference with score >= "
          f"{cfg.gt_score_threshold}; predictions on the variants: "
          + (f"those scoring >= {cfg.pred_score_threshold}" if cfg.pred_score_threshold else
             "all the detector returned")
          + (f"; only the COCO classes {', '.join(class_names(cfg.classes))} count" if cfg.classes else "")
          + ". AP50 and AP@[.5:.95] "
          f"(faster-coco-eval) per non-overlapping window of {cfg.window} source frames.",
          f"- Metrics scored on frames f mod {cfg.metric_stride} = 0 and averaged per window: "
          + ", ".join(f"`{c}`" for c in cols) + ". dctqa columns are lower-is-better (Q = 1 for identical frames).",
          *_nr_setup_lines(cfg),
          "- Baselines follow shared/docs/BASELINES.md. The paper's no-reference indicators come from AGH's closed "
          "binaries whose formulas are not public; blockiness, blur (Marziliano, threshold 2 x mean |Sobel_x|), "
          "noise (Immerkaer) and contrast (RMS) use published definitions instead.",
          f"- Correlations: Pearson LCC, Spearman SRCC, Kendall KRCC (tau-b) of the window means with AP; "
          f"percentile bootstrap 95 % intervals ({cfg.n_boot} resamples, seed {cfg.seed}), "
          f"{_resampling_words(a.settings.resampling)}.", ""]
    L += _warning_lines(result, cache)
    L += _selection_lines(a)
    L += _variant_lines(result)
    L += _analysis_lines(a)
    L += _sensitivity_lines(result, cfg)
    L += _correlation_lines(a)
    L += ["## Plots", ""] + [f"![{p}](plots/{p})" for p in plots] + [""]
    if finish_timings is not None:
        finish_timings()
    L += _timing_lines(result, cache)
    L += ["Files: `windows.csv` (one row per video x variant x window, with duplicate marks), `correlations.csv` "
          "(pooled), `within.csv` (within content window / video), `differences.csv` (paired differences and "
          "verdicts), `sensitivity.csv` (the header alone when the threshold grid is empty), `variants.csv`, `frames.csv` (per-frame values).", ""]
    path = out / "report.md"
    if outputs is None:
        atomic_write_text(path, "\n".join(L))
    else:
        outputs.write_text(path, "\n".join(L))
    return path


def _warning_lines(result, cache) -> list[str]:
    """The run's warnings (short videos, windows cut short; also printed on stderr) and the
    stages it skipped, with the reason."""
    notes = list(getattr(result, "notes", []) or [])
    notes += [f"stage `{s}` skipped: {why}" for s, why in getattr(cache, "skipped", {}).items()]
    if not notes:
        return []
    return ["## Warnings and skipped stages", ""] + [f"- {n}" for n in notes] + [""]


def _nr_setup_lines(cfg) -> list[str]:
    """The setup line of the no-reference column (none without ``cfg.nr_model``)."""
    if getattr(cfg, "nr_model", None) is None:
        return []
    from ..fileio import file_sha256

    return [f"- `dctqa_nr`: Q predicted from the compressed frames alone (no reference) by the checkpoint "
            f"`{Path(cfg.nr_model).name}` (sha256 {file_sha256(cfg.nr_model)[:12]}), {cfg.nr_patches} "
            f"patch(es) per frame placed by {cfg.nr_sampling} sampling, on the same frames as the other "
            "metrics; an indicator like the baselines (lower-is-better), not a verdict column."]


def _variant_lines(result) -> list[str]:
    L = ["## Variants and bitrates (kbit/s, measured on the encoded stream)", "",
         "`*`: duplicate of the uncapped variant (bitrate within tolerance); `(k)`: k windows identical to the "
         "uncapped ones.", ""]
    dup = {}
    for r in result.analysis.rows:
        if r["duplicate_reason"]:
            d = dup.setdefault((r["video"], r["variant"]), [0, 0])
            d[0 if r["duplicate_reason"] == "bitrate" else 1] += 1
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
                d = dup.get((video, m[0].name), [0, 0]) if m else [0, 0]
                cells.append((f"{m[0].bitrate_kbps:.1f}" + ("*" if d[0] else "") + (f" ({d[1]})" if d[1] else ""))
                             if m else "")
            L.append(f"| {crf} | " + " | ".join(cells) + " |")
        L.append("")
    L += ["## Mean AP50 / AP per CRF (over full windows with ground truth and all caps)", "",
          "| video | " + " | ".join(f"CRF {c}" for c in crfs) + " |", "|---|" + "---|" * len(crfs)]
    for video in videos:
        cells = []
        for c in crfs:
            w = [r for r in result.windows if r["video"] == video and r["crf"] == c and r["ap50"] is not None
                 and not is_cut_short(r)]
            cells.append(f"{np.mean([r['ap50'] for r in w]):.3f} / {np.mean([r['ap'] for r in w]):.3f}" if w else "")
        L.append(f"| {video} | " + " | ".join(cells) + " |")
    return L + [""]


def _correlation_lines(a) -> list[str]:
    L = ["## Pooled correlation tables", "",
         f"Each cell: estimate [95 % interval, {_resampling_words(a.settings.resampling)}]; n = windows used, "
         "clusters = resampling units.", ""]
    same = _flawed(a).get("pooled", {})
    if same:
        L += ["Not repeated (" + "; ".join(f"`{n}`: {why}" for n, why in same.items()) + ").", ""]
    for target in ("ap50", "ap"):
        for subset in (n for n in dict.fromkeys(c["subset"] for c in a.correlations) if n not in same):
            sub = [c for c in a.correlations if c["subset"] == subset and c["target"] == target]
            if not sub:
                continue
            L += [f"### {target.upper()} — {subset} (n = {sub[0]['n']}, clusters = {sub[0]['n_clusters']})", "",
                  "| metric | better | LCC | SRCC | KRCC |", "|---|---|---|---|---|"]
            for c in sub:
                L.append(f"| {c['metric']} | {'higher' if higher_is_better(c['metric']) else 'lower'} | "
                         + " | ".join(_fmt(c[k], c[f'{k}_lo'], c[f'{k}_hi']) for k in _STATS) + " |")
            notes = [c["notes"] for c in sub if c.get("notes")]
            if notes:
                L += ["", "Notes: " + "; ".join(dict.fromkeys(notes))]
            L.append("")
    return L


def _timing_lines(result, cache) -> list[str]:
    L = ["## Where the time goes (seconds)", "",
         "`computed` = time the results took when first computed (also for results reused from the cache); "
         "`this run` = time spent in this run.", "", "| part | computed | this run |", "|---|---|---|"]
    for part, t in result.timings.items():
        comp = t["computed_s"]
        L.append(f"| {part} | {'' if comp is None or comp != comp else f'{comp:.1f}'} | {t['this_run_s']:.1f} |")
    skipped = getattr(cache, "skipped", {})
    parts = [f"{s}: {cache.hits.get(s, 0)} reused, {cache.misses.get(s, 0)} computed"
             for s in sorted(set(cache.hits) | set(cache.misses)) if s not in skipped]
    parts += [f"{s}: skipped ({why})" for s, why in sorted(skipped.items())]
    return L + ["", "Stage cache: " + ", ".join(parts), ""]
