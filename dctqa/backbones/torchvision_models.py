"""First layers of torchvision detectors (weights through :mod:`dctqa.weights`)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..weights import TORCHVISION_DETECTORS, build_detector
from .base import IMAGENET, Backbone, Stem

#: Names of the torchvision detectors usable as backbones.
DETECTORS = tuple(TORCHVISION_DETECTORS)


def _affine_from_norm(norm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift of a (frozen) batch norm in eval mode, float64."""
    w = norm.weight.detach().double().numpy()
    b = norm.bias.detach().double().numpy()
    mean = norm.running_mean.detach().double().numpy()
    var = norm.running_var.detach().double().numpy()
    scale = w / np.sqrt(var + float(norm.eps))
    return scale, b - mean * scale


def load(name: str, weights: str | os.PathLike | None = None) -> Backbone:
    """Backbone of torchvision detector ``name``: its first conv (filters) and first block (stem).

    ResNet detectors: ``conv1`` (64 x 3 x 7 x 7) -> ``bn1`` -> ReLU; MobileNetV3:
    ``features[0]`` conv -> batch norm -> Hardswish. Preprocessing: torchvision's
    detection transform (RGB / 255, ImageNet mean and std).
    """
    model, weights_id = build_detector(name, weights)
    body = model.backbone.body
    if hasattr(body, "conv1"):
        conv, norm, act, layer = body.conv1, body.bn1, "relu", "backbone.body.conv1"
    else:  # MobileNetV3: Conv2dNormActivation(conv, bn, hardswish)
        first = body["0"]
        conv, norm, act, layer = first[0], first[1], "hardswish", "backbone.body.0"
    weight = conv.weight.detach().double().numpy().copy()
    scale, shift = _affine_from_norm(norm)
    if conv.bias is not None:
        shift = shift + scale * conv.bias.detach().double().numpy()
    pad = int(conv.padding[0])
    stem = Stem(weight=weight, stride=int(conv.stride[0]), padding=(pad, pad, pad, pad),
                scale=scale, shift=shift, activation=act)
    return Backbone(name=name, filters=weight, preprocess=IMAGENET, stem=stem, source=weights_id,
                    details={"layer": layer, "bn_eps": float(norm.eps)})
