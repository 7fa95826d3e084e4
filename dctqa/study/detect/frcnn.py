"""torchvision's Faster R-CNN ResNet-50 FPN (the paper's detector) on RGB frames."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ...errors import InputError
from ...weights import build_detector
from .types import Detections, Detector, check_frames

NAME = "fasterrcnn_resnet50_fpn"


class FasterRCNNDetector(Detector):
    """torchvision ``fasterrcnn_resnet50_fpn`` with 91 COCO category ids.

    weights: as :func:`dctqa.weights.build_detector`: ``None`` (torchvision's weights API:
    its cache, or a download where a network exists; otherwise :class:`WeightsError` says
    how to get them), an enum member name such as ``"COCO_V1"``, or a FILE holding a
    state_dict of the full detector (``torch.save(model.state_dict(), FILE)``).
    ``min_size``/``max_size`` are torchvision's resize bounds (800/1333 as trained);
    frames are fed as RGB floats in [0, 1], the model normalises and resizes itself and
    returns boxes in frame pixels. Slow on a CPU (time per frame: benchmarks/RESULTS.md).
    """

    name = NAME

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu",
                 score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
                 min_size: int = 800, max_size: int = 1333, batch_size: int = 1) -> None:
        import torch

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

        model, self.weights_id = build_detector(NAME, weights, **kwargs)
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
