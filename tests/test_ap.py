"""AP per window against hand-built cases and an independent AP computation; GT loaders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dctqa.study.detect import Detections
from dctqa.study.detect.ap import WindowAP, window_ap
from dctqa.study.detect.groundtruth import load_coco_gt, load_mot_gt, pseudo_ground_truth
from dctqa.errors import InputError

BOXES = np.array([[10, 10, 50, 90], [100, 20, 140, 100], [200, 50, 260, 120], [300, 10, 330, 60]], np.float32)
RECALL_POINTS = 101  # COCO interpolates precision at recall 0, 0.01, ..., 1


def _dets(boxes, scores=None, labels=None, ignore=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Detections(boxes, np.ones(n) if scores is None else scores,
                      np.ones(n, np.int64) if labels is None else labels, ignore)


def test_perfect_predictions_score_one():
    gt = [_dets(BOXES) for _ in range(6)]
    pred = [_dets(BOXES, scores=[0.9, 0.8, 0.7, 0.6]) for _ in range(6)]
    (w,) = window_ap(gt, pred, np.arange(6), window=100, image_size=(200, 400))
    assert w == WindowAP(start=0, end=100, n_frames=6, n_gt=24, ap50=1.0, ap=1.0)


def test_half_missed_at_full_confidence():
    # every frame: 2 of 4 objects found, both with score 1 -> precision 1 up to recall 0.5,
    # nothing beyond: interpolated precision is 1 at the 51 recall points 0..0.50, else 0
    gt = [_dets(BOXES) for _ in range(4)]
    pred = [_dets(BOXES[:2], scores=[1.0, 1.0]) for _ in range(4)]
    (w,) = window_ap(gt, pred, np.arange(4))
    assert w.ap50 == pytest.approx(51 / RECALL_POINTS)
    assert w.ap == pytest.approx(51 / RECALL_POINTS)
    (w,) = window_ap(gt, [Detections.empty()] * 4, np.arange(4))
    assert w.ap50 == 0.0 and w.ap == 0.0


def test_iou_062_counts_at_050_but_not_at_075():
    gt = [_dets([[0, 0, 100, 100]])]
    pred = [_dets([[0, 0, 100, 62]], scores=[0.9])]  # IoU 0.62
    (w,) = window_ap(gt, pred, [0])
    assert w.ap50 == pytest.approx(1.0)
    # matched at IoU thresholds 0.50, 0.55, 0.60 only: 3 of the 10
    assert w.ap == pytest.approx(0.3)


def test_false_positive_ranked_first_halves_precision():
    gt = [_dets([[0, 0, 100, 100]])]
    pred = [_dets([[200, 200, 300, 300], [0, 0, 100, 100]], scores=[0.9, 0.8])]
    (w,) = window_ap(gt, pred, [0])
    assert w.ap50 == pytest.approx(0.5) and w.ap == pytest.approx(0.5)
    # the same false positive ranked last does not hurt
    pred = [_dets([[200, 200, 300, 300], [0, 0, 100, 100]], scores=[0.1, 0.8])]
    assert window_ap(gt, pred, [0])[0].ap50 == pytest.approx(1.0)


def test_categories_are_averaged_and_labels_must_match():
    gt = [_dets(BOXES[:2], labels=[1, 3])]
    pred = [_dets(BOXES[:2], scores=[0.9, 0.9], labels=[1, 1])]  # the car is called a person
    (w,) = window_ap(gt, pred, [0])
    # person: dets (0.9 TP, then 0.9 FP in COCO's stable order) reach recall 1 at precision 1
    # -> AP 1; car: missed -> 0. The mean is over the categories that have ground truth.
    assert w.ap50 == pytest.approx(0.5)
    (w,) = window_ap(gt, pred, [0], categories=[1])
    assert w.ap50 == pytest.approx(1.0) and w.n_gt == 1
    (w,) = window_ap(gt, pred, [0], categories=[3])
    assert w.ap50 == 0.0 and w.n_gt == 1


def test_windows_and_empty_ground_truth():
    frames = np.arange(0, 250, 3)  # stride 3 over 250 source frames
    gt = [_dets(BOXES[:1]) if f < 100 or f >= 200 else Detections.empty() for f in frames]
    pred = [_dets(BOXES[:1], scores=[0.5]) for _ in frames]
    ws = window_ap(gt, pred, frames, window=100)
    assert [(w.start, w.end) for w in ws] == [(0, 100), (100, 200), (200, 300)]
    assert [w.n_frames for w in ws] == [34, 33, 17]
    assert [w.n_gt for w in ws] == [34, 0, 17]
    assert ws[0].ap50 == pytest.approx(1.0) and ws[2].ap == pytest.approx(1.0)
    assert ws[1].ap50 is None and ws[1].ap is None  # reported, never 0 or 1


def test_ignore_regions():
    gt = [_dets(BOXES[:2], ignore=[False, True])]
    pred = [_dets(BOXES[:2], scores=[0.5, 0.9])]  # the better-scored box hits the ignore region
    (w,) = window_ap(gt, pred, [0])
    assert w.n_gt == 1 and w.ap50 == pytest.approx(1.0)
    (w,) = window_ap([_dets(BOXES[:1], ignore=[True])], pred[:1], [0])
    assert w.n_gt == 0 and w.ap is None


def test_mapping_gt_evaluates_only_annotated_frames():
    gt = {0: _dets(BOXES[:1]), 2: Detections.empty()}
    fp = _dets([[400, 0, 420, 40]], scores=[0.99])
    pred = [_dets(BOXES[:1], scores=[0.5]), fp, _dets(BOXES[:1], scores=[0.5])]
    (w,) = window_ap(gt, pred, [0, 1, 2])
    # frame 1 is not annotated (its false positive is ignored); frame 2 is annotated empty
    # (its detection is a false positive, ranked equal to the true one)
    assert w.n_frames == 2 and w.n_gt == 1
    assert w.ap50 == pytest.approx(1.0)  # the tie is ordered frame 0 first by COCO
    pred[2] = _dets(BOXES[:1], scores=[0.9])
    assert window_ap(gt, pred, [0, 1, 2])[0].ap50 == pytest.approx(0.5)


def _independent_ap(gt, pred, thr):
    """Plain single-category COCO-style AP: per-frame greedy matching in score order,
    global ranking, precision envelope sampled at 101 recall points."""
    import torch
    from torchvision.ops import box_iou

    def _iou(a, b):
        return box_iou(torch.from_numpy(a).double(), torch.from_numpy(b).double()).numpy()

    records, n_gt = [], 0
    for g, p in zip(gt, pred):
        n_gt += len(g)
        order = np.argsort(-p.scores, kind="stable")
        taken = np.zeros(len(g), bool)
        ious = _iou(p.boxes, g.boxes) if len(g) and len(p) else np.zeros((len(p), len(g)))
        for i in order:
            cand = np.where(~taken & (ious[i] >= thr), ious[i], -1)
            j = int(np.argmax(cand)) if len(g) else -1
            hit = j >= 0 and cand[j] >= thr
            if hit:
                taken[j] = True
            records.append((p.scores[i], hit))
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([h for _, h in records])
    fp = np.cumsum([not h for _, h in records])
    rec, prec = tp / n_gt, tp / np.maximum(tp + fp, 1)
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    q = np.zeros(RECALL_POINTS)
    idx = np.searchsorted(rec, np.linspace(0, 1, RECALL_POINTS), side="left")
    ok = idx < len(rec)
    q[ok] = prec[idx[ok]]
    return q.mean()


def test_matches_independent_computation(rng):
    gt, pred = [], []
    for _ in range(8):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        g = np.concatenate([xy, xy + rng.uniform(20, 80, (n, 2))], axis=1)
        gt.append(_dets(g))
        keep = rng.random(n) < 0.8
        jit = g[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        extra = rng.uniform(0, 300, (int(rng.integers(0, 3)), 2))
        extra = np.concatenate([extra, extra + 40], axis=1)
        boxes = np.concatenate([jit, extra])
        pred.append(_dets(boxes, scores=rng.uniform(0.05, 1, len(boxes))))
    (w,) = window_ap(gt, pred, np.arange(8))
    assert w.ap50 == pytest.approx(_independent_ap(gt, pred, 0.5), abs=1e-9)
    thrs = np.linspace(0.5, 0.95, 10)
    assert w.ap == pytest.approx(np.mean([_independent_ap(gt, pred, t) for t in thrs]), abs=1e-9)
    assert 0 < w.ap < w.ap50 < 1


def test_window_ap_rejects_bad_input():
    d = [_dets(BOXES[:1])]
    with pytest.raises(InputError, match="window"):
        window_ap(d, d, [0], window=0)
    with pytest.raises(InputError, match="one per frame"):
        window_ap(d, d + d, [0])
    with pytest.raises(InputError, match="one per frame"):
        window_ap(d + d, d, [0])
    with pytest.raises(InputError, match="distinct"):
        window_ap(d + d, d + d, [3, 3])
    with pytest.raises(InputError, match="integers"):
        window_ap(d, d, [0.5])
    with pytest.raises(InputError, match="expected Detections"):
        window_ap([BOXES], d, [0])
    assert window_ap({}, d, [0]) == []


def test_silent(capsys):
    window_ap([_dets(BOXES)], [_dets(BOXES, scores=[0.5] * 4)], [0])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# ---------------------------------------------------------------- ground truth
def test_pseudo_ground_truth():
    ref = [_dets(BOXES, scores=[0.9, 0.5, 0.3, 0.7], labels=[1, 1, 3, 3])]
    (g,) = pseudo_ground_truth(ref)
    np.testing.assert_array_equal(g.boxes, BOXES[[0, 1, 3]])
    np.testing.assert_array_equal(g.scores, 1)
    (g,) = pseudo_ground_truth(ref, score_threshold=0.6, categories=[1])
    np.testing.assert_array_equal(g.boxes, BOXES[:1])
    with pytest.raises(InputError):
        pseudo_ground_truth(ref, score_threshold=1.5)


MOT = """\
1,1,10,20,30,60,1,1,1.0
1,2,100,20,30,60,0,1,1.0
1,3,200,20,30,60,1,7,0.9
2,1,12,20,30,60,1,1,0.1
2,4,300,20,50,40,1,3,1.0
4,1,14,22,30,60,1,1,1.0
"""


def test_load_mot_gt(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text(MOT)
    gt = load_mot_gt(p, min_visibility=0.2)
    assert sorted(gt) == [0, 1, 2, 3]  # MOT frames 1..4 -> 0..3; frame 3 annotated empty
    np.testing.assert_array_equal(gt[0].boxes, [[10, 20, 40, 80], [100, 20, 130, 80], [200, 20, 230, 80]])
    np.testing.assert_array_equal(gt[0].ignore, [False, True, True])  # conf 0; static person (7)
    np.testing.assert_array_equal(gt[0].labels, 1)
    np.testing.assert_array_equal(gt[1].ignore, [True])  # visibility 0.1 < 0.2; the car is dropped
    assert len(gt[2]) == 0 and len(gt[3]) == 1
    assert sorted(load_mot_gt(p, n_frames=6)) == list(range(6))
    mot15 = tmp_path / "mot15.txt"
    mot15.write_text("1,1,10,20,30,60,1,-1,-1,-1\n3,1,10,20,30,60,1,-1,-1,-1\n")
    g15 = load_mot_gt(mot15)
    assert sorted(g15) == [0, 1, 2] and len(g15[2]) == 1 and not g15[2].ignore.any()


@pytest.mark.parametrize("text, match", [
    ("1,1,10,20,30\n", "at least 6"),
    ("1,1,10,20,30,60,1,1,1\n2,1,1,1,1,1\n", "line 2.*6 values"),
    ("1,1,10,x,30,60\n", "line 1: non-numeric"),
    ("0,1,10,20,30,60\n", "1-based"),
    ("1,1,10,20,-3,60\n", "width and height"),
    ("\n\n", "no annotation rows"),
])
def test_load_mot_gt_errors(tmp_path, text, match):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        load_mot_gt(p)


def test_load_mot_gt_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_mot_gt(tmp_path / "gt.txt")


def test_load_coco_gt(tmp_path):
    doc = {"images": [{"id": 1}, {"id": 2}, {"id": 5}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
                           {"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
                           {"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4]}],
           "categories": [{"id": 1}, {"id": 3}]}
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(doc))
    gt = load_coco_gt(p, id_offset=1)
    assert sorted(gt) == [0, 1, 4]
    np.testing.assert_array_equal(gt[0].boxes, [[10, 20, 40, 60], [0, 0, 5, 5]])
    np.testing.assert_array_equal(gt[0].labels, [1, 3])
    np.testing.assert_array_equal(gt[0].ignore, [False, True])
    assert len(gt[1]) == 0 and len(gt[4]) == 1
    assert sorted(load_coco_gt(p)) == [1, 2, 5]
    with pytest.raises(InputError, match="frame -1"):
        load_coco_gt(p, id_offset=2)


@pytest.mark.parametrize("doc, match", [
    ("{not json", "not valid JSON"),
    ({"images": []}, "'annotations' list"),
    ({"annotations": [{"image_id": 0, "bbox": [0, 0, 1, 1]}]}, "needs 'image_id', 'category_id'"),
    ({"annotations": [{"image_id": 0, "category_id": 1, "bbox": [0, 0, 0, 1]}]}, "w, h > 0"),
    ({"annotations": [{"image_id": "a", "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "image id must be an integer"),
    ({"annotations": [{"image_id": 0, "category_id": 1.5, "bbox": [0, 0, 1, 1]}]}, "category_id"),
])
def test_load_coco_gt_errors(tmp_path, doc, match):
    p = tmp_path / "ann.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(InputError, match=match):
        load_coco_gt(p)
