"""Torchvision detector weights: torchvision's weights API, or an explicit state_dict file.

The one place that builds a torchvision detector with weights, for the backbones (first
layer) and the detectors (whole network). Nothing here downloads on its own: the
weights API does where a network exists; offline, the error says what to do.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .fileio import file_sha256

# name -> (builder, weights enum); which released weights torchvision runs with bn eps 0
TORCHVISION_DETECTORS: dict[str, tuple[str, str]] = {
    "fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
    "fasterrcnn_resnet50_fpn_v2": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights"),
    "retinanet_resnet50_fpn": ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights"),
    "fcos_resnet50_fpn": ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights"),
    "maskrcnn_resnet50_fpn": ("maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights"),
    "fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn",
                                          "FasterRCNN_MobileNet_V3_Large_FPN_Weights"),
}
#: Released weights that torchvision's builders run with batch-norm eps = 0 (legacy checkpoints).
ZERO_EPS = {("fasterrcnn_resnet50_fpn", "COCO_V1"), ("retinanet_resnet50_fpn", "COCO_V1"),
            ("maskrcnn_resnet50_fpn", "COCO_V1")}


def hub_cache_path(url: str) -> Path:
    """Where torch's hub cache keeps the file published at ``url`` (honours TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def is_published_file(sha256: str, url: str) -> bool:
    """Whether a file with this sha256 is the one at ``url`` (hub names end in ``-<sha256 prefix>.pth``)."""
    m = re.search(r"-([0-9a-f]{8,})\.[^.]+$", os.path.basename(url))
    return bool(m) and sha256.startswith(m.group(1))


def missing_weights_message(name: str, url: str, error: BaseException | str | None = None) -> str:
    """What to do when the COCO weights of ``name`` (published at ``url``) are not available."""
    if isinstance(error, BaseException):
        why = f" ({type(error).__name__}: {error})"
    else:
        why = f" ({error})" if error else ""
    from .settings import shared_dir

    try:
        onnx = shared_dir() / "models" / "yolox_nano.onnx"
        example = str(onnx) if onnx.is_file() else "path/to/model.onnx"
    except Exception:  # a malformed DCTQA_SHARED must not hide this message
        example = "path/to/model.onnx"
    return (f"no COCO weights for {name!r}: torchvision could not find them in its cache and could not "
            f"download them{why}.\n"
            f"  Either, on a machine with network, download {url}\n"
            f"  and place it at {hub_cache_path(url)} (the cache torchvision reads offline; set TORCH_HOME "
            f"to move it),\n"
            f"  or pass the file explicitly: --weights FILE (Python: weights=FILE), a state_dict of the "
            f"whole detector.\n"
            f"  Without detector weights, use an ONNX detector's first layer (e.g. YOLOX-Nano):\n"
            f"    Python: dctqa.create_metric(\"dctqa\", backbone=\"onnx:{example}\")  "
            f"(or dctqa.Metric(backbone=\"onnx:{example}\"))\n"
            f"    CLI:    --backbone onnx:{example}\n"
            f"  or the CNN-free 'pixel' backbone (backbone=\"pixel\").")


def can_reach(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host and port opens within ``timeout_s`` seconds
    (name lookup included; it runs in a helper thread so that a hanging resolver cannot block)."""
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(result and result[0])


def read_state_dict(path: str | os.PathLike, name: str) -> dict:
    """A state_dict from ``path`` (also unwraps ``{"model": ...}`` / ``{"state_dict": ...}``)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise WeightsError(f"weights file {str(p)!r} does not exist")
    if not p.is_file():
        raise WeightsError(f"weights path {str(p)!r} is {'a directory' if p.is_dir() else 'not a regular file'}, "
                           f"expected a file written by torch.save")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise WeightsError(f"cannot read weights file {str(p)!r}: it is not a torch checkpoint (expected a "
                           f"state_dict saved with torch.save; reading it failed with {type(exc).__name__})") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise WeightsError(f"weights file {str(p)!r} holds a {type(obj).__name__}, expected a state_dict "
                           f"(parameter name -> tensor) of {name}")
    return obj


def build_detector(name: str, weights: str | os.PathLike | None = None, **model_kwargs: Any) -> tuple[Any, str]:
    """Torchvision detector ``name`` in eval mode with weights, and an id of those weights.

    weights: ``None`` -> the weights enum's DEFAULT through torchvision's weights API
    (its cache, or a download where a network exists); an enum member name such as
    ``"COCO_V1"`` (or ``"FasterRCNN_ResNet50_FPN_Weights.COCO_V1"``) -> that member, same
    way; a path -> a state_dict file of the whole detector (released files are recognised
    by their hash and run as torchvision runs them). Raises :class:`WeightsError` with
    instructions otherwise.
    """
    from torchvision.models import detection

    if name not in TORCHVISION_DETECTORS:
        raise WeightsError(f"{name!r} is not a torchvision detector dctqa knows: {sorted(TORCHVISION_DETECTORS)}")
    builder_name, enum_name = TORCHVISION_DETECTORS[name]
    builder = getattr(detection, builder_name)
    enum_cls = getattr(detection, enum_name)
    enum = enum_cls.DEFAULT if weights is None else None
    if isinstance(weights, str) and not Path(weights).exists():
        prefix, _, member = weights.rpartition(".")
        if prefix not in ("", enum_name) or member not in enum_cls.__members__:
            raise WeightsError(f"weights file {weights!r} does not exist (expected a state_dict FILE of {name}, "
                               f"or one of {list(enum_cls.__members__)})")
        enum = enum_cls[member]
    if enum is not None:
        # torch's hub prints 'Downloading: "<url>"' before it tries; offline that line is misleading,
        # so without a cached copy the network is checked first and the clear error given at once.
        if not hub_cache_path(enum.url).is_file() and not can_reach(enum.url):
            raise WeightsError(missing_weights_message(name, enum.url, f"not in the cache and no network: "
                                                       f"{enum.url.split('/')[2]} cannot be reached"))
        try:
            model = builder(weights=enum, progress=False, **model_kwargs)
        except Exception as exc:
            raise WeightsError(missing_weights_message(name, enum.url, exc)) from None
        return model.eval(), f"torchvision:{enum_name}.{enum.name}"

    state = read_state_dict(weights, name)
    model = builder(weights=None, weights_backbone=None, **model_kwargs)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise WeightsError(f"weights file {str(weights)!r} does not fit {name!r}: "
                           f"{str(exc).splitlines()[0]}") from None
    # Released files were saved from FrozenBatchNorm2d layers, which have no
    # ``num_batches_tracked`` buffer; every other key must match exactly.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(f"weights file {str(weights)!r} does not fit {name!r}: {len(missing)} missing keys "
                           f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}); "
                           f"is it a state_dict of this detector?")
    sha = file_sha256(weights)
    for member in enum_cls:
        if is_published_file(sha, member.url) and (name, member.name) in ZERO_EPS:
            from torchvision.models.detection._utils import overwrite_eps

            overwrite_eps(model, 0.0)  # as torchvision's builder runs this checkpoint
    return model.eval(), f"file-sha256:{sha}"
