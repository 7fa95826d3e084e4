"""``dctqa ladder --confidence`` (issue 23): the clustered bootstrap's pieces (time blocks,
two-stage draws, the quantile), AP on drawn frames against the study's window AP, and the
rule biting: a candidate whose point estimate is within the bound but whose upper limit is
not does not qualify, on synthetic detections and in a whole run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dctqa.cli import main
from dctqa.errors import InputError
from dctqa.ladder import LadderConfig, run_ladder
from dctqa.ladder.choice import choice, evaluate
from dctqa.ladder.confidence import UpperLimits, draw, time_blocks, upper_quantile
from dctqa.ladder.measure import Candidate
from dctqa.study.codec import Variant
from dctqa.study.detect import Detections, window_ap
from dctqa.study.detect.ap import frames_ap
from tests.test_ladder import FAST, _doc, clip  # noqa: F401  (the module-scoped clip fixture)


def test_time_blocks_group_positions_by_block():
    fi = np.array([0, 4, 8, 12, 16, 20, 24, 40, 44])
    blocks = time_blocks(fi, 0, 40, 10)
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4], [5, 6]]  # frames 0-8, 12-16, 20-24
    assert [b.tolist() for b in time_blocks(fi, 40, 100, 10)] == [[7, 8]]
    assert time_blocks(fi, 50, 60, 10) == []


def test_draw_is_two_stage_and_reproducible():
    groups = [[np.array([0, 1]), np.array([2])], [np.array([3]), np.array([4]), np.array([5])]]
    reps = draw(groups, 300, np.random.default_rng(7))
    assert len(reps) == 300 and all(len(r) == 2 for r in reps)  # as many windows as there are
    sizes = {len(w) for r in reps for w in r}
    assert sizes <= {2, 3, 4, 5, 6}  # each drawn window: its own number of blocks, drawn with replacement
    flat = [tuple(w.tolist()) for r in reps for w in r]
    assert any(set(w) <= {0, 1, 2} for w in flat) and any(set(w) <= {3, 4, 5} for w in flat)
    assert any(len(set(w)) < len(w) for w in flat)  # with replacement
    again = draw(groups, 300, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for ra, rb in zip(reps, again) for a, b in zip(ra, rb))
    one = draw(groups[:1], 50, np.random.default_rng(0))  # one window: it is always the one drawn
    assert all(len(r) == 1 and set(r[0].tolist()) <= {0, 1, 2} for r in one)
    assert draw([[]], 5, np.random.default_rng(0)) == []


def test_upper_quantile():
    assert upper_quantile([0.0, 1.0, None, float("nan"), 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.0)
    assert upper_quantile([None, float("nan")], 0.9) is None
    assert upper_quantile(list(range(101)), 0.9) == pytest.approx(90.0)


def _scene(n: int = 40, shift_block: int | None = 0, shift: float = 6.0):
    """Pseudo ground truth and detections on ``n`` frames: two objects of class 1 in every frame;
    the candidate's boxes are shifted by ``shift`` px in the frames of block ``shift_block``
    (frames 0-9), perfect elsewhere."""
    gt, ref, cand = [], [], []
    for f in range(n):
        boxes = np.array([[10, 10, 50, 50], [60, 20, 100, 70]], np.float32)
        gt.append(Detections(boxes, np.ones(2), np.ones(2, np.int64)))
        ref.append(Detections(boxes, np.full(2, 0.9), np.ones(2, np.int64)))
        moved = boxes + (shift if shift_block is not None and f // 10 == shift_block else 0.0)
        cand.append(Detections(moved, np.full(2, 0.9), np.ones(2, np.int64)))
    return gt, ref, cand


def test_frames_ap_matches_window_ap_and_counts_repeats():
    gt, _, cand = _scene()
    fi = np.arange(40)
    (w,) = window_ap(gt, cand, fi, window=40, image_size=(120, 160))
    ap50, ap = frames_ap(gt, cand, (120, 160))
    assert (ap50, ap) == pytest.approx((w.ap50, w.ap)) and ap < 1.0
    # every frame twice: the same precision-recall curve
    assert frames_ap(gt + gt, cand + cand, (120, 160)) == pytest.approx((ap50, ap))
    # the shifted frames drawn more often: a lower AP
    bad = list(range(10)) * 3 + list(range(10, 20))
    assert frames_ap([gt[i] for i in bad], [cand[i] for i in bad], (120, 160))[1] < ap
    assert frames_ap([Detections(np.zeros((0, 4)), [], [])], [cand[0]]) == (None, None)
    with pytest.raises(InputError, match="one each"):
        frames_ap(gt, cand[:3])


def _candidate(name: str, crf: int, kbps: float, dets: list, windows: list) -> Candidate:
    v = Variant(name, crf, None, Path(f"{name}.mp4"), kbps, 40)
    fi = np.arange(40)
    return Candidate(v, fi, 1.0 + fi / 100.0, np.full(40, 1000, np.int64), windows, dets=dets)


def _limits(cfg, gt, ref):
    return UpperLimits(cfg, gt=gt, ref_dets=ref, det_frames=np.arange(40), image_size=(120, 160))


def test_upper_limit_rejects_a_candidate_whose_point_estimate_passes(tmp_path):
    """Errors in one 10-frame block of four: the point drop is the block's share, the upper
    limit (replicates that draw the block more than once) is higher; with a bound between the
    two the candidate qualifies at --confidence 0 and not at 0.9."""
    gt, ref, cand = _scene()
    fi = np.arange(40)
    (r,) = window_ap(gt, ref, fi, window=40, image_size=(120, 160))
    (w,) = window_ap(gt, cand, fi, window=40, image_size=(120, 160))
    win = lambda a: {"window_start": 0, "window_end": 40, "n_gt": 80, "ap": a.ap, "ap50": a.ap50}
    ref_windows = [win(r)]
    c = _candidate("crf30", 30, 50.0, cand, [win(w)])
    point = r.ap - w.ap
    assert point > 0
    base = dict(video=tmp_path / "v.mkv", out=tmp_path / "o", window=40, block_frames=10, replicates=200)
    probe_cfg = LadderConfig(max_ap_drop=1.0, **base)
    upper = evaluate(probe_cfg, c, ref_windows, (0, 40), _limits(probe_cfg, gt, ref))["ap_drop_upper"]
    assert upper > point * 1.2
    bound = (point + upper) / 2
    strict = LadderConfig(max_ap_drop=bound, **base)
    loose = LadderConfig(max_ap_drop=bound, confidence=0, **base)
    row = evaluate(strict, c, ref_windows, (0, 40), _limits(strict, gt, ref))
    assert row["ap_drop"] == pytest.approx(point) and row["meets_bound"] is False
    assert evaluate(loose, c, ref_windows, (0, 40))["meets_bound"] is True
    # the same seed: the same limit; another seed: another draw, close to it
    assert evaluate(strict, c, ref_windows, (0, 40), _limits(strict, gt, ref))["ap_drop_upper"] == upper
    other = LadderConfig(max_ap_drop=bound, seed=3, **base)
    assert evaluate(other, c, ref_windows, (0, 40), _limits(other, gt, ref))["ap_drop_upper"] == pytest.approx(
        upper, rel=0.3)
    # the choice falls back on a safer candidate, and says why when there is none
    _, _, perfect = _scene(shift_block=None)
    safe = _candidate("crf20", 20, 200.0, perfect, [win(r)])
    best, reason, _ = choice(strict, [c, safe], ref_windows, (0, 40), _limits(strict, gt, ref))
    assert best["name"] == "crf20" and reason is None and best["ap_drop_upper"] == 0.0
    best, reason, _ = choice(strict, [c], ref_windows, (0, 40), _limits(strict, gt, ref))
    assert best is None and "at confidence 0.9" in reason and "--confidence 0" in reason


def test_upper_limit_of_q_and_errors_in_every_block(tmp_path):
    """Q rising over time: the mean's upper limit is above the mean; a candidate wrong in every
    block has an upper limit close to its point estimate (nothing left to resample away)."""
    cfg = LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_q=1.5, block_frames=10)
    c = _candidate("crf30", 30, 50.0, None, [])
    lim = UpperLimits(cfg)
    row = evaluate(cfg, c, [], (0, 40), lim)
    assert row["q_upper"] > row["q"] and row["meets_bound"] is True
    assert evaluate(cfg, c, [], (0, 40), lim)["q_upper"] == row["q_upper"]  # memoised
    gt, ref, _ = _scene()
    everywhere = [Detections(d.boxes + 6.0, d.scores, d.labels) for d in ref]
    fi = np.arange(40)
    (r,) = window_ap(gt, ref, fi, window=40)
    (w,) = window_ap(gt, everywhere, fi, window=40)
    ap_cfg = LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_ap_drop=0.5, window=40, block_frames=10)
    win = lambda a: {"window_start": 0, "window_end": 40, "n_gt": 80, "ap": a.ap, "ap50": a.ap50}
    row = evaluate(ap_cfg, _candidate("crf40", 40, 20.0, everywhere, [win(w)]), [win(r)], (0, 40),
                   _limits(ap_cfg, gt, ref))
    assert row["ap_drop_upper"] == pytest.approx(row["ap_drop"], abs=1e-9)


@pytest.mark.parametrize("field, value, message", [
    ("confidence", 1.0, "confidence must be a number in \\[0, 1\\)"),
    ("confidence", -0.1, "confidence must be"),
    ("confidence", float("nan"), "confidence must be"),
    ("replicates", 5, "replicates must be an integer >= 20"),
    ("block_frames", 0, "block_frames must be an integer >= 1"),
    ("seed", -1, "seed must be an integer >= 0"),
])
def test_bad_confidence_settings(tmp_path, field, value, message):
    with pytest.raises(InputError, match=message):
        LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_q=2.0, **{field: value})


@pytest.mark.parametrize("extra", [["--confidence", "1"], ["--confidence", "nan"], ["--replicates", "3"],
                                   ["--block-frames", "0"], ["--seed", "-2"]])
def test_bad_confidence_options_exit_2(clip, tmp_path, capsys, extra):  # noqa: F811
    out = tmp_path / "l"
    with pytest.raises(SystemExit) as exc:
        main(["ladder", str(clip), "--out", str(out), "--max-q", "2", "--backbone", "pixel", *extra])
    assert exc.value.code == 2 and not out.exists() and extra[0] in capsys.readouterr().err


def test_whole_run_records_the_rule(clip, tmp_path, capsys):  # noqa: F811
    """A --max-q run at the default confidence: every candidate carries its upper limit, the
    recommendation's is within the bound, the bound says how it was judged, and --confidence 0
    recommends a candidate at least as cheap."""
    out = tmp_path / "l"
    common = ["--backbone", "pixel", "--crf", "18,29,41", "--preset", "ultrafast", "--quiet"]
    assert main(["ladder", str(clip), "--out", str(out), "--max-q", "1e6", *common]) == 0
    q = {c["crf"]: c["q"] for c in _doc(out)["candidates"]}
    bound = (q[18] + q[29]) / 2
    rc = main(["ladder", str(clip), "--out", str(out), "--max-q", repr(bound), "--block-frames", "5", *common])
    doc = _doc(out)
    printed = capsys.readouterr().out
    assert doc["bound"]["confidence"] == 0.9 and doc["bound"]["block_frames"] == 5
    assert doc["bound"]["replicates"] == 200 and "upper confidence limit" in doc["bound"]["meaning"]
    assert all(c["q_upper"] is not None and c["q_upper"] >= c["q"] - 1e-12 for c in doc["candidates"])
    assert "upper 0.9" in printed and "bootstrap" in doc["timings"]
    assert rc == 0  # CRF 18's Q is far below the bound, its upper limit too
    rec = doc["recommended"]
    assert rec["q_upper"] <= bound and rec["q"] <= bound
    assert main(["ladder", str(clip), "--out", str(out), "--max-q", repr(bound), "--confidence", "0", *common]) == 0
    point = _doc(out)
    assert point["bound"]["confidence"] == 0 and point["bound"]["replicates"] is None
    assert all(c["q_upper"] is None for c in point["candidates"])
    assert point["recommended"]["kbps"] <= rec["kbps"]
