"""The ladder's outputs: the ``ladder.json`` document, the rate–quality plot and the
one-screen summary."""
from __future__ import annotations

import io
from typing import Any

from ..constants import METRIC_VERSION
from .choice import choice, evaluate
from .config import LadderConfig
from .measure import Candidate, Measurer

#: Format of ``ladder.json`` (bumped when a field changes meaning).
LADDER_FORMAT = 1


def _bound_doc(cfg: LadderConfig) -> dict[str, Any]:
    conf = {"confidence": cfg.confidence, "block_frames": cfg.block_frames if cfg.bootstraps else None,
            "replicates": cfg.replicates if cfg.bootstraps else None, "seed": cfg.seed if cfg.bootstraps else None}
    also = (f"; and its one-sided {cfg.confidence:g} upper confidence limit (cluster bootstrap) <= value"
            if cfg.bootstraps else "")
    if cfg.max_q is not None:
        return {"kind": "max_q", "value": cfg.max_q, "statistic": "q", "pool": cfg.pool, **conf,
                "meaning": f"{cfg.pool} of the per-frame Q <= value (Q = 1 identical; higher = worse for "
                           f"detection){also}"}
    from ..study.detect.categories import class_names

    names = class_names(cfg.classes) if cfg.classes else None
    return {"kind": "max_ap_drop", "value": cfg.max_ap_drop, "statistic": "ap_drop", "pool": cfg.pool,
            "ap_metric": cfg.ap_metric, "classes": names, **conf,
            "meaning": f"{cfg.pool} over AP windows of ({cfg.ap_metric.upper()} of the source - "
                       f"{cfg.ap_metric.upper()} of the candidate) <= value, both against pseudo ground truth from "
                       f"the source" + (f" (COCO classes {', '.join(names)} only)" if names else "") + also}


def _candidate_doc(cfg: LadderConfig, c: Candidate, ref_windows: list, segs: list, limits) -> dict[str, Any]:
    whole = evaluate(cfg, c, ref_windows, (0, c.variant.frames), limits)
    d = {"name": c.variant.name, "crf": c.crf, "cap_kbps": c.cap, "kbps": c.variant.bitrate_kbps,
         "path": str(c.variant.path), "frames": c.variant.frames, "group": c.group, "q": whole["q"],
         "ap": whole.get("ap"), "ap_drop": whole.get("ap_drop"), _UPPER[cfg.statistic]: whole.get(
             _UPPER[cfg.statistic]), "meets_bound": whole["meets_bound"]}
    if cfg.measures_ap:
        d.update(windows=whole["windows"], cut_short=whole["cut_short"])
    if cfg.segment_frames is not None:
        d["segments"] = [dict(evaluate(cfg, c, ref_windows, s, limits), index=i) for i, s in enumerate(segs)]
    return d


#: The field of a candidate's upper confidence limit, per statistic (``None`` without --confidence).
_UPPER = {"q": "q_upper", "ap_drop": "ap_drop_upper"}


def _warnings(m: Measurer, doc: dict[str, Any], inv: list) -> list[str]:
    """The run's warnings: the study stages', windows cut short that were counted, inversions."""
    out = list(m.notes)
    cut = [c["name"] for c in doc["candidates"] if any(r.get("cut_short") for r in [c, *c.get("segments", [])])]
    if cut:
        out.append(f"no full AP window in (a segment of) the video: its window cut short counts there after all "
                   f"({len(cut)} candidate(s), e.g. {cut[0]}); the study would leave it out")
    if inv:
        out.append(f"the measured curve is not monotone in CRF (a CRF outside the bound below one within it: "
                   f"{inv}); the choice is the cheapest measured candidate within the bound")
    return out


def _pick(row: dict | None) -> dict | None:
    keys = ("name", "crf", "cap_kbps", "kbps", "path", "q", "ap", "ap_drop", "q_upper", "ap_drop_upper")
    return None if row is None else {k: row.get(k) for k in keys}


def ladder_doc(cfg: LadderConfig, m: Measurer, cands: list[Candidate], ref_windows: list, segs: list,
               rounds: list[list[int]], wall_s: float, limits=None) -> dict[str, Any]:
    """The ``ladder.json`` document (strict JSON once written; fields in docs/ladder.md)."""
    from ..study.config import default_model

    cands = sorted(cands, key=lambda c: (c.crf, c.cap is not None, c.cap or 0.0))
    n = cands[0].variant.frames
    best, reason, inv = choice(cfg, cands, ref_windows, (0, n), limits)
    grid_best, _, _ = choice(cfg, [c for c in cands if c.group == "grid"], ref_windows, (0, n), limits)
    doc: dict[str, Any] = {
        "format": LADDER_FORMAT, "metric_version": METRIC_VERSION, "video": str(cfg.video),
        "reference": str(m.reference), "frames": n, "bound": _bound_doc(cfg),
        "q": {"column": m.column, "backbone": None if cfg.pixel else (cfg.backbone or default_model()),
              "domain": "pixel" if cfg.pixel else cfg.domain},
        "detector": (None if not cfg.measures_ap else getattr(m.detector, "name", str(cfg.detector))),
        "settings": {"grid": list(cfg.crfs), "caps_kbps": list(cfg.caps_kbps), "preset": cfg.preset,
                     "frame_stride": cfg.frame_stride, "max_frames": cfg.max_frames,
                     "segment_frames": cfg.segment_frames, "ap_window": cfg.ap_window if cfg.measures_ap else None,
                     "gt_score": cfg.gt_score if cfg.measures_ap else None,
                     "min_gt": cfg.min_gt if cfg.measures_ap else None, "command": cfg.command},
        "candidates": [_candidate_doc(cfg, c, ref_windows, segs, limits) for c in cands],
        "reference_windows": ref_windows,
        "recommended": _pick(best), "reason": reason,
        "cheapest_grid": _pick(grid_best),
        "search": {"rounds": rounds, "measured_crfs": sorted({c.crf for c in cands}), "monotone": not inv,
                   "inversions": [list(p) for p in inv]},
    }
    if cfg.segment_frames is not None:
        doc["segments"] = []
        for i, s in enumerate(segs):
            b, r, sinv = choice(cfg, cands, ref_windows, s, limits)
            doc["segments"].append({"index": i, "start": s[0], "end": s[1], "recommended": _pick(b), "reason": r,
                                    "monotone": not sinv})
    doc["cache"] = {"hits": dict(m.cache.hits), "misses": dict(m.cache.misses)}
    doc["timings"] = dict(m.timings, total_wall={"this_run_s": wall_s})
    if limits is not None:
        doc["timings"]["bootstrap"] = {"computed_s": limits.seconds, "this_run_s": limits.seconds}
    doc["warnings"] = _warnings(m, doc, inv)
    return doc


def plot_png(doc: dict[str, Any]) -> bytes:
    """The rate–quality plot as PNG bytes: kbit/s against pooled Q (and against the AP drop when
    measured), uncapped and capped candidates, the bound and the recommendation marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ap = doc["bound"]["kind"] == "max_ap_drop"
    fig = Figure(figsize=(6.5 * (2 if ap else 1), 4.2))
    axes = fig.subplots(1, 2 if ap else 1, squeeze=False)[0]
    panels = [("q", f"Q ({doc['bound']['pool']}; 1 = identical, higher = worse)")]
    if ap:
        panels.append(("ap_drop", f"{doc['bound']['ap_metric'].upper()} drop ({doc['bound']['pool']} over windows)"))
    for ax, (stat, label) in zip(axes, panels):
        _panel(ax, doc, stat, label)
    fig.suptitle(f"rate–quality ladder: {doc['video']}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _panel(ax, doc: dict[str, Any], stat: str, label: str) -> None:
    unc = sorted((c for c in doc["candidates"] if c["cap_kbps"] is None and c[stat] is not None),
                 key=lambda c: c["kbps"])
    capped = [c for c in doc["candidates"] if c["cap_kbps"] is not None and c[stat] is not None]
    ax.plot([c["kbps"] for c in unc], [c[stat] for c in unc], "o-", color="tab:blue", label="CRF (uncapped)")
    up = [c for c in unc if c.get(_UPPER.get(stat, "")) is not None]
    if up:
        ax.plot([c["kbps"] for c in up], [c[_UPPER[stat]] for c in up], "v:", color="tab:blue", alpha=0.6,
                markersize=4, label=f"upper limit ({doc['bound']['confidence']:g})")
    for c in unc:
        ax.annotate(str(c["crf"]), (c["kbps"], c[stat]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if capped:
        ax.plot([c["kbps"] for c in capped], [c[stat] for c in capped], "s", color="tab:orange",
                label="CRF + VBV cap", linestyle="none")
    if doc["bound"]["statistic"] == stat:
        ax.axhline(doc["bound"]["value"], color="tab:red", linestyle="--", label=f"bound {doc['bound']['value']:g}")
    rec = doc["recommended"]
    if rec is not None and rec.get(stat) is not None:
        ax.plot([rec["kbps"]], [rec[stat]], "*", color="tab:green", markersize=16, label=f"chosen: {rec['name']}")
    if not unc and not capped:
        ax.text(0.5, 0.5, "not measured (no window with ground truth)", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
    else:
        ax.set_xscale("log")
    ax.set_xlabel("bitrate (kbit/s)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def summary_text(doc: dict[str, Any]) -> str:
    """The one-screen summary ``dctqa ladder`` prints."""
    b = doc["bound"]
    up = _UPPER[b["statistic"]] if b.get("confidence") else None
    lines = [f"ladder: {doc['video']} ({doc['frames']} frames), bound: {b['meaning']}, value {b['value']:.6g}",
             f"{'candidate':20s} {'crf':>3s} {'kbit/s':>9s} {'Q':>8s}"
             + (f" {'AP drop':>8s}" if "ap_metric" in b else "")
             + (f" {'upper ' + format(b['confidence'], 'g'):>10s}" if up else "") + "  within"]
    rec = doc["recommended"]
    for c in doc["candidates"]:
        mark = {True: "yes", False: "no", None: "?"}[c["meets_bound"]]
        q = "-" if c["q"] is None else f"{c['q']:.4f}"
        ap = "" if "ap_metric" not in b else (" " + ("-" if c["ap_drop"] is None else f"{c['ap_drop']:8.4f}"))
        upper = "" if not up else " " + ("-" if c.get(up) is None else f"{c[up]:10.4f}").rjust(10)
        chosen = "  <- recommended" if rec is not None and c["name"] == rec["name"] else ""
        lines.append(f"{c['name']:20s} {c['crf']:3d} {c['kbps']:9.1f} {q:>8s}{ap}{upper}  {mark}{chosen}")
    if rec is not None:
        lines.append(f"recommended: {rec['name']} at {rec['kbps']:.1f} kbit/s ({b['statistic']} = "
                     f"{rec[b['statistic']]:.6g}" + (f", upper limit {rec[up]:.6g}" if up else "")
                     + f" <= {b['value']:.6g})")
    else:
        lines.append(f"no recommendation: {doc['reason']}")
    for s in doc.get("segments", []):
        r = s["recommended"]
        lines.append(f"segment {s['index']} (frames {s['start']}-{s['end'] - 1}): "
                     + (f"{r['name']} at {r['kbps']:.1f} kbit/s" if r else f"none ({s['reason']})"))
    t = doc["timings"]
    parts = [f"{k} {t[k]['this_run_s']:.1f}s" for k in ("encode", "decode", "metric", "detection", "ap", "bootstrap")
             if k in t]
    lines.append(f"time this run: {t['total_wall']['this_run_s']:.1f}s ({', '.join(parts)}); cache hits "
                 f"{sum(doc['cache']['hits'].values())}, misses {sum(doc['cache']['misses'].values())}")
    return "\n".join(lines)
