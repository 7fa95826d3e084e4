"""The study's window table: one row per (video, variant, window)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..baselines import global_psnr
from .codec import Variant


def window_rows(video: str, variant: Variant, windows: Sequence[dict], frames: dict[str, np.ndarray],
                dctqa_columns: Sequence[str], baselines: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the window table for one variant.

    windows: :class:`~dctqa.study.detect.ap.WindowAP` fields as dicts; frames: per-frame arrays of the
    score stage (``frame_indices`` plus one array per column).  A metric's window value is the
    mean over its scored frames ``start <= f < end`` (NaN frames, e.g. blur without edges,
    are skipped); ``psnr_global`` is the PSNR of the window's mean MSE.  AP is ``None`` (empty
    in the CSV) for windows without ground truth. ``window_frames``: the source frames the window
    holds (``window_end - window_start``, less for the last window of a video whose length is not
    a multiple of the window: a window *cut short*, left out of the statistics).
    """
    fi = frames["frame_indices"]
    rows = []
    for w in windows:
        sel = (fi >= w["start"]) & (fi < w["end"])
        row: dict[str, Any] = {
            "video": video, "variant": variant.name, "crf": variant.crf,
            "maxrate_kbps": None if variant.maxrate_kbps is None else round(variant.maxrate_kbps, 3),
            "cap_bpp": variant.cap_bpp, "bitrate_kbps": round(variant.bitrate_kbps, 3),
            "window_start": w["start"], "window_end": w["end"],
            "window_frames": max(0, min(w["end"], variant.frames) - w["start"]), "n_det_frames": w["n_frames"],
            "n_metric_frames": int(sel.sum()), "n_gt": w["n_gt"], "ap50": w["ap50"], "ap": w["ap"]}
        for col in list(dctqa_columns) + [b for b in baselines]:
            v = frames[col][sel]
            row[col] = float(np.nanmean(v)) if v.size and not np.isnan(v).all() else float("nan")
            if col == "psnr":
                row["psnr_global"] = global_psnr(frames["mse"][sel]) if sel.any() else float("nan")
        rows.append(row)
    return rows
