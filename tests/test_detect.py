"""Detectors (YOLOX ONNX, torchvision Faster R-CNN) and the on-disk detection cache."""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dctqa.study.detect import Detections, Detector, create_detector
from dctqa.study.detect.cache import cached_detect
from dctqa.study.detect.categories import coco80_to_coco91
from dctqa.study.detect.yolox_onnx import STRIDES, anchor_grid, decode, letterbox, postprocess
from dctqa.errors import BackboneError, InputError, VideoError, WeightsError

from .helpers import make_video


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (straightforward, for the tests)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


# ---------------------------------------------------------------- YOLOX on real frames
@pytest.fixture(scope="module")
def yolox(yolox_path) -> Detector:
    return create_detector(f"onnx:{yolox_path}")


def test_yolox_finds_people_in_vtest(yolox, vtest_frames):
    frames = [vtest_frames[i] for i in (0, 15, 29)]
    h, w = frames[0].shape[:2]
    for det in yolox.detect(frames):
        assert det.boxes.dtype == np.float32 and det.scores.dtype == np.float32 and det.labels.dtype == np.int64
        assert np.isin(det.labels, coco80_to_coco91()).all()
        assert (det.scores >= 0.05).all() and (det.scores <= 1).all()
        assert (det.boxes[:, :2] >= 0).all() and (det.boxes[:, 2] <= w).all() and (det.boxes[:, 3] <= h).all()
        assert (det.boxes[:, 2:] > det.boxes[:, :2]).all()
        people = det.select((det.labels == 1) & (det.scores >= 0.5))
        assert len(people) >= 3, f"only {len(people)} confident persons in a busy street frame"
        bw = people.boxes[:, 2] - people.boxes[:, 0]
        bh = people.boxes[:, 3] - people.boxes[:, 1]
        # pedestrians of this camera are ~30-200 px tall, standing: taller than wide
        assert ((bh > 20) & (bh < 300)).all(), bh
        assert np.median(bh / bw) > 1.5, bh / bw


def test_yolox_geometry_on_real_frame(yolox, vtest_frames):
    """Mirroring or halving the frame moves the boxes the same way (letterbox mapping)."""
    frame = vtest_frames[10]
    h, w = frame.shape[:2]
    base, flipped, half = yolox.detect([frame, np.ascontiguousarray(frame[:, ::-1]),
                                        np.ascontiguousarray(frame[::2, ::2])])
    sure = base.select((base.labels == 1) & (base.scores >= 0.6))
    assert len(sure) >= 3
    mirrored = flipped.boxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32) + np.array([w, 0, w, 0])
    best = _iou(sure.boxes, mirrored[flipped.labels == 1]).max(axis=1)
    assert np.mean(best > 0.7) >= 0.8, best
    best = _iou(sure.boxes, half.boxes[half.labels == 1] * 2).max(axis=1)
    assert np.mean(best > 0.6) >= 0.8, best


# ---------------------------------------------------------------- YOLOX pieces, synthetic
def test_anchor_grid_and_decode_match_per_anchor_loop(rng):
    size = (416, 416)
    raw = rng.normal(0, 1, (2, 3549, 85)).astype(np.float32)
    grid, stride = anchor_grid(size)
    got = decode(raw, grid, stride)
    expected = raw.copy()
    a = 0
    for s in STRIDES:
        hs, ws = size[0] // s, size[1] // s
        for gy in range(hs):
            for gx in range(ws):
                expected[:, a, 0] = (raw[:, a, 0] + gx) * s
                expected[:, a, 1] = (raw[:, a, 1] + gy) * s
                expected[:, a, 2] = np.exp(raw[:, a, 2]) * s
                expected[:, a, 3] = np.exp(raw[:, a, 3]) * s
                a += 1
    assert a == raw.shape[1]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
    assert anchor_grid((64, 96))[0].shape == (8 * 12 + 4 * 6 + 2 * 3, 2)


def test_letterbox_channels_scale_and_padding():
    frame = np.zeros((300, 500, 3), np.uint8)
    frame[:, :] = (200, 100, 50)  # RGB
    frame[100:200, 250:400] = (255, 0, 0)  # red block
    img, r = letterbox(frame, (416, 416))
    assert img.shape == (3, 416, 416) and img.dtype == np.float32
    assert r == pytest.approx(416 / 500)
    nh = int(300 * r)
    assert (img[:, nh:, :] == 114).all()  # bottom padding, top-left alignment
    np.testing.assert_array_equal(img[:, 20, 20], [50, 100, 200])  # BGR
    y, x = int(150 * r), int(325 * r)  # centre of the red block lands at p * r
    np.testing.assert_array_equal(img[:, y, x], [0, 0, 255])
    exact, r1 = letterbox(frame[:208, :416], (416, 416))
    assert r1 == 1.0
    np.testing.assert_array_equal(exact[:, :208], frame[:208, :416, ::-1].transpose(2, 0, 1))


def _raw_with_boxes(size, boxes_lb, obj, cls_idx, cls_score):
    """Raw YOLOX output (A, 85) encoding given letterbox-space xyxy boxes at fitting anchors."""
    grid, stride = anchor_grid(size)
    raw = np.zeros((len(grid), 85), np.float32)
    raw[:, 4] = 0.0
    raw[:, 2:4] = 0.0
    used = set()
    for b, o, c, s in zip(boxes_lb, obj, cls_idx, cls_score):
        cx, cy, bw, bh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]
        st = 16
        cand = np.flatnonzero((stride[:, 0] == st) & (grid[:, 0] == int(cx // st)) & (grid[:, 1] == int(cy // st)))
        a = next(int(i) for i in [cand[0], cand[0] + 1, cand[0] - 1] if i not in used)
        used.add(a)
        raw[a, 0] = cx / stride[a, 0] - grid[a, 0]
        raw[a, 1] = cy / stride[a, 0] - grid[a, 1]
        raw[a, 2] = np.log(bw / stride[a, 0])
        raw[a, 3] = np.log(bh / stride[a, 0])
        raw[a, 4] = o
        raw[a, 5 + c] = s
    return raw, grid, stride


def test_postprocess_maps_back_and_runs_classwise_nms():
    h, w = 300, 500
    size = (416, 416)
    r = 416 / 500
    orig = np.array([[100, 50, 180, 250],   # person, kept
                     [104, 52, 182, 250],   # person, overlaps the first, lower score: suppressed
                     [100, 50, 180, 250],   # car on the same spot: kept (class-wise NMS)
                     [430, 200, 530, 290]],  # truck partly outside the frame: clipped to w
                    np.float32)
    raw, grid, stride = _raw_with_boxes(size, orig * r, obj=[0.9, 0.8, 0.7, 0.9],
                                        cls_idx=[0, 0, 2, 7], cls_score=[0.9, 0.9, 0.5, 0.6])
    det = postprocess(decode(raw, grid, stride), r, (h, w), score_threshold=0.05, nms_threshold=0.65,
                      max_detections=100, class_ids=coco80_to_coco91())
    order = np.argsort(-det.scores)
    np.testing.assert_allclose(det.scores[order], [0.81, 0.54, 0.35], rtol=1e-5)
    np.testing.assert_array_equal(det.labels[order], [1, 8, 3])  # person, truck (class 7 -> id 8), car
    np.testing.assert_allclose(det.boxes[order], [orig[0], [430, 200, 500, 290], orig[0]], atol=1e-3)
    # the threshold drops the car; max_detections keeps the best one
    det = postprocess(decode(raw, grid, stride), r, (h, w), 0.4, 0.65, 100, coco80_to_coco91())
    assert sorted(det.labels.tolist()) == [1, 8]
    det = postprocess(decode(raw, grid, stride), r, (h, w), 0.05, 0.65, 1, coco80_to_coco91())
    assert det.labels.tolist() == [1]


def _constant_yolox_onnx(path: Path, input_shape, out: np.ndarray) -> None:
    """An ONNX graph with YOLOX's interface whose output is ``out`` (for any input)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, list(out.shape))
    # output = const + 0 * mean(images): depends on the input so nothing is pruned
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["const", "z"], ["output"])]
    graph = helper.make_graph(nodes, "const_yolox", [x], [y],
                              [numpy_helper.from_array(out, "const"),
                               numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnx_input_size_comes_from_the_model(tmp_path):
    size = (64, 96)
    box = np.array([[20, 10, 60, 50]], np.float32)  # letterbox pixels
    raw, _, _ = _raw_with_boxes(size, box, obj=[0.95], cls_idx=[0], cls_score=[0.9])
    path = tmp_path / "tiny.onnx"
    _constant_yolox_onnx(path, [1, 3, *size], raw[None])
    det = create_detector(f"onnx:{path}")
    assert det.settings()["input_size"] == [64, 96]
    frame = np.zeros((128, 192, 3), np.uint8)  # r = 0.5: boxes double on the way back
    out = det.detect([frame, frame])
    assert len(out) == 2
    for d in out:
        np.testing.assert_allclose(d.boxes, box * 2, atol=1e-3)
        assert d.labels.tolist() == [1]
    with pytest.raises(InputError, match="fixed input size"):
        create_detector(f"onnx:{path}", input_size=(32, 32))
    dyn = tmp_path / "dyn.onnx"
    _constant_yolox_onnx(dyn, ["N", 3, "H", "W"], raw[None])
    with pytest.raises(InputError, match="dynamic input size"):
        create_detector(f"onnx:{dyn}")
    d = create_detector(f"onnx:{dyn}", input_size=size)
    np.testing.assert_allclose(d.detect([frame])[0].boxes, box * 2, atol=1e-3)
    with pytest.raises(BackboneError, match="expected output"):
        create_detector(f"onnx:{dyn}", input_size=(128, 128))


def test_create_detector_rejects_bad_input(tmp_path, yolox_path):
    with pytest.raises(InputError, match="unknown detector"):
        create_detector("yolov99")
    with pytest.raises(BackboneError, match="does not exist"):
        create_detector(f"onnx:{tmp_path / 'missing.onnx'}")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BackboneError, match="cannot load"):
        create_detector(f"onnx:{tmp_path / 'junk.onnx'}")
    with pytest.raises(InputError, match="weights"):
        create_detector(f"onnx:{yolox_path}", weights="x.pth")
    with pytest.raises(InputError, match="unexpected keyword|colour"):
        create_detector(f"onnx:{yolox_path}", colour="blue")
    with pytest.raises(InputError, match="score_threshold"):
        create_detector(f"onnx:{yolox_path}", score_threshold=2.0)
    det = create_detector(f"onnx:{yolox_path}")
    with pytest.raises(InputError, match="HxWx3 uint8"):
        det.detect([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(InputError, match="list of frames"):
        det.detect(np.zeros((10, 10, 3), np.uint8))
    assert det.detect([]) == []


# ---------------------------------------------------------------- Faster R-CNN
FRCNN_OPTS = dict(min_size=120, max_size=160)


@pytest.fixture(scope="module")
def frcnn_file(tmp_path_factory):
    """A full-detector state_dict the test makes itself (random init, 91 classes)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path_factory.mktemp("frcnn") / "frcnn_random.pth"
    torch.save(model.state_dict(), path)
    return path, model


def _reference_frcnn_output(model, frame):
    """What torchvision's model gives for the frame with the detector's settings."""
    model.eval()
    model.roi_heads.score_thresh = 0.0
    model.transform.min_size, model.transform.max_size = (FRCNN_OPTS["min_size"],), FRCNN_OPTS["max_size"]
    with torch.inference_mode():
        return model([torch.from_numpy(frame).permute(2, 0, 1).float() / 255])[0]


def test_frcnn_loads_a_state_dict_file(frcnn_file, rng):
    path, model = frcnn_file
    det = create_detector("fasterrcnn_resnet50_fpn", weights=str(path), score_threshold=0.0, **FRCNN_OPTS)
    assert det.name == "fasterrcnn_resnet50_fpn"
    assert det.settings()["weights"].startswith("file-sha256:")
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    (got,) = det.detect([frame])
    ref = _reference_frcnn_output(model, frame)
    assert len(got) == len(ref["boxes"]) > 0
    np.testing.assert_allclose(got.boxes, ref["boxes"].numpy(), atol=1e-3)
    np.testing.assert_allclose(got.scores, ref["scores"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(got.labels, ref["labels"].numpy())
    assert ((got.labels >= 1) & (got.labels <= 90)).all()
    assert (got.boxes[:, 2] <= 160).all() and (got.boxes[:, 3] <= 120).all()


def test_frcnn_uses_torch_hub_cache_and_explains_missing_weights(frcnn_file, tmp_path, rng, monkeypatch):
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    def offline(*args, **kwargs):  # the weights API would download where a network exists
        raise OSError("network unreachable (simulated)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)

    url = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        expected = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
        with pytest.raises(WeightsError) as err:
            create_detector("fasterrcnn_resnet50_fpn")
        msg = str(err.value)
        assert url in msg and str(expected) in msg and "--weights FILE" in msg
        with pytest.raises(WeightsError, match="does not exist"):
            create_detector("fasterrcnn_resnet50_fpn", weights=str(tmp_path / "nope.pth"))
        # the file in the cache is what torchvision's weights API loads
        expected.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(frcnn_file[0], expected)
        det = create_detector("fasterrcnn_resnet50_fpn", weights="COCO_V1", score_threshold=0.0, **FRCNN_OPTS)
        assert det.settings()["weights"] == "torchvision:FasterRCNN_ResNet50_FPN_Weights.COCO_V1"
        frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        ref_model = copy.deepcopy(frcnn_file[1])
        for m in ref_model.modules():  # torchvision runs COCO_V1 with batch-norm eps 0
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
        ref = _reference_frcnn_output(ref_model, frame)
        np.testing.assert_allclose(det.detect([frame])[0].scores, ref["scores"].numpy(), atol=1e-5)
    finally:
        torch.hub.set_dir(old)


def test_frcnn_rejects_unfitting_weights(tmp_path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    other = tmp_path / "other.pth"
    torch.save(fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                                 num_classes=5).state_dict(), other)
    with pytest.raises(WeightsError, match="does not fit"):
        create_detector("fasterrcnn_resnet50_fpn", weights=str(other))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="cannot read"):
        create_detector("fasterrcnn_resnet50_fpn", weights=str(junk))
    lst = tmp_path / "list.pth"
    torch.save([1, 2, 3], lst)
    with pytest.raises(WeightsError, match="expected a state_dict"):
        create_detector("fasterrcnn_resnet50_fpn", weights=str(lst))


# ---------------------------------------------------------------- cache
class CountingDetector(Detector):
    """Deterministic fake: one box whose score is the frame's mean brightness / 255."""

    name = "counting"

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold
        self.frames_seen = 0

    def settings(self):
        return {"threshold": self.threshold}

    def detect(self, frames):
        self.frames_seen += len(frames)
        out = []
        for f in frames:
            s = float(f.mean()) / 255
            keep = s >= self.threshold
            out.append(Detections(np.array([[1, 2, 3 + 10 * s, 4]])[:int(keep)], [s][:int(keep)], [1][:int(keep)]))
        return out


@pytest.fixture
def small_video(tmp_path):
    frames = np.stack([np.full((48, 64, 3), 10 + 20 * i, np.uint8) for i in range(11)])
    path = tmp_path / "clip.mp4"
    make_video(path, frames, crf=0)
    return path


def test_cache_hit_miss_and_keys(small_video, tmp_path):
    cache = tmp_path / "cache"
    det = CountingDetector()
    fi, dets = cached_detect(det, small_video, frame_stride=2, cache_dir=cache)
    np.testing.assert_array_equal(fi, [0, 2, 4, 6, 8, 10])
    assert fi.dtype == np.int64 and det.frames_seen == 6
    scores = [float(d.scores[0]) for d in dets]
    assert np.all(np.diff(scores) > 0)  # brighter frames later: order kept
    # hit: same content, even under another name
    copy = tmp_path / "renamed.mp4"
    shutil.copy(small_video, copy)
    fi2, dets2 = cached_detect(det, copy, frame_stride=2, cache_dir=cache)
    assert det.frames_seen == 6
    np.testing.assert_array_equal(fi2, fi)
    for a, b in zip(dets, dets2):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.labels, b.labels)
    # misses: other stride, other settings
    cached_detect(det, small_video, frame_stride=1, cache_dir=cache)
    assert det.frames_seen == 6 + 11
    det.threshold = 0.1
    _, dets3 = cached_detect(det, small_video, frame_stride=2, cache_dir=cache)
    assert det.frames_seen == 6 + 11 + 6
    assert [len(d) for d in dets3] == [0, 1, 1, 1, 1, 1]
    # a corrupt cache file is recomputed, not trusted
    files = sorted((cache / "detect").glob("*.npz"))  # the stage cache's detect/ folder
    assert len(files) == 3
    for f in files:
        f.write_bytes(b"broken")
    cached_detect(det, small_video, frame_stride=2, cache_dir=cache)
    assert det.frames_seen == 6 + 11 + 6 + 6
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_cache_sees_changed_content(small_video, tmp_path):
    cache = tmp_path / "cache"
    det = CountingDetector()
    cached_detect(det, small_video, cache_dir=cache)
    frames = np.stack([np.full((48, 64, 3), 200, np.uint8)] * 5)
    make_video(small_video, frames, crf=0)  # same path, new content
    fi, dets = cached_detect(det, small_video, cache_dir=cache)
    assert det.frames_seen == 11 + 5 and len(fi) == 5


def test_cache_errors(tmp_path):
    with pytest.raises(VideoError):
        cached_detect(CountingDetector(), tmp_path / "none.mp4", cache_dir=tmp_path)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"no video here")
    with pytest.raises(VideoError):
        cached_detect(CountingDetector(), bad, cache_dir=tmp_path)
    with pytest.raises(InputError, match="frame_stride"):
        cached_detect(CountingDetector(), bad, frame_stride=0, cache_dir=tmp_path)


def test_cache_with_yolox_on_real_video(yolox, vtest_path, tmp_path):
    """The cached detections of real frames equal a direct run on the same decoded frames."""
    from dctqa.io import iter_frames

    clip = tmp_path / "vtest12.mp4"
    frames = np.stack([f for f, _ in zip(iter_frames(vtest_path), range(12))])
    make_video(clip, frames, crf=18)
    fi, dets = cached_detect(yolox, clip, frame_stride=4, cache_dir=tmp_path / "c")
    decoded = [f for i, f in enumerate(iter_frames(clip)) if i % 4 == 0]
    direct = yolox.detect(decoded)
    np.testing.assert_array_equal(fi, [0, 4, 8])
    for a, b in zip(dets, direct):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_array_equal(a.labels, b.labels)
