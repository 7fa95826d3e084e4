"""Backbones: a detector's first-layer filter bank and its preprocessing, by name.

Names: ``pixel``; the torchvision detectors in :data:`TORCHVISION_DETECTORS`
(``fasterrcnn_resnet50_fpn`` is the paper's and the default); ``onnx:PATH``.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import BackboneError
from .base import IMAGENET, Backbone, Preprocess, Stem
from .onnx_model import YOLOX_PREPROCESS
from .spec import ONNX_PREFIX, PIXEL, ModelSpec, onnx_spec, parse_spec
from .torchvision_models import DETECTORS as TORCHVISION_DETECTORS

__all__ = ["Backbone", "Preprocess", "Stem", "IMAGENET", "YOLOX_PREPROCESS", "get_backbone",
           "backbone_names", "check_backbone", "TORCHVISION_DETECTORS", "ModelSpec", "parse_spec", "onnx_spec", "ONNX_PREFIX"]

_cache: dict[tuple, Backbone] = {}
_lock = threading.Lock()


def backbone_names() -> list[str]:
    """Names accepted by :func:`get_backbone` (``onnx:PATH`` stands for any ONNX file)."""
    return [PIXEL, *TORCHVISION_DETECTORS, onnx_spec("PATH")]


def check_backbone(name: object) -> ModelSpec:
    """Check backbone ``name`` before any work, without loading weights: a known name, or
    ``onnx:PATH`` whose file exists and loads as a backbone (milliseconds). Raises
    :class:`BackboneError`; returns the parsed spec."""
    spec = parse_spec(name)
    if spec.kind == "onnx":
        if not spec.path.is_file():
            raise BackboneError(f"model file {str(spec.path)!r} not found; pass the backbone as onnx:PATH "
                                f"of an existing ONNX file")
        get_backbone(spec.text)
    elif spec.kind == "named" and spec.text not in TORCHVISION_DETECTORS:
        raise BackboneError(f"unknown backbone {spec.text!r}; expected one of {backbone_names()}")
    return spec


def pixel_backbone() -> Backbone:
    """Identity bank, K = 3, 1 x 1, on RGB scaled to [0, 1] (METRIC.md, domain "pixel")."""
    filters = np.zeros((3, 3, 1, 1))
    for c in range(3):
        filters[c, c, 0, 0] = 1.0
    return Backbone(name=PIXEL, filters=filters, preprocess=Preprocess("RGB", 1.0 / 255.0),
                    stem=None, source="identity")


def get_backbone(name: str, weights: str | os.PathLike | None = None,
                 preprocess: Preprocess | None = None) -> Backbone:
    """Load backbone ``name``; results are cached per (name, weights, preprocess).

    Raises :class:`BackboneError` for unknown names and
    :class:`~dctqa.errors.WeightsError` when weights are missing or do not fit.
    """
    spec = parse_spec(name)
    key = (name, None if weights is None else os.path.abspath(weights), preprocess)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    if spec.kind == PIXEL:
        if weights is not None:
            raise BackboneError("backbone 'pixel' takes no weights")
        bb = pixel_backbone()
    elif spec.kind == "onnx":
        if weights is not None:
            raise BackboneError("onnx:PATH backbones read their weights from PATH; drop --weights")
        from . import onnx_model

        bb = onnx_model.load(spec.path, preprocess)
    elif name in TORCHVISION_DETECTORS:
        from . import torchvision_models

        bb = torchvision_models.load(name, weights)
    else:
        raise BackboneError(f"unknown backbone {name!r}; expected one of {backbone_names()}")
    with _lock:
        _cache[key] = bb
    return bb
