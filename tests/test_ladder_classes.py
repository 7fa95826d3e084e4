"""``--classes`` of ``dctqa ladder`` and ``dctqa study``: pseudo ground truth and AP restricted
to a camera's classes of interest. The class table (names and ids), the restriction in the
bootstrap's AP on drawn frames, a whole ladder run against an independent computation (a
second run in the same folder reuses the detections and recomputes only the AP), and bad
input (rc 2, nothing written)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from dctqa.cli import main
from dctqa.errors import InputError
from dctqa.ladder import LadderConfig, run_ladder
from dctqa.ladder.choice import evaluate
from dctqa.ladder.confidence import UpperLimits
from dctqa.ladder.measure import Candidate
from dctqa.study.codec import Variant
from dctqa.study.config import StudyConfig
from dctqa.study.detect import Detections, pseudo_ground_truth, window_ap
from dctqa.study.detect.categories import class_ids, class_names
from tests.test_ladder import FAST, clip  # noqa: F401  (the module-scoped clip fixture)
from tests.test_study import BrightBlobDetector

CAR, PERSON = 3, 1


def test_class_ids_reads_names_and_ids():
    assert class_ids("car") == (CAR,)
    assert class_ids(" Car , traffic light,3, person ") == (PERSON, CAR, 10)  # sorted, distinct
    assert class_ids(["bottle", 1]) == (1, 44)
    assert class_names((1, 3, 44)) == ["person", "car", "bottle"]
    for bad, message in (("cars", "unknown COCO class 'cars'"), ("12", "unknown COCO class '12'"),
                         ("0", "unknown COCO class '0'"), ("car,", "unknown COCO class ''"), ([], "no COCO class")):
        with pytest.raises(InputError, match=message):
            class_ids(bad)
    with pytest.raises(InputError, match="toothbrush"):  # the message lists the valid names
        class_ids("cars")


def test_configs_check_classes(tmp_path):
    video = tmp_path / "v.mkv"
    video.write_bytes(b"x")
    assert StudyConfig(videos=[video], out=tmp_path / "s", classes="car,person").classes == (PERSON, CAR)
    assert StudyConfig(videos=[video], out=tmp_path / "s").classes is None
    with pytest.raises(InputError, match="unknown COCO class"):
        StudyConfig(videos=[video], out=tmp_path / "s", classes="vehicle")
    assert LadderConfig(video=video, out=tmp_path / "l", max_ap_drop=0.1, classes=["car"]).classes == (CAR,)
    with pytest.raises(InputError, match="--max-q bound runs no detector"):
        LadderConfig(video=video, out=tmp_path / "l", max_q=2.0, classes="car")


def _two_class_scene(n: int = 40):
    """A car in every frame, detected the same on source and candidate; a person in frames
    0-9 only, which the candidate misses: every class loses AP, cars alone lose none."""
    gt, ref, cand = [], [], []
    for f in range(n):
        car = np.array([[10, 10, 50, 50]], np.float32)
        person = np.array([[70, 20, 90, 70]], np.float32)
        boxes = np.concatenate([car, person]) if f < 10 else car
        labels = np.array([CAR, PERSON] if f < 10 else [CAR], np.int64)
        ref.append(Detections(boxes, np.full(len(boxes), 0.9), labels))
        cand.append(Detections(car, np.full(1, 0.9), np.array([CAR])))
    gt = pseudo_ground_truth(ref, 0.5)
    return gt, ref, cand


def test_upper_limit_counts_only_the_classes(tmp_path):
    """The bootstrap's AP on drawn frames is restricted like the windows' AP: with cars only the
    candidate loses nothing, point estimate and upper limit both 0; with every class both > 0."""
    gt, ref, cand = _two_class_scene()
    fi = np.arange(40)
    base = dict(video=tmp_path / "v.mkv", out=tmp_path / "o", window=40, block_frames=10, replicates=100)
    drops = {}
    for classes in (None, ("car",)):
        cfg = LadderConfig(max_ap_drop=0.05, classes=classes, **base)
        g = pseudo_ground_truth(ref, 0.5, categories=cfg.classes)
        (r,) = window_ap(g, ref, fi, window=40, categories=cfg.classes)
        (w,) = window_ap(g, cand, fi, window=40, categories=cfg.classes)
        win = lambda a: {"window_start": 0, "window_end": 40, "n_gt": a.n_gt, "ap": a.ap, "ap50": a.ap50}
        c = Candidate(Variant("crf30", 30, None, Path("crf30.mp4"), 50.0, 40), fi, np.ones(40),
                      np.full(40, 1000, np.int64), [win(w)], dets=cand)
        limits = UpperLimits(cfg, gt=g, ref_dets=ref, det_frames=fi, image_size=(120, 160))
        row = evaluate(cfg, c, [win(r)], (0, 40), limits)
        drops[classes] = (row["ap_drop"], row["ap_drop_upper"], row["meets_bound"], r.n_gt)
    assert drops[("car",)] == (0.0, 0.0, True, 40)
    point, upper, meets, n_gt = drops[None]
    assert point > 0.3 and upper >= point and meets is False and n_gt == 50
    assert gt is not None  # the unrestricted pseudo ground truth holds both classes
    assert {int(x) for d in gt for x in d.labels} == {PERSON, CAR}


class TwoClassBlobs(BrightBlobDetector):
    """The test detector's blobs as cars (COCO 3) in the left half of the frame, persons
    (COCO 1) in the right half."""

    name = "test:two-class-blobs"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for f, d in zip(frames, super().detect(frames)):
            cx = (d.boxes[:, 0] + d.boxes[:, 2]) / 2
            out.append(Detections(d.boxes, d.scores, np.where(cx < f.shape[1] / 2, CAR, PERSON).astype(np.int64)))
        return out


def _independent(path, ref, window, classes):
    from dctqa.io import read_frames

    det = TwoClassBlobs()
    ref_frames, frames = list(read_frames(ref)[::2]), list(read_frames(path)[::2])
    fi = np.arange(0, 2 * len(ref_frames), 2)
    ref_dets = det.detect(ref_frames)
    gt = pseudo_ground_truth(ref_dets, 0.5, categories=classes)
    ref_ap = window_ap(gt, ref_dets, fi, window=window, categories=classes)
    cand = window_ap(gt, det.detect(frames), fi, window=window, categories=classes)
    return [(r.ap - c.ap) for r, c in zip(ref_ap, cand) if r.n_gt], [r.n_gt for r in ref_ap]


def test_whole_run_with_classes(clip, tmp_path):  # noqa: F811
    """Cars only: every candidate's window AP drops equal an independent computation over cars,
    the windows count car boxes only, the record names the class; a second run in the same
    folder with every class reuses the encodes and detections and recomputes only the AP."""
    out = tmp_path / "l"
    common = dict(video=clip, out=out, max_ap_drop=1.0, confidence=0, backbone="pixel", crfs=(18, 41, 51),
                  frame_stride=2, segment_frames=20, min_gt=1, **FAST)
    cars = run_ladder(LadderConfig(classes="car", detector=TwoClassBlobs(), **common)).doc
    assert cars["bound"]["classes"] == ["car"] and "(COCO classes car only)" in cars["bound"]["meaning"]
    every = run_ladder(LadderConfig(detector=TwoClassBlobs(), **common)).doc
    assert every["bound"]["classes"] is None
    assert every["cache"]["misses"].get("encode", 0) == 0 and every["cache"]["misses"].get("ap", 0) > 0
    differ = False
    for doc, classes in ((cars, [CAR]), (every, None)):
        for c in doc["candidates"]:
            want, n_gt = _independent(c["path"], clip, 20, classes)
            assert [s["ap_drop"] for s in c["segments"]] == pytest.approx(want, abs=1e-9)
        assert [w["n_gt"] for w in doc["reference_windows"]] == n_gt
    car_gt = [w["n_gt"] for w in cars["reference_windows"]]
    all_gt = [w["n_gt"] for w in every["reference_windows"]]
    assert all(a <= b for a, b in zip(car_gt, all_gt)) and sum(car_gt) < sum(all_gt)
    for a, b in zip(cars["candidates"], every["candidates"]):
        differ |= a["ap_drop"] != b["ap_drop"]
    assert differ  # restricting the classes changed what was measured


@pytest.mark.parametrize("extra, message", [
    (["--max-ap-drop", "0.1", "--classes", "cars"], "unknown COCO class 'cars'"),
    (["--max-ap-drop", "0.1", "--classes", ""], "unknown COCO class ''"),
    (["--max-q", "2", "--classes", "car"], "runs no detector"),
])
def test_bad_classes_exit_2_and_leave_nothing(clip, tmp_path, capsys, extra, message):  # noqa: F811
    assert main(["ladder", str(clip), "--out", str(tmp_path / "l"), "--backbone", "pixel", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "l").exists()


def test_study_refuses_unknown_classes(clip, tmp_path, capsys):  # noqa: F811
    assert main(["study", str(clip), "--out", str(tmp_path / "s"), "--classes", "unicorn", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown COCO class 'unicorn'" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
