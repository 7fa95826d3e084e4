"""The study's scoring pieces, public: every caller that scores variants or names their
columns (the study's score stage, ``dctqa nr-data``) uses these and only these.

* column naming: :func:`column_name` builds every dctqa column name
  (``dctqa_<domain>_<backbone label>``, ``dctqa_pixel``), :data:`NR_COLUMN` the no-reference one;
* metric specs: :class:`MetricSpec` and :func:`metric_specs` (a study's configurations);
* model identity: :func:`model_identity` (sha256 of an ONNX file, else the name);
* score keys: :func:`spec_key` (one configuration) and :func:`score_key` (one variant's
  score-stage result in the stage cache; changing either recomputes the stage);
* :func:`score_pair`: per-frame values of every metric for one (reference, variant) pair.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..backbones.spec import PIXEL, parse_spec
from ..errors import InputError, VideoError
from .config import StudyConfig

#: Format of the score stage's cached result (part of :func:`score_key`).
SCORE_FORMAT = 1
#: The study's (and the registry metric's) no-reference column.
NR_COLUMN = "dctqa_nr"


@dataclass(frozen=True)
class MetricSpec:
    """One dctqa configuration: column name, backbone name, domain."""

    column: str
    backbone: str
    domain: str


def backbone_label(backbone: str) -> str:
    """The backbone's part of a column name: its label (an ONNX file's stem, else the name)
    with every run of characters other than ``A-Za-z0-9`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", parse_spec(backbone).label).strip("_")


def column_name(domain: str, backbone: str) -> str:
    """The study's column of dctqa in ``domain`` with ``backbone``: ``dctqa_<domain>_<label>``
    (e.g. ``dctqa_spectral_yolox_nano``), or ``dctqa_pixel`` for the pixel domain (no backbone)."""
    if domain == PIXEL:
        return "dctqa_pixel"
    return f"dctqa_{domain}_{backbone_label(backbone)}"


def metric_specs(cfg: StudyConfig) -> list[MetricSpec]:
    """The dctqa configurations of ``cfg`` in report order (every backbone in every domain,
    then the pixel domain); :class:`InputError` when two share a column name."""
    specs = [MetricSpec(column_name(d, b), b, d) for b in cfg.backbones for d in cfg.domains]
    if cfg.pixel:
        specs.append(MetricSpec(column_name(PIXEL, PIXEL), PIXEL, PIXEL))
    cols = [s.column for s in specs]
    if len(set(cols)) != len(cols):
        raise InputError(f"two backbones give the same column name: {cols}")
    return specs


def model_identity(name: str, cache_root: str | os.PathLike) -> str:
    """Content hash (sha256 hex) of an ``onnx:PATH`` model file (memoised under
    ``cache_root``), else the name itself; :class:`InputError` for a missing ONNX file."""
    from ..fileio import file_sha256

    spec = parse_spec(name)
    if spec.kind == "onnx":
        p = spec.path
        if not p.is_file():
            raise InputError(f"model file {str(p)!r} not found (from {name!r})")
        return file_sha256(p, memo_dir=Path(cache_root))
    return name


def spec_key(spec: MetricSpec, cache_root: str | os.PathLike, weights: str | None) -> dict:
    """The part of the score stage's key that one configuration contributes."""
    from ..constants import EPSILON, METRIC_VERSION

    return {"backbone": "onnx" if parse_spec(spec.backbone).kind == "onnx" else spec.backbone,
            "model": model_identity(spec.backbone, cache_root), "domain": spec.domain,
            "epsilon": EPSILON, "metric_version": METRIC_VERSION, "weights": weights}


def score_key(ref_sha256: str, dist_sha256: str, spec_keys: Sequence[dict], specs: Sequence[MetricSpec],
              baselines: Sequence[str], stride: int) -> dict:
    """Cache key of the score stage for one variant (sha256 of its file, ``dist_sha256``) against
    its reference (``ref_sha256``): every configuration's :func:`spec_key`, the columns, the
    baselines and the metric stride."""
    return {"stage": "score", "format": SCORE_FORMAT, "ref_sha256": ref_sha256, "dist_sha256": dist_sha256,
            "metrics": list(spec_keys), "metric_columns": [s.column for s in specs], "baselines": list(baselines),
            "stride": stride}


def score_pair(ref_path: str | os.PathLike, dist_path: str | os.PathLike, specs: Sequence[MetricSpec],
               baselines: Sequence[str], stride: int, device: str = "cpu", batch_size: int = 8,
               weights: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-frame values of every metric on frames ``0, stride, 2*stride, ...`` of two videos.

    Returns ``(arrays, timings)``: ``arrays`` holds ``frame_indices`` (F,) int64 and one (F,)
    float64 array per metric column (dctqa columns from ``specs``, baselines by name plus
    ``mse``); ``timings`` the seconds spent in ``decode``, ``metric`` and ``baselines``. Raises
    :class:`VideoError` when the two videos do not hold the same number of sampled frames or
    differ in size (:class:`dctqa.io.FramePairs` with ``strict=True``: a variant must keep
    every frame).
    """
    import torch

    from ..baselines import compute_baselines
    from ..io import FramePairs
    from ..metric import Metric

    metrics = [(s.column, Metric(backbone=s.backbone, domain=s.domain, device=device, batch_size=batch_size,
                                 weights=weights if s.domain != PIXEL else None)) for s in specs]
    values: dict[str, list[np.ndarray]] = {}
    timings = {"decode": 0.0, "metric": 0.0, "baselines": 0.0}
    n = 0
    t0 = time.perf_counter()
    for ref, dist, _ in FramePairs(ref_path, dist_path, batch_size, stride=stride, strict=True):
        timings["decode"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for col, m in metrics:
            values.setdefault(col, []).append(m.score(ref, dist))
        timings["metric"] += time.perf_counter() - t0
        if baselines:
            t0 = time.perf_counter()
            for k, v in compute_baselines(ref, dist, names=list(baselines), device=device,
                                          dtype=torch.float32).items():
                values.setdefault(k, []).append(v)
            timings["baselines"] += time.perf_counter() - t0
        n += len(ref)
        t0 = time.perf_counter()
    timings["decode"] += time.perf_counter() - t0
    if n == 0:
        raise VideoError(f"{str(ref_path)!r} holds no frame")
    out = {k: np.concatenate(v).astype(np.float64) for k, v in values.items()}
    out["frame_indices"] = np.arange(n, dtype=np.int64) * stride
    return out, timings


def init_score_worker(threads: int) -> None:
    """Initialiser of a score-stage worker process: ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
