"""Object detectors, cached detections, ground truth and AP per window of frames.

Names for :func:`create_detector`: ``"onnx:PATH"`` (YOLOX exported to ONNX, run by
onnxruntime) and ``"fasterrcnn_resnet50_fpn"`` (torchvision, the paper's detector).
Every detector returns, per frame, :class:`Detections` with boxes in pixels of the
original frame and COCO category ids (1 = person).

Typical use (pseudo ground truth from the reference video)::

    det = create_detector("onnx:yolox_nano.onnx")
    fi, ref = cached_detect(det, "ref.mp4", frame_stride=2, cache_dir=cache)
    fi, dist = cached_detect(det, "crf41.mp4", frame_stride=2, cache_dir=cache)
    windows = window_ap(pseudo_ground_truth(ref), dist, fi, window=100)
"""
from __future__ import annotations

import os
from typing import Any

from ...backbones.spec import parse_spec
from ...errors import InputError
from .ap import WindowAP, window_ap
from .cache import cached_detect
from .groundtruth import load_coco_gt, load_mot_gt, pseudo_ground_truth
from .types import Detections, Detector

__all__ = ["Detections", "Detector", "check_detector", "create_detector", "detector_names", "cached_detect", "WindowAP",
           "window_ap", "pseudo_ground_truth", "load_mot_gt", "load_coco_gt"]


def detector_names() -> list[str]:
    """Names accepted by :func:`create_detector` (``onnx:PATH`` stands for any ONNX file)."""
    return ["onnx:PATH", "fasterrcnn_resnet50_fpn"]


def check_detector(name: object, weights: str | os.PathLike | None = None, device: str = "cpu") -> None:
    """Check detector ``name``, its ``weights`` and ``device`` before any work, without
    building it: a known name, ``onnx:PATH`` of an existing file (and no weights), a weights
    path that exists, a usable device. Raises :class:`InputError`."""
    from ...metric import check_device

    if not isinstance(name, str) or not name:
        raise InputError(f"detector must be a non-empty name, one of {detector_names()}; got {name!r}")
    spec = parse_spec(name)
    if spec.kind == "onnx":
        if weights is not None:
            raise InputError("onnx:PATH detectors read their weights from PATH; drop --weights")
        if not spec.path.is_file():
            raise InputError(f"detector model file {str(spec.path)!r} not found; pass --detector onnx:PATH")
    elif name != "fasterrcnn_resnet50_fpn":
        raise InputError(f"unknown detector {name!r}; known: {detector_names()}")
    elif weights is not None and (os.sep in str(weights) or str(weights).endswith((".pt", ".pth"))) \
            and not os.path.isfile(weights):
        raise InputError(f"detector weights file {str(weights)!r} not found")
    check_device(device)


def create_detector(name: str, weights: str | os.PathLike | None = None, device: str = "cpu",
                    score_threshold: float = 0.05, **options: Any) -> Detector:
    """Build detector ``name`` on ``device`` ("cpu", "cuda", "cuda:N").

    ``weights``: for ``fasterrcnn_resnet50_fpn`` a state_dict FILE or a torchvision weights
    name (default: COCO_V1 from torch's hub cache; :class:`~dctqa.errors.WeightsError`
    explains how to get it when absent); ``onnx:PATH`` detectors take none.
    ``score_threshold`` in [0, 1]: detections scoring below it are dropped.
    ``options`` go to the detector class: ``nms_threshold``, ``max_detections`` (both),
    ``input_size``, ``num_threads`` (ONNX), ``min_size``, ``max_size``, ``batch_size``
    (Faster R-CNN).
    Raises InputError (unknown name or bad option), BackboneError (unusable ONNX file),
    WeightsError (missing or unfitting weights).
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"detector must be a non-empty name, one of {detector_names()}; got {name!r}")
    try:
        spec = parse_spec(name)
        if spec.kind == "onnx":
            if weights is not None:
                raise InputError("onnx:PATH detectors read their weights from PATH; drop --weights")
            from .yolox_onnx import YoloxOnnxDetector

            return YoloxOnnxDetector(spec.path, device=device, score_threshold=score_threshold, **options)
        if name == "fasterrcnn_resnet50_fpn":
            from .frcnn import FasterRCNNDetector

            return FasterRCNNDetector(weights, device=device, score_threshold=score_threshold, **options)
    except TypeError as exc:  # an option the detector does not take
        raise InputError(f"detector {name!r}: {exc}") from None
    raise InputError(f"unknown detector {name!r}; known: {detector_names()}")
