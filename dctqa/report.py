"""Score logs in libvmaf's JSON layout (per-frame metrics plus pooled statistics), and CSV.

Writes are atomic: a temporary file in the target folder, then ``os.replace``, so a
failed run never leaves a partial log behind.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

from . import __version__
from .errors import InputError
from .fileio import atomic_write_text


def pooled(values: Iterable[float]) -> dict[str, float]:
    """min, max, mean, harmonic mean (plain: ``n / sum(1/x)``, x > 0), median, 95th percentile."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise InputError("no frame was scored, nothing to pool")
    out = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}
    out["harmonic_mean"] = float(v.size / np.sum(1.0 / v)) if np.all(v > 0) else float("nan")
    out["median"] = float(np.median(v))
    out["p95"] = float(np.percentile(v, 95))
    return out


def build_log(q: np.ndarray, frame_numbers: Iterable[int], params: Mapping[str, Any],
              q_filters: np.ndarray | None = None, metric: str = "dctqa") -> dict:
    """The JSON log: ``{"version", "params", "frames": [{"frameNum", "metrics"}], "pooled_metrics"}``."""
    frames = []
    for i, (n, val) in enumerate(zip(frame_numbers, q)):
        metrics: dict[str, Any] = {metric: float(val)}
        if q_filters is not None:
            metrics[f"{metric}_filters"] = [float(x) for x in q_filters[i]]
        frames.append({"frameNum": int(n), "metrics": metrics})
    return {"version": __version__, "params": dict(params), "frames": frames,
            "pooled_metrics": {metric: pooled(q)}}


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n", make_parents=False)


def write_csv(path: str | os.PathLike, rows: list[Mapping[str, Any]]) -> None:
    """Write a list of dicts (same keys) as CSV with a header, atomically."""
    if not rows:
        raise InputError("no rows to write")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue(), make_parents=False)


def log_to_rows(log: Mapping[str, Any], metric: str = "dctqa") -> list[dict[str, Any]]:
    """Per-frame CSV rows of a log: ``frame, <metric>``."""
    return [{"frame": f["frameNum"], metric: f["metrics"][metric]} for f in log["frames"]]
