"""``dctqa predict VIDEO --model model.pt``: per-frame no-reference Q of a compressed video,
written as the same libvmaf-style log as ``dctqa score`` (metric name ``dctqa_nr``).

Imports run one way: :mod:`dctqa.nr.model` imports this module (for
:meth:`NRModel.predict_video`), never the reverse; what this module needs of a model is the
:class:`FramePredictor` protocol, which :class:`dctqa.nr.model.NRModel` satisfies.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import InputError


#: Patch count and placement of a prediction when neither the caller nor the model says
#: otherwise (a torch checkpoint records no recommendation; an ONNX export's metadata and the
#: shipped default model's ``nr-default.json`` do: :func:`resolve_options`).
DEFAULT_OPTIONS: dict[str, Any] = {"patches": 2, "sampling": "activation"}


class FramePredictor(Protocol):
    """What :func:`predict_video` and :func:`prediction_log` use of a model: ``prov`` (its
    provenance: ``metric_version``, ``backbone``, ``backbone_sha256``, ``target_std``),
    ``calibration`` (its stored conformal calibration or ``None``), ``recommended`` (its
    ``patches`` and ``sampling`` when none are given), ``source`` (where it was loaded from:
    ``model``, ``model_sha256``; ``None`` if not from a file), :meth:`check_options` and
    :meth:`predict` (as :class:`dctqa.nr.model.NRModel`'s)."""

    prov: Any
    calibration: dict | None
    recommended: dict
    source: dict | None

    def check_options(self, *, patches: int = 2, sampling: str = "activation", height: int | None = None,
                      width: int | None = None) -> None: ...

    def predict(self, frames: np.ndarray, *, patches: int | None = None, sampling: str | None = None, seed: int = 0,
                batch_size: int = 8) -> np.ndarray: ...


def resolve_options(model: Any, patches: int | None = None, sampling: str | None = None) -> tuple[int, str]:
    """``(patches, sampling)``: the given ones, else the model's ``recommended`` (absent:
    :data:`DEFAULT_OPTIONS`)."""
    rec = getattr(model, "recommended", None) or DEFAULT_OPTIONS
    return (rec["patches"] if patches is None else patches), (rec["sampling"] if sampling is None else sampling)


def as_frames(frames: Any) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 RGB from one ``H x W x 3`` frame, a list of them, ``[N, H, W, 3]``,
    or ``[N, 3, H, W]`` (array or torch tensor: what :class:`dctqa.serve.StreamScorer` passes a
    no-reference scorer); raises :class:`InputError` for anything else."""
    if hasattr(frames, "detach"):  # a torch tensor
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim == 1 and arr.size == 0:  # no frames: no predictions
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[1] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"frames must be uint8 RGB [N, H, W, 3] (or [N, 3, H, W]), got {arr.dtype} {arr.shape}")
    return arr


@dataclass
class Prediction:
    """q: predicted Q per scored frame; frame_numbers: their source frame numbers; seconds:
    wall time of decoding and prediction together."""

    q: np.ndarray
    frame_numbers: np.ndarray
    seconds: float


def predict_video(model: FramePredictor, video: str | os.PathLike, *, patches: int | None = None,
                  sampling: str | None = None, seed: int = 0, frame_stride: int = 1, max_frames: int | None = None,
                  batch_size: int = 4, progress: bool = False) -> Prediction:
    """Predict every ``frame_stride``-th frame of ``video`` (patch draws seeded per frame);
    ``patches``/``sampling`` ``None``: the model's (:func:`resolve_options`)."""
    from ..io import iter_frames, probe
    from ..progress import progress as progress_bar

    patches, sampling = resolve_options(model, patches, sampling)
    model.check_options(patches=patches, sampling=sampling)
    if frame_stride < 1 or batch_size < 1:
        raise InputError("frame_stride and batch_size must be >= 1")
    total = probe(video).frames
    t0 = time.perf_counter()
    qs, nums, batch = [], [], []
    bar = progress_bar(total and -(-total // frame_stride), "predict", unit="frame", enabled=progress)

    def flush() -> None:
        first = nums[len(qs)] if len(qs) < len(nums) else 0
        qs.extend(model.predict(np.stack(batch), patches=patches, sampling=sampling, seed=seed + first,
                                batch_size=batch_size))
        bar.update(len(batch))
        batch.clear()

    max_src = None if max_frames is None else max_frames * frame_stride
    for i, frame in enumerate(iter_frames(video, stride=frame_stride, max_frames=max_src)):
        nums.append(i * frame_stride)
        batch.append(frame)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    bar.close()
    return Prediction(np.asarray(qs, dtype=np.float64), np.asarray(nums, dtype=np.int64), time.perf_counter() - t0)


def prediction_log(model: FramePredictor, pred: Prediction, video: str, patches: int, sampling: str, seed: int) -> dict:
    """The libvmaf-style log (``dctqa.log.build_log``) of a prediction: per frame ``dctqa_nr``
    (predicted Q) and its 90 % interval ``dctqa_nr_low`` / ``dctqa_nr_high`` (Q; ``null`` when
    the model has no calibration, as then ``params.interval`` is); ``params.model`` says which
    model (its path, or ``"default"`` for the shipped one) and ``params.model_sha256`` its file's."""
    from ..log import build_log
    from .conformal import interval, interval_params

    calibration = getattr(model, "calibration", None)
    low, high = interval(pred.q, calibration, model.prov.target_std)
    source = getattr(model, "source", None) or {}
    params = {"metric": "dctqa_nr", "model": source.get("model"), "model_sha256": source.get("model_sha256"),
              "model_metric_version": model.prov.metric_version,
              "backbone": model.prov.backbone, "backbone_sha256": model.prov.backbone_sha256,
              "distorted": str(video), "patches": patches, "sampling": sampling, "seed": seed,
              "frames_per_second": len(pred.q) / pred.seconds if pred.seconds > 0 else None,
              "interval": interval_params(calibration, model.prov.target_std)}
    # the interval per frame beside the prediction (null for a model without a calibration)
    return build_log(pred.q, pred.frame_numbers, params, metric="dctqa_nr",
                     extra={"dctqa_nr_low": low, "dctqa_nr_high": high})
