"""Ground truth for AP: pseudo ground truth from the reference video, or annotation files.

Frame numbering everywhere in :mod:`dctqa.study.detect` is the 0-based decode order of the
video (source frame numbers, as :func:`~dctqa.study.detect.cache.cached_detect` reports them).

Annotation loaders return ``dict[frame index -> Detections]`` holding exactly the frames
that are annotated (an annotated frame with no object maps to empty Detections);
:func:`~dctqa.study.detect.ap.window_ap` evaluates only those frames. Scores of ground truth
are 1; ``ignore`` marks regions that count neither as misses nor as false positives
(COCO ``iscrowd``, MOTChallenge's "not considered" rows and distractor classes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import InputError
from .categories import PERSON
from .types import Detections

#: MOTChallenge (MOT16/17/20) classes: 1 pedestrian is counted; 2 person on vehicle,
#: 7 static person, 8 distractor, 12 reflection are ignore regions (as in the benchmark's
#: own evaluation); the rest (vehicles, occluders) are dropped.
MOT_PERSON_CLASSES = (1,)
MOT_IGNORE_CLASSES = (2, 7, 8, 12)


def pseudo_ground_truth(reference: Sequence[Detections], score_threshold: float = 0.5,
                        categories: Iterable[int] | None = None) -> list[Detections]:
    """Detections on the reference (undistorted) video taken as ground truth.

    Keeps boxes with ``score >= score_threshold`` (in [0, 1]) and, when given, a label in
    ``categories`` (COCO ids); one entry per input frame, aligned with it.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise InputError(f"score_threshold must be in [0, 1], got {score_threshold}")
    cats = None if categories is None else np.asarray(list(categories), dtype=np.int64)
    out = []
    for d in reference:
        keep = d.scores >= score_threshold
        if cats is not None:
            keep &= np.isin(d.labels, cats)
        g = d.select(keep)
        out.append(Detections(g.boxes, np.ones(len(g), np.float32), g.labels, g.ignore))
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(f"annotation file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read annotation file {str(path)!r}: {exc}") from None


def load_mot_gt(path: str | os.PathLike, n_frames: int | None = None, min_visibility: float = 0.0,
                person_classes: Sequence[int] = MOT_PERSON_CLASSES,
                ignore_classes: Sequence[int] = MOT_IGNORE_CLASSES) -> dict[int, Detections]:
    """Load a MOTChallenge ``gt.txt``: ``frame,id,x,y,w,h,conf,class,visibility`` per line.

    Frames in the file are 1-based: MOT frame ``f`` is source frame ``f - 1``. Boxes are
    ``x, y`` (top-left, pixels) and ``w, h`` (> 0); all become COCO "person" (id 1).
    ``conf == 0`` ("not considered"), classes in ``ignore_classes`` and boxes with
    visibility below ``min_visibility`` become ignore regions; classes outside
    ``person_classes``/``ignore_classes`` are dropped. The class and visibility columns
    are used only in 9-column files (MOT16/17/20); 6-, 7- and 10-column files (MOT15,
    whose last three columns are world coordinates) are all pedestrians.
    Returns every frame from 0 to the last annotated one (or ``n_frames - 1``).
    Raises InputError naming the line for malformed rows.
    """
    path = Path(path)
    rows: list[list[float]] = []
    ncols = None
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.replace(";", ",").split(",")]
        if parts and parts[-1] == "":
            parts.pop()
        where = f"{path.name} line {lineno}"
        if len(parts) < 6:
            raise InputError(f"{where}: expected at least 6 comma-separated values "
                             f"(frame,id,x,y,w,h[,conf,class,visibility]), got {len(parts)}: {line!r}")
        if ncols is None:
            ncols = len(parts)
        elif len(parts) != ncols:
            raise InputError(f"{where}: {len(parts)} values, but earlier lines have {ncols}")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"{where}: non-numeric value in {line!r}") from None
        if not all(np.isfinite(vals[:9])):
            raise InputError(f"{where}: non-finite value in {line!r}")
        if vals[0] != int(vals[0]) or vals[0] < 1:
            raise InputError(f"{where}: frame must be an integer >= 1 (MOT frames are 1-based), got {parts[0]}")
        if vals[4] <= 0 or vals[5] <= 0:
            raise InputError(f"{where}: box width and height must be > 0, got w={parts[4]}, h={parts[5]}")
        rows.append(vals)
    if not rows:
        raise InputError(f"{str(path)!r} holds no annotation rows")
    a = np.array([r[:9] + [np.nan] * (9 - min(len(r), 9)) for r in rows], dtype=np.float64)
    frame = a[:, 0].astype(np.int64) - 1
    boxes = np.stack([a[:, 2], a[:, 3], a[:, 2] + a[:, 4], a[:, 3] + a[:, 5]], axis=1)
    ignore = np.zeros(len(a), bool)
    keep = np.ones(len(a), bool)
    if ncols is not None and ncols >= 7:
        ignore |= a[:, 6] == 0
    if ncols == 9:
        cls = a[:, 7].astype(np.int64)
        ignore |= np.isin(cls, ignore_classes)
        keep &= np.isin(cls, person_classes) | np.isin(cls, ignore_classes)
        ignore |= a[:, 8] < min_visibility
    last = int(frame.max()) + 1
    if n_frames is not None:
        if n_frames < last:
            raise InputError(f"{path.name} annotates frame {last} (1-based) but n_frames={n_frames}")
        last = int(n_frames)
    out: dict[int, Detections] = {}
    order = np.argsort(frame, kind="stable")
    frame, boxes, ignore, keep = frame[order], boxes[order], ignore[order], keep[order]
    bounds = np.searchsorted(frame, np.arange(last + 1))
    for f in range(last):
        sl = slice(bounds[f], bounds[f + 1])
        k = keep[sl]
        n = int(k.sum())
        out[f] = Detections(boxes[sl][k], np.ones(n, np.float32), np.full(n, PERSON, np.int64), ignore[sl][k])
    return out


def load_coco_gt(path: str | os.PathLike, id_offset: int = 0) -> dict[int, Detections]:
    """Load COCO-format JSON annotations of a video's frames.

    Mapping: an image whose ``id`` is ``i`` is source frame ``i - id_offset`` (so by
    default image id = 0-based frame index; use ``id_offset=1`` for 1-based ids).
    Each annotation needs ``image_id``, ``category_id`` (COCO id) and ``bbox``
    ``[x, y, w, h]`` (pixels, top-left corner, ``w, h > 0``); ``iscrowd: 1`` makes it an
    ignore region. Frames listed in ``images`` without annotations are annotated empty
    frames; without an ``images`` list only frames with annotations are evaluated.
    Raises InputError for unreadable JSON or malformed entries.
    """
    path = Path(path)
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise InputError(f"{path.name}: expected a COCO object with an 'annotations' list")
    images = doc.get("images", [])
    if not isinstance(images, list):
        raise InputError(f"{path.name}: 'images' must be a list")

    def frame_of(image_id, where: str) -> int:
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InputError(f"{path.name}: {where}: image id must be an integer, got {image_id!r}")
        f = image_id - id_offset
        if f < 0:
            raise InputError(f"{path.name}: {where}: image id {image_id} gives frame {f} < 0 "
                             f"with id_offset={id_offset}")
        return f

    per: dict[int, list[tuple[list[float], int, bool]]] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img:
            raise InputError(f"{path.name}: images[{i}] has no 'id'")
        per.setdefault(frame_of(img["id"], f"images[{i}]"), [])
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or not {"image_id", "category_id", "bbox"} <= ann.keys():
            raise InputError(f"{path.name}: {where} needs 'image_id', 'category_id' and 'bbox'")
        bb = ann["bbox"]
        if (not isinstance(bb, list) or len(bb) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bb)
                or not all(np.isfinite(bb)) or bb[2] <= 0 or bb[3] <= 0):
            raise InputError(f"{path.name}: {where}: bbox must be [x, y, w, h] numbers with w, h > 0, got {bb!r}")
        cat = ann["category_id"]
        if isinstance(cat, bool) or not isinstance(cat, int):
            raise InputError(f"{path.name}: {where}: category_id must be an integer, got {cat!r}")
        per.setdefault(frame_of(ann["image_id"], where), []).append(
            ([bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]], cat, bool(ann.get("iscrowd", 0))))
    out: dict[int, Detections] = {}
    for f in sorted(per):
        items = per[f]
        out[f] = Detections(np.array([b for b, _, _ in items], np.float32).reshape(-1, 4),
                            np.ones(len(items), np.float32), np.array([c for _, c, _ in items], np.int64),
                            np.array([g for _, _, g in items], bool))
    return out
