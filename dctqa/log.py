"""Score logs in libvmaf's JSON layout (per-frame metrics plus pooled statistics), and the
core's one CSV writer (:func:`csv_text` / :func:`write_csv`).

No NaN or infinity is ever written as a score: undefined frames are ``null`` in JSON and
empty in CSV, and the pooled statistics exclude them and count them.

Writes are atomic: a temporary file in the target folder, then ``os.replace``, so a
failed run never leaves a partial log behind.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import __version__
from .errors import InputError
from .fileio import atomic_write_text


def _defined(x: float) -> float | None:
    """A score as JSON: the float, or ``None`` (``null``) where it is NaN or infinite (undefined)."""
    x = float(x)
    return x if np.isfinite(x) else None


def pooled(values: Iterable[float]) -> dict[str, Any]:
    """Pooled statistics of per-frame scores, over the frames whose score is defined (finite).

    min, max, mean, median, 95th percentile over the defined frames; ``harmonic_mean``
    (``n / sum(1/x)``) over the frames with a score > 0 only (it is undefined at 0: an
    all-zero reference gives Q = 0), ``None`` if there is none. ``frames`` counts the
    defined frames, ``undefined_frames`` the excluded NaN/inf ones, ``harmonic_mean_excluded``
    the defined frames with a score <= 0 left out of the harmonic mean. Raises
    :class:`InputError` when no frame has a defined score.
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise InputError("no frame was scored, nothing to pool")
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        raise InputError(f"none of the {v.size} scored frames has a defined score (all NaN or infinite)")
    pos = ok[ok > 0]
    with np.errstate(over="ignore", divide="ignore"):  # 1/x of a denormal is inf: the mean is then 0
        harmonic = float(pos.size / np.sum(1.0 / pos)) if pos.size else None
        if harmonic is not None and not np.isfinite(harmonic):  # 1/x underflowed (x near the float64 limit)
            low = float(pos.min())
            harmonic = float(np.clip(low / np.mean(low / pos), low, pos.max()))
    scale = float(np.abs(ok).max()) or 1.0  # the mean of values near the float64 limit must not overflow
    with np.errstate(over="ignore", invalid="ignore"):
        median, p95 = _defined(np.median(ok)), _defined(np.percentile(ok, 95))
        mean = float(np.clip(np.mean(ok / scale) * scale, ok.min(), ok.max()))
    return {"min": float(ok.min()), "max": float(ok.max()), "mean": mean,
            "harmonic_mean": harmonic, "median": median, "p95": p95,
            "frames": int(ok.size), "undefined_frames": int(v.size - ok.size),
            "harmonic_mean_excluded": int(ok.size - pos.size)}


def _pooled_extra(values: np.ndarray) -> dict[str, Any]:
    """:func:`pooled` of a metric logged beside the main one; all-undefined is not an error
    there: its statistics are ``None`` and ``undefined_frames`` counts every frame."""
    v = np.asarray(values, dtype=np.float64)
    if v.size and np.isfinite(v).any():
        return pooled(v)
    keys = ("min", "max", "mean", "harmonic_mean", "median", "p95")
    return {**dict.fromkeys(keys), "frames": 0, "undefined_frames": int(v.size), "harmonic_mean_excluded": 0}


def build_log(q: np.ndarray, frame_numbers: Iterable[int], params: Mapping[str, Any],
              q_filters: np.ndarray | None = None, metric: str = "dctqa",
              extra: Mapping[str, np.ndarray] | None = None) -> dict:
    """The JSON log: ``{"version", "params", "frames": [{"frameNum", "metrics"}], "pooled_metrics"}``.

    A frame whose score is undefined (NaN/inf) is logged as ``null`` and left out of the
    pooled statistics (their ``undefined_frames`` says how many).
    extra: more per-frame metrics logged beside ``metric`` in the same frames, as libvmaf
    logs several (name -> ``(N,)`` values, e.g. ``{"psnr": ..., "ssim": ...}``), each pooled
    the same way (all-undefined gives ``None`` statistics instead of an error).
    """
    extra = {k: np.asarray(v, dtype=np.float64) for k, v in (extra or {}).items()}
    for name, v in extra.items():
        if name == metric or v.shape != (len(q),):
            raise InputError(f"extra metric {name!r}: expected {len(q)} per-frame values beside {metric!r}, "
                             f"got shape {v.shape}")
    frames = []
    for i, (n, val) in enumerate(zip(frame_numbers, q)):
        metrics: dict[str, Any] = {metric: _defined(val)}
        if q_filters is not None:
            metrics[f"{metric}_filters"] = [_defined(x) for x in q_filters[i]]
        metrics.update({name: _defined(v[i]) for name, v in extra.items()})
        frames.append({"frameNum": int(n), "metrics": metrics})
    pools = {metric: pooled(q), **{name: _pooled_extra(v) for name, v in extra.items()}}
    return {"version": __version__, "params": dict(params), "frames": frames, "pooled_metrics": pools}


def json_text(obj: Any) -> str:
    """``obj`` as indented, strictly valid JSON (NaN/inf are refused: map them to ``None`` first)."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False) + "\n"
    except ValueError as exc:
        raise InputError(f"refusing to write invalid JSON: {exc}") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (no NaN/inf tokens: see :func:`json_text`)."""
    atomic_write_text(path, json_text(obj), make_parents=False)


def _cell(x: Any, float_format: str | None) -> Any:
    if isinstance(x, float):
        if not np.isfinite(x):
            return ""
        return format(x, float_format) if float_format else x
    return "" if x is None else x


def csv_text(rows: Sequence[Mapping[str, Any]], float_format: str | None = None,
             lineterminator: str = "\r\n", empty_ok: bool = False) -> str:
    """A list of dicts (same keys) as CSV with a header; ``None`` and NaN/inf become empty cells.

    float_format: e.g. ``".6g"`` to round floats (default: ``repr``, exact).
    lineterminator: the csv module's default ``\r\n`` (RFC 4180) unless given.
    No rows: :class:`InputError`, or ``""`` when ``empty_ok``.
    """
    if not rows:
        if empty_ok:
            return ""
        raise InputError("no rows to write")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator=lineterminator)
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(x, float_format) for k, x in r.items()})
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], **options: Any) -> None:
    """Write a list of dicts (same keys) as CSV with a header, atomically; ``options`` as
    :func:`csv_text` takes them."""
    atomic_write_text(path, csv_text(rows, **options), make_parents=False)


def log_to_rows(log: Mapping[str, Any], metric: str = "dctqa") -> list[dict[str, Any]]:
    """Per-frame CSV rows of a log: ``frame, <metric>``, then every other per-frame scalar metric
    the log holds (e.g. ``psnr, ssim``) in its order; per-filter lists stay in the JSON log only."""
    rows = []
    for f in log["frames"]:
        others = {k: v for k, v in f["metrics"].items() if k != metric and not isinstance(v, list)}
        rows.append({"frame": f["frameNum"], metric: f["metrics"][metric], **others})
    return rows
