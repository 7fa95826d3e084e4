"""COCO average precision over non-overlapping windows of frames (faster-coco-eval)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ...errors import InputError
from .types import Detections


@dataclass(frozen=True)
class WindowAP:
    """AP of one window of source frames ``start <= f < end`` (``end = start + window``).

    n_frames: sampled frames evaluated in the window; n_gt: ground-truth boxes that count
    (ignore regions excluded); ap50: COCO AP at IoU 0.5; ap: COCO AP averaged over IoU
    0.50:0.05:0.95. Both in [0, 1], or ``None`` when the window has no ground truth
    (such windows must be left out of correlations, not scored 0 or 1).
    """

    start: int
    end: int
    n_frames: int
    n_gt: int
    ap50: float | None
    ap: float | None


def _quiet(*args, **kwargs) -> None:
    return None


def _coco(frames: Sequence[int], dets: Mapping[int, Detections], cats: np.ndarray,
          image_size: tuple[int, int] | None, with_scores: bool):
    from faster_coco_eval import COCO

    images = []
    for f in frames:
        img = {"id": int(f)}
        if image_size is not None:
            img["height"], img["width"] = int(image_size[0]), int(image_size[1])
        images.append(img)
    anns = []
    for f in frames:
        d = dets[f]
        keep = np.isin(d.labels, cats)
        if not keep.all():
            d = d.select(keep)
        ign = np.zeros(len(d), bool) if d.ignore is None else d.ignore
        xywh = np.concatenate([d.boxes[:, :2], d.boxes[:, 2:] - d.boxes[:, :2]], axis=1).astype(np.float64)
        for b, s, c, g in zip(xywh.tolist(), d.scores.tolist(), d.labels.tolist(), ign.tolist()):
            ann = {"id": len(anns) + 1, "image_id": int(f), "category_id": int(c), "bbox": b,
                   "area": b[2] * b[3], "iscrowd": int(g)}
            if with_scores:
                ann["score"] = float(s)
            anns.append(ann)
    return COCO({"images": images, "annotations": anns, "categories": [{"id": int(c)} for c in cats]},
                print_function=_quiet)


def window_ap(gt: Sequence[Detections] | Mapping[int, Detections], pred: Sequence[Detections],
              frame_indices: Sequence[int] | np.ndarray, window: int = 100,
              image_size: tuple[int, int] | None = None, categories: Iterable[int] | None = None,
              max_dets: int = 100) -> list[WindowAP]:
    """COCO AP50 and AP@[.5:.95] of ``pred`` against ``gt`` per window of ``window`` source frames.

    frame_indices: (F,) distinct source frame numbers (0-based) of the sampled frames;
    ``pred[i]`` holds the detections on frame ``frame_indices[i]``. ``gt`` is either a
    sequence aligned the same way (e.g. :func:`~.groundtruth.pseudo_ground_truth`) or a
    mapping frame -> Detections from an annotation loader, in which case only sampled
    frames present in the mapping are evaluated. Windows are ``[k*window, (k+1)*window)``
    for every k holding at least one evaluated frame, in order. Each window is one COCO
    evaluation (its frames are the images; at most ``max_dets`` detections per frame;
    area range "all"), averaging over the ``categories`` (COCO ids; default: every label
    in gt or pred) that have ground truth in that window. image_size (H, W) is recorded
    in the COCO images. Windows without ground truth get ``ap50 = ap = None``.
    """
    if int(window) != window or window < 1:
        raise InputError(f"window must be a positive integer number of frames, got {window!r}")
    fi = np.asarray(frame_indices)
    if fi.ndim != 1 or (fi.size and not np.issubdtype(fi.dtype, np.integer)):
        raise InputError(f"frame_indices must be a 1-D sequence of integers, got {fi.dtype} array of shape {fi.shape}")
    if len(np.unique(fi)) != len(fi) or (fi.size and fi.min() < 0):
        raise InputError("frame_indices must be distinct non-negative frame numbers")
    if len(pred) != len(fi):
        raise InputError(f"{len(pred)} prediction entries for {len(fi)} frame indices; expected one per frame")
    frames, gt_map, pred_map = _aligned(gt, pred, [int(f) for f in fi])
    if categories is None:
        labels = [d.labels for d in gt_map.values()] + [pred_map[f].labels for f in frames]
        cats = np.unique(np.concatenate(labels)) if labels else np.zeros(0, np.int64)
    else:
        cats = np.unique(np.asarray(list(categories), dtype=np.int64))
    if not frames:
        return []
    coco_gt = _coco(frames, gt_map, cats, image_size, with_scores=False)
    coco_dt = _coco(frames, pred_map, cats, image_size, with_scores=True)
    by_window: dict[int, list[int]] = {}
    for f in frames:
        by_window.setdefault(f // window, []).append(f)
    out = []
    for k in sorted(by_window):
        wf = by_window[k]
        n_gt = sum(_counted_gt(gt_map[f], cats) for f in wf)
        ap50, ap = _coco_ap(coco_gt, coco_dt, wf, cats, max_dets) if n_gt else (None, None)
        out.append(WindowAP(start=k * window, end=(k + 1) * window, n_frames=len(wf), n_gt=n_gt,
                            ap50=ap50, ap=ap))
    return out


def _aligned(gt, pred, fi_list: list[int]) -> tuple[list[int], dict, dict]:
    """(evaluated frames, frame -> gt, frame -> pred) of :func:`window_ap`'s inputs, checked."""
    if isinstance(gt, Mapping):
        frames = [f for f in fi_list if f in gt]
        gt_map = {f: gt[f] for f in frames}
    else:
        if len(gt) != len(fi_list):
            raise InputError(f"{len(gt)} ground-truth entries for {len(fi_list)} frame indices; expected one per "
                             f"frame (or a mapping frame -> Detections)")
        frames = fi_list
        gt_map = dict(zip(fi_list, gt))
    pred_map = dict(zip(fi_list, pred))
    for name, m in (("gt", gt_map), ("pred", pred_map)):
        for f, d in m.items():
            if not isinstance(d, Detections):
                raise InputError(f"{name} for frame {f} is a {type(d).__name__}, expected Detections")
    return frames, gt_map, pred_map


def _counted_gt(g: Detections, cats: np.ndarray) -> int:
    """Ground-truth boxes of one frame that count: in ``cats`` and not marked ignore."""
    counted = np.isin(g.labels, cats)
    if g.ignore is not None:
        counted &= ~g.ignore
    return int(counted.sum())


def _coco_ap(coco_gt, coco_dt, frames: list[int], cats: np.ndarray, max_dets: int) -> tuple[float, float]:
    """(AP50, AP@[.5:.95]) of one COCO evaluation over ``frames`` (area range "all")."""
    from faster_coco_eval import COCOeval_faster

    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_quiet)
    ev.params.imgIds = frames
    ev.params.catIds = cats.tolist()
    ev.params.maxDets = [max_dets]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval["precision"][:, :, :, ev.params.areaRngLbl.index("all"), -1]  # T x R x K
    valid = prec > -1
    return float(prec[0][valid[0]].mean()), float(prec[valid].mean())


def frames_ap(gt: Sequence[Detections], pred: Sequence[Detections], image_size: tuple[int, int] | None = None,
              categories: Iterable[int] | None = None, max_dets: int = 100) -> tuple[float | None, float | None]:
    """(AP50, AP@[.5:.95]) of one COCO evaluation whose images are the aligned entries of ``gt``
    and ``pred`` (``pred[i]`` detections on the frame whose ground truth is ``gt[i]``). The same
    frame may appear more than once (a bootstrap replicate): each entry is its own image.
    Categories as :func:`window_ap` (default: every label in ``gt`` or ``pred``; only those with
    ground truth here count); ``(None, None)`` when no ground-truth box counts."""
    if len(gt) != len(pred):
        raise InputError(f"{len(gt)} ground-truth entries for {len(pred)} prediction entries; expected one each")
    ids = list(range(len(gt)))
    gt_map, pred_map = dict(zip(ids, gt)), dict(zip(ids, pred))
    if categories is None:
        labels = [d.labels for d in gt] + [d.labels for d in pred]
        cats = np.unique(np.concatenate(labels)) if labels else np.zeros(0, np.int64)
    else:
        cats = np.unique(np.asarray(list(categories), dtype=np.int64))
    if not sum(_counted_gt(g, cats) for g in gt):
        return None, None
    coco_gt = _coco(ids, gt_map, cats, image_size, with_scores=False)
    coco_dt = _coco(ids, pred_map, cats, image_size, with_scores=True)
    return _coco_ap(coco_gt, coco_dt, ids, cats, max_dets)
