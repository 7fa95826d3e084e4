"""First layers of torchvision detectors, loaded through torchvision's weights API."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import WeightsError
from .base import IMAGENET, Backbone, Stem

# name -> (builder attribute, weights enum attribute, stem kind)
DETECTORS: dict[str, tuple[str, str, str]] = {
    "fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights", "resnet"),
    "fasterrcnn_resnet50_fpn_v2": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights", "resnet"),
    "retinanet_resnet50_fpn": ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights", "resnet"),
    "fcos_resnet50_fpn": ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights", "resnet"),
    "maskrcnn_resnet50_fpn": ("maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights", "resnet"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn",
                                          "FasterRCNN_MobileNet_V3_Large_FPN_Weights", "mobilenet"),
}


def _load_state_dict(name: str, weights: str | os.PathLike | None) -> tuple[dict, str]:
    import torch
    from torchvision.models import detection

    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {str(path)!r} does not exist")
        try:
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad files
            raise WeightsError(f"cannot read weights file {str(path)!r} as a torch state_dict: {exc}") from None
        for key in ("model", "state_dict"):
            if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise WeightsError(f"weights file {str(path)!r} holds a {type(obj).__name__}, expected a state_dict")
        return obj, str(path)

    enum = getattr(detection, DETECTORS[name][1]).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    try:
        state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        raise WeightsError(
            f"no COCO weights for {name!r}: torchvision could not find them in its cache and could "
            f"not download them ({type(exc).__name__}: {exc}).\n"
            f"  Either, on a machine with network, download {enum.url}\n"
            f"  and place it at {cached} (the cache torchvision reads offline; set TORCH_HOME to move it),\n"
            f"  or pass the file explicitly: --weights FILE (Python: weights=FILE).\n"
            f"  Without detector weights, use backbone 'onnx:PATH' (e.g. YOLOX-Nano) or 'pixel'."
        ) from None
    return state, str(cached)


def _affine_from_norm(norm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift of a (frozen) batch norm in eval mode, float64."""
    w = norm.weight.detach().double().numpy()
    b = norm.bias.detach().double().numpy()
    mean = norm.running_mean.detach().double().numpy()
    var = norm.running_var.detach().double().numpy()
    eps = float(getattr(norm, "eps", 1e-5))
    scale = w / np.sqrt(var + eps)
    return scale, b - mean * scale


def load(name: str, weights: str | os.PathLike | None = None) -> Backbone:
    """Backbone of torchvision detector ``name`` (see :data:`DETECTORS`).

    Weights come from ``weights`` (a state_dict of the whole detector) or, when it is
    ``None``, from torchvision's weights API (its cache, or a download where a network
    exists). Raises :class:`WeightsError` with instructions when neither works.
    """
    from torchvision.models import detection

    builder: Callable = getattr(detection, DETECTORS[name][0])
    state, source = _load_state_dict(name, weights)
    model = builder(weights=None, weights_backbone=None)
    # Released COCO weights were saved from FrozenBatchNorm2d layers, which have no
    # ``num_batches_tracked`` buffer; every other key must match exactly.
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"weights from {source!r} do not fit {name!r}: {first}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights from {source!r} do not fit {name!r}: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(result.unexpected_keys)} unexpected keys "
            f"(e.g. {result.unexpected_keys[:3]}); is it the state_dict of this detector?")

    body = model.backbone.body
    if DETECTORS[name][2] == "resnet":
        conv, norm, act = body.conv1, body.bn1, "relu"
    else:  # MobileNetV3: features[0] = Conv2dNormActivation(conv, bn, hardswish)
        first = body["0"] if "0" in dict(body.named_children()) else body[0]
        conv, norm, act = first[0], first[1], "hardswish"
    weight = conv.weight.detach().double().numpy().copy()
    scale, shift = _affine_from_norm(norm)
    if conv.bias is not None:
        shift = shift + scale * conv.bias.detach().double().numpy()
    pad = int(conv.padding[0])
    stem = Stem(weight=weight, stride=int(conv.stride[0]), padding=(pad, pad, pad, pad),
                scale=scale, shift=shift, activation=act)
    return Backbone(name=name, filters=weight, preprocess=IMAGENET, stem=stem, source=source,
                    details={"layer": "backbone.body.conv1" if act == "relu" else "backbone.body.0"})
