"""The study's tables: one row per (video, variant, window), and correlation rows."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..baselines import global_psnr
from ..codec import Variant

#: Targets the metrics are correlated with.
TARGETS = ("ap50", "ap")


def window_rows(video: str, variant: Variant, windows: Sequence[dict], frames: dict[str, np.ndarray],
                dctqa_columns: Sequence[str], baselines: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the window table for one variant.

    windows: :class:`~dctqa.detect.ap.WindowAP` fields as dicts; frames: per-frame arrays of the
    score stage (``frame_indices`` plus one array per column).  A metric's window value is the
    mean over its scored frames ``start <= f < end`` (NaN frames, e.g. blur without edges,
    are skipped); ``psnr_global`` is the PSNR of the window's mean MSE.  AP is ``None`` (empty
    in the CSV) for windows without ground truth.
    """
    fi = frames["frame_indices"]
    rows = []
    for w in windows:
        sel = (fi >= w["start"]) & (fi < w["end"])
        row: dict[str, Any] = {
            "video": video, "variant": variant.name, "crf": variant.crf,
            "maxrate_kbps": None if variant.maxrate_kbps is None else round(variant.maxrate_kbps, 3),
            "cap_bpp": variant.cap_bpp, "bitrate_kbps": round(variant.bitrate_kbps, 3),
            "window_start": w["start"], "window_end": w["end"], "n_det_frames": w["n_frames"],
            "n_metric_frames": int(sel.sum()), "n_gt": w["n_gt"], "ap50": w["ap50"], "ap": w["ap"]}
        for col in list(dctqa_columns) + [b for b in baselines]:
            v = frames[col][sel]
            row[col] = float(np.nanmean(v)) if v.size and not np.isnan(v).all() else float("nan")
            if col == "psnr":
                row["psnr_global"] = global_psnr(frames["mse"][sel]) if sel.any() else float("nan")
        rows.append(row)
    return rows


def subsets(rows: Sequence[dict], videos: Sequence[str], crf_subsets: Sequence[Sequence[int]]
            ) -> list[tuple[str, list[dict]]]:
    """Named row subsets: all windows, each CRF subset, each video."""
    out = [("all", list(rows))]
    for s in crf_subsets:
        keep = set(int(c) for c in s)
        out.append(("crf " + ",".join(str(c) for c in sorted(keep)), [r for r in rows if int(r["crf"]) in keep]))
    for v in videos:
        out.append((f"video {v}", [r for r in rows if r["video"] == v]))
    return out


def correlation_rows(rows: Sequence[dict], metric_columns: Sequence[str], videos: Sequence[str],
                     crf_subsets: Sequence[Sequence[int]], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """LCC/SRCC/KRCC (with bootstrap 95 % intervals) of every metric column against AP50 and AP,
    per subset.  Windows without ground truth (AP ``None``) are left out and counted in
    ``n_no_gt``; a subset with fewer than 3 usable windows gets NaN and a note."""
    from ..errors import InputError
    from ..stats import correlations

    out = []
    for name, sub in subsets(rows, videos, crf_subsets):
        for target in TARGETS:
            scored = [r for r in sub if r[target] is not None]
            y = np.array([r[target] for r in scored], dtype=np.float64)
            for col in metric_columns:
                x = np.array([r[col] for r in scored], dtype=np.float64)
                rec: dict[str, Any] = {"subset": name, "target": target, "metric": col,
                                       "n_windows": len(sub), "n_no_gt": len(sub) - len(scored)}
                try:
                    c = correlations(x, y, n_boot=n_boot, seed=seed)
                    rec.update(n=c.n, notes="; ".join(c.notes))
                    for stat in ("lcc", "srcc", "krcc"):
                        r, lo, hi = c[stat]
                        rec.update({stat: _f(r), f"{stat}_lo": _f(lo), f"{stat}_hi": _f(hi)})
                except InputError as exc:
                    rec.update(n=int((~np.isnan(x)).sum()), notes=str(exc))
                    for stat in ("lcc", "srcc", "krcc"):
                        rec.update({stat: None, f"{stat}_lo": None, f"{stat}_hi": None})
                out.append(rec)
    return out


def _f(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
