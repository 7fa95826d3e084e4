"""``dctqa ladder`` (issue 23): the search on fake rate–quality curves, whole runs on tiny
synthetic clips (the pixel backbone and a test detector), the recommendation re-measured with
``dctqa score``, cache reuse (the stage cache's counters), segments, bad input, YOLOX-Nano."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dctqa.cli import main
from dctqa.ladder import LadderConfig, bisect_next, choose, inversions, pool, run_ladder, search
from tests.test_study import BrightBlobDetector, blob_clip, write_lossless

FAST = dict(preset="ultrafast", threads=1)  # threads=1: bit-reproducible encodes


# ----------------------------------------------------------------------------- the search, pure

def test_pool_statistics():
    v = [1.0, 2.0, 3.0, 4.0, float("nan")]
    assert pool(v, "mean") == 2.5 and pool(v, "median") == 2.5 and pool(v, "max") == 4.0
    assert pool(v, "p95") == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    assert pool(v, "p90") == pytest.approx(np.percentile([1, 2, 3, 4], 90))
    assert pool([], "mean") is None and pool([float("nan")], "max") is None
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(v, "p99")


GRID = (18, 23, 29, 35, 41, 47, 51)


@pytest.mark.parametrize("threshold", range(17, 52))
def test_bisection_finds_the_threshold_of_a_monotone_curve(threshold):
    """A curve rising with CRF: the search ends on the highest CRF within the bound, next to
    the lowest one outside it, after at most 3 bisection steps past the grid."""
    curve = {c: 1.0 + 0.1 * c for c in range(52)}
    bound = curve[threshold] + 0.05 if threshold >= 18 else 0.5
    calls = []

    def measure(c):
        calls.append(c)
        return curve[c] <= bound

    passes = search(measure, GRID)
    assert len(calls) == len(set(calls)) and len(calls) <= len(GRID) + 3
    assert inversions(passes) == []
    ok = [c for c, p in passes.items() if p]
    if threshold < 18:
        assert ok == [] and sorted(calls) == list(GRID)  # nothing meets it: no bisection
    else:
        assert max(ok) == threshold
        assert threshold == 51 or passes[threshold + 1] is False  # its neighbour was measured and fails


def test_bisection_on_a_non_monotone_curve():
    """A dip (CRF 29 fails, 35 passes): the search brackets the highest CRF within the bound,
    reports the inversion, and the choice is still within the bound."""
    q = {c: 2.0 + 0.05 * c for c in range(52)}
    q[29] = 9.0  # e.g. a noisy measurement
    bound = q[38] + 0.01
    passes = search(lambda c: q[c] <= bound, GRID)
    assert max(c for c, p in passes.items() if p) == 38 and passes[39] is False
    assert (29, 35) in inversions(passes) and (29, 38) in inversions(passes)
    rows = [{"crf": c, "kbps": 1000.0 / (1 + c), "q": q[c]} for c in passes]
    best = choose(rows, "q", bound)
    assert best["crf"] == 38 and best["q"] <= bound


def test_bisect_next_edges():
    assert bisect_next({20: False, 30: False}) is None  # nothing meets the bound
    assert bisect_next({20: True, 30: True}) is None  # the highest measured meets it
    assert bisect_next({20: True, 21: False}) is None  # adjacent: done
    assert bisect_next({20: True, 30: False}) == 25
    assert bisect_next({20: True, 30: None}) is None  # undecidable


def test_choose_takes_the_cheapest_within_the_bound():
    rows = [{"crf": 20, "kbps": 100.0, "q": 1.2}, {"crf": 30, "kbps": 40.0, "q": 1.6},
            {"crf": 31, "kbps": 40.0, "q": 1.55}, {"crf": 35, "kbps": 20.0, "q": 2.0},
            {"crf": 40, "kbps": 10.0, "q": None}]
    assert choose(rows, "q", 1.6)["crf"] == 30  # a tie in bitrate goes to the lower CRF
    assert choose(rows, "q", 1.5)["crf"] == 20
    assert choose(rows, "q", 1.0) is None


def _fake_candidate(windows, frames=250, crf=30):
    from dctqa.ladder.measure import Candidate
    from dctqa.study.codec import Variant

    v = Variant(f"crf{crf}", crf, None, Path(f"crf{crf}.mp4"), 100.0, frames)
    fi = np.arange(frames)
    return Candidate(v, fi, 1.0 + fi / 1000.0, np.full(frames, 4000, np.int64), windows)


def test_evaluate_counts_windows_as_the_study_does(tmp_path):
    """Windows without ground truth never count; a window cut short counts only where a
    segment has no full window; kbit/s of a stretch scale the file's figure."""
    from dctqa.ladder.choice import evaluate

    w = lambda s, ap, n_gt=20: {"window_start": s, "window_end": s + 100, "n_gt": n_gt, "ap": ap, "ap50": ap}
    ref = [w(0, 1.0), w(100, 1.0), w(200, 0.9)]
    c = _fake_candidate([w(0, 0.9), w(100, None, 0), w(200, 0.2)])
    few = _fake_candidate([w(0, 0.0, 9), w(200, 0.2)])  # 9 boxes: under min_gt (10), not counted
    cfg = LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_ap_drop=0.15, segment_frames=200)
    whole = evaluate(cfg, c, ref, (0, 250))
    assert whole["ap_drop"] == pytest.approx(0.1) and whole["windows"] == 1 and not whole["cut_short"]
    assert whole["meets_bound"] and whole["kbps"] == pytest.approx(100.0)
    assert whole["q"] == pytest.approx(np.mean(1.0 + np.arange(250) / 1000.0))
    assert evaluate(cfg, few, ref, (0, 200))["ap_drop"] is None
    assert evaluate(LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_ap_drop=0.15, min_gt=9),
                    few, ref, (0, 200))["ap_drop"] == pytest.approx(1.0)
    tail = evaluate(cfg, c, ref, (200, 250))  # only the cut-short window: it counts, and says so
    assert tail["ap_drop"] == pytest.approx(0.7) and tail["cut_short"] and tail["meets_bound"] is False
    cfg_max = LadderConfig(video=tmp_path / "v.mkv", out=tmp_path / "o", max_q=1.2, pool="max")
    assert evaluate(cfg_max, c, ref, (0, 100))["q"] == pytest.approx(1.099)


# ----------------------------------------------------------------------------- whole runs

@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ladder") / "blobs.mkv"
    write_lossless(path, blob_clip(n=40))
    return path


def _doc(out: Path) -> dict:
    return json.loads((out / "ladder.json").read_text())


def _by_crf(doc: dict) -> dict[int, dict]:
    return {c["crf"]: c for c in doc["candidates"] if c["cap_kbps"] is None}


@pytest.fixture(scope="module")
def loose(clip, tmp_path_factory) -> dict:
    """A run whose bound every candidate meets: the grid alone, its Q per CRF."""
    out = tmp_path_factory.mktemp("loose") / "l"
    res = run_ladder(LadderConfig(video=clip, out=out, max_q=1e6, backbone="pixel", crfs=(18, 23, 29, 41), **FAST))
    assert res.exit_status == 0 and res.doc["search"]["rounds"] == []
    return res.doc


def test_max_q_recommendation_remeasured_with_score_and_reused(clip, loose, tmp_path, capsys):
    q = {c: d["q"] for c, d in _by_crf(loose).items()}
    assert q[41] > q[18]  # Q grows with compression on this clip
    bound = (q[23] + q[29]) / 2
    out = tmp_path / "l"
    argv = ["ladder", str(clip), "--out", str(out), "--max-q", repr(bound), "--backbone", "pixel",
            "--crf", "18,23,29,41", "--preset", "ultrafast", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    doc = _doc(out)
    rec = doc["recommended"]
    assert rec is not None and rec["q"] <= bound and f"recommended: {rec['name']}" in printed
    assert doc["bound"] == {**doc["bound"], "kind": "max_q", "value": bound, "pool": "mean"}
    assert 23 <= rec["crf"] < 29 and doc["search"]["rounds"]  # a bisection ran between 23 and 29
    measured = _by_crf(doc)
    assert measured[rec["crf"]]["meets_bound"] and (rec["crf"] + 1 not in measured or
                                                   not measured[rec["crf"] + 1]["meets_bound"])
    cheaper = [c for c in doc["candidates"] if c["kbps"] < rec["kbps"]]
    assert all(not c["meets_bound"] for c in cheaper)
    assert (out / "ladder.png").stat().st_size > 5000
    # re-measured by `dctqa score`: the same Q, within the bound
    log = tmp_path / "score.json"
    assert main(["score", str(clip), rec["path"], "--backbone", "pixel", "--json", str(log), "--quiet"]) == 0
    pooled = json.loads(log.read_text())["pooled_metrics"]["dctqa"]["mean"]
    assert pooled == pytest.approx(rec["q"], rel=1e-6) and pooled <= bound
    # a rerun reuses every encode and score (the stage cache's counters), with the same answer
    assert main(argv) == 0
    again = _doc(out)
    assert again["cache"]["misses"] == {} and again["cache"]["hits"]["score"] == len(doc["candidates"])
    assert again["cache"]["hits"]["encode"] == 1 + len(doc["search"]["measured_crfs"]) - 4
    assert again["recommended"] == rec and again["candidates"] == doc["candidates"]


def test_unmeetable_bound_says_so(clip, loose, tmp_path, capsys):
    best = min(d["q"] for d in loose["candidates"])
    out = tmp_path / "l"
    rc = main(["ladder", str(clip), "--out", str(out), "--max-q", repr(best * 0.9), "--backbone", "pixel",
               "--crf", "18,23,29,41", "--preset", "ultrafast", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no candidate meets the bound" in err
    doc = _doc(out)
    assert doc["recommended"] is None and "no candidate meets the bound" in doc["reason"]
    assert doc["search"]["rounds"] == [] and (out / "ladder.png").is_file()
    assert "NaN" not in (out / "ladder.json").read_text()


def _independent_ap_drop(path, ref, window):
    from dctqa.study.detect import pseudo_ground_truth, window_ap
    from dctqa.io import read_frames

    det = BrightBlobDetector()
    ref_frames, frames = read_frames(ref)[::2], read_frames(path)[::2]
    fi = np.arange(0, len(read_frames(ref)), 2)
    gt = pseudo_ground_truth(det.detect(list(ref_frames)), 0.5)
    ref_ap = window_ap(gt, det.detect(list(ref_frames)), fi, window=window)
    cand = window_ap(gt, det.detect(list(frames)), fi, window=window)
    return [(r.ap - c.ap) for r, c in zip(ref_ap, cand) if r.n_gt]


def test_ap_bound_per_segment(clip, tmp_path):
    """--max-ap-drop with the test detector, in two segments of 20 frames: each segment's choice
    meets the bound there, AP drops equal an independent computation, kbit/s add up."""
    out = tmp_path / "l"
    cfg = LadderConfig(video=clip, out=out, max_ap_drop=0.1, backbone="pixel", crfs=(18, 35, 51),
                       detector=BrightBlobDetector(), frame_stride=2, segment_frames=20, **FAST)
    res = run_ladder(cfg)
    doc = res.doc
    assert doc["detector"] == "test:bright-blobs" and len(doc["segments"]) == 2
    assert all(w["ap"] == 1.0 for w in doc["reference_windows"])  # the source against its own detections
    for c in doc["candidates"]:
        segs = c["segments"]
        assert [(s["start"], s["end"]) for s in segs] == [(0, 20), (20, 40)]
        assert sum(s["kbps"] * (s["end"] - s["start"]) for s in segs) / 40 == pytest.approx(c["kbps"], rel=1e-9)
        want = _independent_ap_drop(c["path"], clip, 20)
        assert [s["ap_drop"] for s in segs] == pytest.approx(want, abs=1e-9)
    for s in doc["segments"]:
        if s["recommended"] is not None:
            row = next(c for c in doc["candidates"] if c["name"] == s["recommended"]["name"])["segments"][s["index"]]
            assert row["ap_drop"] <= 0.1 and row["meets_bound"]
    assert any(s["recommended"] for s in doc["segments"])


def test_reuses_a_study_with_the_same_settings(clip, tmp_path):
    """Run in a study's folder, with the study's encode settings, Q configuration and AP
    window: the grid's encode, scores, detections and AP windows come from the study's cache."""
    from dctqa.study import StudyConfig, run_study
    from dctqa.study.codec import EncodeSettings

    out = tmp_path / "s"
    det = BrightBlobDetector()
    run_study(StudyConfig(videos=[clip], out=out, encode=EncodeSettings(crfs=(18, 51), cap_bpp=(), **FAST),
                          backbones=["pixel"], domains=("spectral",), pixel=False, baselines=(), detector=det,
                          frame_stride=2, metric_stride=2, window=20, n_boot=20, sensitivity_gt=(),
                          sensitivity_pred=()))
    res = run_ladder(LadderConfig(video=clip, out=out, max_ap_drop=1.0, backbone="pixel", crfs=(18, 51),
                                  detector=det, frame_stride=2, window=20, **FAST))
    cache = res.doc["cache"]
    assert cache["misses"] == {} and cache["hits"]["encode"] == 1 and cache["hits"]["score"] == 2
    assert cache["hits"]["ap"] == 2 and (out / "report.md").is_file() and (out / "ladder.json").is_file()


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("extra, message", [
    (["--max-q", "2", "--max-ap-drop", "0.1"], "not allowed with argument"),
    ([], "one of the arguments --max-q --max-ap-drop is required"),
    (["--max-q", "-1"], "must be a finite number"),
    (["--max-q", "nan"], "must be a finite number"),
    (["--max-q", "0"], "must be a finite number"),
    (["--max-ap-drop", "-0.1"], "must be a finite number"),
    (["--max-ap-drop", "nan"], "must be a finite number"),
    (["--max-ap-drop", "1.5"], "must be a finite number"),
    (["--max-q", "2", "--crf", "52"], "integers 0..51"),
    (["--max-q", "2", "--caps", "inf"], "caps must be finite"),
])
def test_bad_bounds_fail_before_any_work(clip, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(["ladder", str(clip), "--out", str(tmp_path / "l"), "--backbone", "pixel", *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "l").exists()


def test_bad_inputs_exit_2_and_leave_nothing(clip, tmp_path, capsys):
    odd = tmp_path / "odd.mkv"
    write_lossless(odd, blob_clip(n=3, h=33, w=48))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 8)
    (tmp_path / "file").write_text("x")
    cases = [([str(junk), "--out", str(tmp_path / "a")], "error:"),
             ([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "a")], "no such file"),
             ([str(odd), "--out", str(tmp_path / "a")], "needs even width and height"),
             ([str(clip), "--out", str(tmp_path / "file")], "not a folder"),
             ([str(clip), "--out", str(tmp_path / "file" / "x")], "error:"),
             ([str(clip), "--out", str(tmp_path / "a"), "--domain", "pixel", "--backbone", "onnx:x.onnx"],
              "takes no backbone"),
             ([str(clip), "--out", str(tmp_path / "a"), "--backbone", "bogus"], "error:"),
             ([str(clip), "--out", str(tmp_path / "a"), "--address", "127.0.0.1:1"], "--engine ray")]
    for args, message in cases:
        assert main(["ladder", "--backbone", "pixel", *args, "--max-q", "2", "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / "a").exists()
    assert main(["ladder", str(clip), "--out", str(tmp_path / "a"), "--max-ap-drop", "0.1", "--backbone", "pixel",
                 "--detector", f"onnx:{tmp_path / 'none.onnx'}", "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err and not (tmp_path / "a").exists()


def test_read_only_out(clip, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        try:
            (ro / "probe").write_text("x")
        except PermissionError:
            pass
        else:
            (ro / "probe").unlink()
            pytest.skip("this user (root?) writes into a read-only folder: the check cannot fail here")
        assert main(["ladder", str(clip), "--out", str(ro / "l"), "--max-q", "2", "--backbone", "pixel",
                     "--quiet"]) == 2
        assert "cannot write into the folder" in capsys.readouterr().err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_interrupted_run_leaves_no_ladder_json(clip, tmp_path, monkeypatch):
    """A failure after the encodes (here: in the plot) leaves the resumable work but neither
    ladder.json nor the plot."""
    from dctqa.ladder import report

    def broken(doc):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_png", broken)
    out = tmp_path / "l"
    with pytest.raises(KeyboardInterrupt):
        run_ladder(LadderConfig(video=clip, out=out, max_q=1e6, backbone="pixel", crfs=(18, 51), **FAST))
    assert not (out / "ladder.json").exists() and not (out / "ladder.png").exists()
    assert (out / "cache").is_dir()  # finished work stays for the rerun
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_undecidable_ap_without_ground_truth(tmp_path):
    """A clip where the detector finds nothing: the AP drop cannot be measured; said plainly."""
    rng = np.random.default_rng(1)
    dark = tmp_path / "dark.mkv"
    write_lossless(dark, rng.integers(0, 60, (8, 32, 32, 3), dtype=np.uint8))
    res = run_ladder(LadderConfig(video=dark, out=tmp_path / "l", max_ap_drop=0.05, backbone="pixel", crfs=(20, 50),
                                  detector=BrightBlobDetector(), **FAST))
    assert res.exit_status == 1 and res.recommended is None and "undecidable" in res.doc["reason"]


# ----------------------------------------------------------------------------- YOLOX-Nano

def test_yolox_ap_drop(yolox_path, vtest_path, tmp_path):
    """YOLOX-Nano as detector and Q backbone on 24 frames of vtest.avi (halved): the AP drop
    grows with CRF, and the recommendation is within the bound."""
    from dctqa.io import read_frames

    clip = tmp_path / "walkers.mkv"
    write_lossless(clip, read_frames(vtest_path, max_frames=24)[:, ::2, ::2].copy())
    model = f"onnx:{yolox_path}"
    res = run_ladder(LadderConfig(video=clip, out=tmp_path / "l", max_ap_drop=0.1, backbone=model, detector=model,
                                  crfs=(23, 41, 51), frame_stride=4, **FAST))
    doc = res.doc
    by = _by_crf(doc)
    assert doc["reference_windows"][0]["n_gt"] > 0
    assert by[51]["ap_drop"] > by[23]["ap_drop"] and by[51]["q"] > by[23]["q"]
    if res.recommended is not None:
        assert res.recommended["ap_drop"] <= 0.1
    else:
        assert "no candidate meets" in doc["reason"]
