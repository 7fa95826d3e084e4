"""torchvision's Faster R-CNN ResNet-50 FPN (the paper's detector) on RGB frames."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError, WeightsError
from .hashing import file_sha256
from .types import Detections, Detector, check_frames

NAME = "fasterrcnn_resnet50_fpn"


def hub_cache_path(url: str) -> Path:
    """Where torch's hub cache keeps the file downloaded from ``url`` (honours TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def missing_weights_message(url: str, cached: Path) -> str:
    """The user-facing explanation when the COCO weights are not available offline."""
    return (f"no COCO weights for {NAME!r}: they are not in torch's hub cache and dctqa does not "
            f"download them.\n"
            f"  Either, on a machine with network, download {url}\n"
            f"  and copy it to {cached} (torch's hub cache; set TORCH_HOME to move it),\n"
            f"  or pass the file explicitly: --weights FILE (Python: weights=FILE), a state_dict "
            f"of the full detector.\n"
            f"  Without these weights, use the detector 'onnx:PATH' (e.g. YOLOX-Nano).")


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many exception types for unreadable files
        raise WeightsError(f"cannot read weights file {str(path)!r} as a torch state_dict: {exc}") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise WeightsError(f"weights file {str(path)!r} holds a {type(obj).__name__}, expected a state_dict "
                           f"(dict of parameter name -> tensor) of {NAME}")
    return obj


def _is_file_of(sha256: str, url: str) -> bool:
    """Whether a file with this sha256 is the one published at ``url`` (torch hub names carry
    the hash's first hex digits: ``name-<sha256 prefix>.pth``)."""
    m = re.search(r"-([0-9a-f]{8,})\.[^.]+$", os.path.basename(url))
    return bool(m) and sha256.startswith(m.group(1))


def _zero_bn_eps(model) -> None:
    """Set batch-norm eps to 0: torchvision's COCO_V1 Faster R-CNN weights come from a
    frozen batch norm without eps, and torchvision's builder runs them that way."""
    import torch
    from torchvision.ops import FrozenBatchNorm2d

    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
            m.eps = 0.0


class FasterRCNNDetector(Detector):
    """torchvision ``fasterrcnn_resnet50_fpn`` with 91 COCO category ids.

    weights: ``None`` (torchvision's ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``, used only
    when already in torch's hub cache; otherwise :class:`WeightsError` says how to get it),
    an enum member name such as ``"COCO_V1"``/``"DEFAULT"`` (same rule), or a FILE holding
    a state_dict of the full detector (``torch.save(model.state_dict(), FILE)``).
    ``min_size``/``max_size`` are torchvision's resize bounds (800/1333 as trained);
    frames are fed as RGB floats in [0, 1], the model normalises and resizes itself and
    returns boxes in frame pixels. About 6 s per 768x576 frame on 2 CPU cores.
    """

    name = NAME

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu",
                 score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
                 min_size: int = 800, max_size: int = 1333, batch_size: int = 1) -> None:
        import torch
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise InputError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        if int(max_detections) < 1 or int(min_size) < 1 or int(max_size) < int(min_size) or int(batch_size) < 1:
            raise InputError(f"need max_detections >= 1, 1 <= min_size <= max_size, batch_size >= 1; got "
                             f"{max_detections}, {min_size}, {max_size}, {batch_size}")
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise InputError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but torch sees no CUDA device")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self.min_size, self.max_size, self.batch_size = int(min_size), int(max_size), int(batch_size)
        kwargs = dict(box_score_thresh=self.score_threshold, box_nms_thresh=self.nms_threshold,
                      box_detections_per_img=self.max_detections, min_size=self.min_size,
                      max_size=self.max_size)

        enum = None
        if weights is None:
            enum = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
        elif isinstance(weights, str) and not Path(weights).exists():
            prefix, _, member = weights.rpartition(".")
            if prefix in ("", "FasterRCNN_ResNet50_FPN_Weights") and \
                    member in FasterRCNN_ResNet50_FPN_Weights.__members__:
                enum = FasterRCNN_ResNet50_FPN_Weights[member]
            else:
                raise WeightsError(f"weights file {weights!r} does not exist (expected a state_dict FILE of "
                                   f"{NAME}, or one of {[w.name for w in FasterRCNN_ResNet50_FPN_Weights]})")
        if enum is not None:
            cached = hub_cache_path(enum.url)
            if not cached.is_file():
                raise WeightsError(missing_weights_message(enum.url, cached))
            try:
                model = fasterrcnn_resnet50_fpn(weights=enum, progress=False, **kwargs)
            except Exception as exc:
                raise WeightsError(f"torchvision could not load {cached} ({type(exc).__name__}: {exc}); "
                                   f"the file may be truncated: delete it and fetch {enum.url} again") from None
            self.weights_id = f"torchvision:{type(enum).__name__}.{enum.name}"
        else:
            path = Path(weights)
            if not path.is_file():
                raise WeightsError(f"weights file {str(path)!r} is not a regular file")
            state = _read_state_dict(path)
            model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **kwargs)
            try:
                res = model.load_state_dict(state, strict=False)
            except RuntimeError as exc:  # shape mismatches
                raise WeightsError(f"weights file {str(path)!r} does not fit {NAME} with 91 classes: "
                                   f"{str(exc).splitlines()[0]} ...") from None
            # Pretrained files use frozen batch norm (no num_batches_tracked buffers); in eval
            # mode plain batch norm computes the same function, so those keys may be absent.
            missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
            unexpected = [k for k in res.unexpected_keys if not k.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise WeightsError(f"weights file {str(path)!r} does not fit {NAME} with 91 classes: "
                                   f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                                   f"unexpected keys (e.g. {unexpected[:3]})")
            sha = file_sha256(path)
            if _is_file_of(sha, FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url):
                _zero_bn_eps(model)  # as torchvision runs COCO_V1
            self.weights_id = f"file-sha256:{sha}"
        self.model = model.eval().to(self.device)

    def settings(self) -> dict[str, Any]:
        return {"type": "torchvision-fasterrcnn", "weights": self.weights_id,
                "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
                "max_detections": self.max_detections, "min_size": self.min_size,
                "max_size": self.max_size, "version": 1}

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        import torch

        frames = check_frames(frames)
        out: list[Detections] = []
        with torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                batch = [torch.from_numpy(f).to(self.device).permute(2, 0, 1).float().div_(255.0)
                         for f in frames[i:i + self.batch_size]]
                for r in self.model(batch):
                    out.append(Detections(r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy(),
                                          r["labels"].cpu().numpy()))
        return out
