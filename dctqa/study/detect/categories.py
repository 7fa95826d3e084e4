"""COCO category ids: the 91-id space of the COCO annotations and its 80 used classes."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: COCO category id of "person".
PERSON = 1


@lru_cache(maxsize=1)
def coco_names() -> tuple[str, ...]:
    """Names indexed by COCO category id 0..90 (0 is background, unused ids are ``"N/A"``).

    Taken from torchvision's COCO weights metadata, so it matches torchvision detectors.
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    return tuple(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])


@lru_cache(maxsize=1)
def coco80_to_coco91() -> np.ndarray:
    """(80,) int64: the COCO category id of each of the 80 contiguous training classes.

    Contiguous class ``i`` (as YOLO-family and most ONNX exports number them) is the
    ``i``-th id in 1..90 that names a category, e.g. 0 -> 1 (person), 11 -> 13 (stop sign),
    79 -> 90 (toothbrush).
    """
    ids = [i for i, n in enumerate(coco_names()) if n not in ("__background__", "N/A")]
    if len(ids) != 80:  # pragma: no cover - guards against a changed torchvision table
        raise RuntimeError(f"expected 80 COCO categories in torchvision's table, found {len(ids)}")
    return np.asarray(ids, dtype=np.int64)
