"""The result type of every detector and the interface detectors implement."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...errors import InputError


@dataclass
class Detections:
    """Boxes found in (or annotated on) one frame.

    boxes:  (M, 4) float32, ``x1, y1, x2, y2`` in pixels of the original frame
            (x to the right, y down; ``x2 >= x1``, ``y2 >= y1``).
    scores: (M,) float32 confidence in [0, 1] (1 for annotations).
    labels: (M,) int64 COCO category ids (1..90; 1 = person).
    ignore: optional (M,) bool; ``True`` marks a ground-truth region that is neither a miss
            nor, when a detection falls on it, a false positive (COCO ``iscrowd``). ``None``
            means no box is ignored. Only ground truth uses it.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        m = len(self.boxes)
        if len(self.scores) != m or len(self.labels) != m:
            raise InputError(f"Detections: {m} boxes but {len(self.scores)} scores and "
                             f"{len(self.labels)} labels; expected one of each per box")
        if self.ignore is not None:
            self.ignore = np.asarray(self.ignore, dtype=bool).reshape(-1)
            if len(self.ignore) != m:
                raise InputError(f"Detections: {m} boxes but {len(self.ignore)} ignore flags")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Detections":
        """No boxes."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def select(self, keep: np.ndarray) -> "Detections":
        """The boxes where boolean/integer index ``keep`` selects."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          None if self.ignore is None else self.ignore[keep])

    @property
    def n_counted(self) -> int:
        """Number of boxes that are not ignore regions."""
        return len(self) if self.ignore is None else int((~self.ignore).sum())


class Detector(abc.ABC):
    """An object detector on RGB frames.

    ``name`` identifies the model family (``"onnx:yolox_nano.onnx"``,
    ``"fasterrcnn_resnet50_fpn"``); :meth:`settings` holds everything that changes the
    outputs (weights identity, thresholds, input size) and is used in cache keys.
    """

    name: str

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable dict of everything that changes :meth:`detect`'s output."""

    @abc.abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect objects in each frame (HxWx3 uint8 RGB); one :class:`Detections` per frame."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.settings()!r})"


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate a list of HxWx3 uint8 RGB frames; returns them as a list."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise InputError("detect() takes a list of frames; wrap a single HxWx3 frame in a list")
    out = list(frames)
    for i, f in enumerate(out):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            desc = (f"{f.dtype} array of shape {f.shape}" if isinstance(f, np.ndarray)
                    else type(f).__name__)
            raise InputError(f"frame {i}: expected an HxWx3 uint8 RGB array, got {desc}")
        if f.shape[0] < 1 or f.shape[1] < 1:
            raise InputError(f"frame {i}: empty frame of shape {f.shape}")
    return out
