"""COCO category ids: the 91-id space of the COCO annotations and its 80 used classes."""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

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


def class_ids(spec: str | Iterable[int | str]) -> tuple[int, ...]:
    """COCO category ids (sorted, distinct) of ``spec``: a comma-separated string or a sequence
    of COCO class names (case-insensitive, e.g. ``"car,traffic light"``) and/or ids 1..90 that
    name a category (e.g. ``3``). An :class:`~dctqa.errors.InputError` names what is wrong and
    lists the valid names."""
    from ...errors import InputError

    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = coco_names()
    valid = {n.lower(): i for i, n in enumerate(names) if n not in ("__background__", "N/A")}
    ids: list[int] = []
    for item in items:
        text = str(item).strip()
        if text.isdigit() and int(text) in valid.values():
            ids.append(int(text))
        elif text.lower() in valid:
            ids.append(valid[text.lower()])
        else:
            raise InputError(f"unknown COCO class {text!r}: expected names or ids (1..90) of the 80 COCO classes, "
                             f"comma-separated, e.g. 'car,truck' or '3,8'; the names: {', '.join(sorted(valid))}")
    if not ids:
        raise InputError(f"no COCO class in {spec!r}: expected names or ids, e.g. 'car,truck'")
    return tuple(sorted(set(ids)))


def class_names(ids: Iterable[int]) -> list[str]:
    """The COCO names of category ids (as :func:`class_ids` reads them)."""
    return [coco_names()[int(i)] for i in ids]
