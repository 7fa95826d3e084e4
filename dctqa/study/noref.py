"""The study's no-reference column ``dctqa_nr`` (``dctqa study --nr-model CHECKPOINT``).

The no-reference wing (``dctqa/nr/``) sits above the study in the layers, so the study never
imports it: it asks the core registry for the metric (``create_metric("dctqa_nr",
model=CHECKPOINT, backbone=...)``, which imports the wing on use) and calls the object's
methods (``check_options``, ``predict_video``).

What it computes: the predicted Q of the *compressed* frames only (never the reference), on
the frames the score stage scores (``0, s, 2s, ...``, ``s = metric_stride``), pooled per
window like every other per-frame column (:func:`dctqa.study.tables.window_rows`). One
cached ``nr`` stage result per variant, keyed by the variant's and the checkpoint's sha256,
the patch count, the sampling, the seed and the stride. The seed (0) and the batching (4
frames) are those of ``dctqa predict``, so the per-frame values equal
``dctqa predict VARIANT --model CHECKPOINT --frame-stride s``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DctqaError, InputError, VideoError
from .run import StudyRun
from .scoring import NR_COLUMN

NR_FORMAT = 1
#: Seed of the patch draws and frames per prediction batch: ``dctqa predict``'s defaults
#: (each batch's draws are seeded by ``NR_SEED`` + its first frame number).
NR_SEED, NR_BATCH = 0, 4


def load_nr_model(path: str | os.PathLike, backbones: Sequence[str], *, patches: int, sampling: str,
                  frame_sizes: Sequence[tuple[int, int]] = (), device: str = "cpu") -> Any:
    """The registry's ``dctqa_nr`` metric for checkpoint ``path``, checked before any work.

    Refuses (a :class:`~dctqa.errors.DctqaError` saying why) a missing or damaged checkpoint,
    one trained for another metric version, or -- when the study scores ``backbones`` -- one
    whose targets came from none of them; bad ``patches`` / ``sampling``; and frames
    (``(height, width)`` in pixels) smaller than the model's patch.
    """
    from ..registry import create_metric

    errors: list[DctqaError] = []
    model = None
    for backbone in list(backbones) or [None]:
        try:
            model = create_metric(NR_COLUMN, model=path, backbone=backbone, device=device)
            break
        except DctqaError as exc:
            errors.append(exc)
    if model is None:
        if len(errors) == 1:
            raise errors[0]
        raise type(errors[0])("--nr-model fits none of the study's backbones: " + "; ".join(map(str, errors)))
    for h, w in frame_sizes or [(None, None)]:
        model.check_options(patches=patches, sampling=sampling, height=h, width=w)
    return model


def nr_key(dist_sha256: str, model_sha256: str, patches: int, sampling: str, stride: int) -> dict:
    """Cache key of the ``nr`` stage for one variant."""
    return {"stage": "nr", "format": NR_FORMAT, "dist_sha256": dist_sha256, "model_sha256": model_sha256,
            "patches": int(patches), "sampling": sampling, "seed": NR_SEED, "batch": NR_BATCH,
            "stride": int(stride)}


def predict_variant(model: Any, path: Path, patches: int, sampling: str, stride: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-frame predicted Q of one compressed variant on frames ``0, stride, ...``:
    (``{"frame_indices": (F,) int64, "dctqa_nr": (F,) float64 (> 0, finite)}``,
    ``{"nr": seconds}``)."""
    pred = model.predict_video(path, patches=patches, sampling=sampling, seed=NR_SEED, frame_stride=stride,
                               batch_size=NR_BATCH)
    q = np.asarray(pred.q, dtype=np.float64)
    if q.size == 0:
        raise VideoError(f"{str(path)!r} holds no frame to predict")
    if not np.isfinite(q).all():
        raise InputError(f"the no-reference model predicted non-finite values on {str(path)!r} "
                         f"({int((~np.isfinite(q)).sum())} of {q.size} frames); check the checkpoint")
    return ({"frame_indices": np.asarray(pred.frame_numbers, dtype=np.int64), NR_COLUMN: q},
            {"nr": float(pred.seconds)})


def nr_stage(run: StudyRun, on_step: Callable[[int], None] | None = None) -> None:
    """Add the ``dctqa_nr`` array of ``run.nr_model`` (checkpoint ``run.cfg.nr_model``) to
    ``run.frames[stem][variant]`` for every variant of the run (cached per variant), with
    ``cfg.nr_patches`` patches placed by ``cfg.nr_sampling`` on every ``cfg.metric_stride``-th
    frame. Raises :class:`VideoError` when the predicted frames are not the frames the score
    stage scored."""
    import time

    from ..fileio import file_sha256

    cfg, memo = run.cfg, run.cache_root
    patches, sampling, stride = cfg.nr_patches, cfg.nr_sampling, cfg.metric_stride
    model_sha256 = file_sha256(cfg.nr_model, memo_dir=memo)
    for stem, v in run.pairs():
        t0 = time.perf_counter()
        key = nr_key(file_sha256(v.path, memo_dir=memo), model_sha256, patches, sampling, stride)
        arrs, meta = run.cache.timed_arrays(
            "nr", key, lambda v=v: predict_variant(run.nr_model, v.path, patches, sampling, stride))
        scored = run.frames[stem][v.name]
        if not np.array_equal(arrs["frame_indices"], scored["frame_indices"]):
            raise VideoError(f"{v.path.name}: no-reference prediction on {len(arrs['frame_indices'])} frames, "
                             f"the score stage scored {len(scored['frame_indices'])}")
        scored[NR_COLUMN] = arrs[NR_COLUMN]
        run.add_time("nr", float(meta["seconds"]), 0.0 if meta["cached"] else time.perf_counter() - t0)
        if on_step is not None:
            on_step(1)
