"""dctqa.scale without Ray: segments, the local engine, outputs, faults, resume, the CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_video
from tests.scale_data import FRAMES, SEGMENT, make_pairs

pq = pytest.importorskip("pyarrow.parquet", reason="the scale outputs need pyarrow (pip install dctqa[ray])")

from dctqa.cli import main  # noqa: E402
from dctqa.scale import score_many  # noqa: E402
from dctqa.scale.segments import common_keyframes, index_video, iter_segment, plan_segments  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory, car_path) -> Path:
    return make_pairs(tmp_path_factory.mktemp("scale"), car_path)


@pytest.fixture(scope="module")
def local_run(data, yolox_backbone, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    res = score_many(data, out, engine="local", backbone=yolox_backbone, segment_frames=SEGMENT, per_filter=True)
    assert res.exit_status == 0 and len(res.scored) == 2
    return out


def _frames(path: Path, n: int):
    from dctqa.io import iter_frames

    return list(iter_frames(path, max_frames=n))


@pytest.mark.parametrize("video", ["data", "videos/vtest.avi", "videos/car-detection.mp4"])
def test_segments_decode_the_same_frames_as_one_pass(video, data, shared_path):
    path = data.parent / "d0.mp4" if video == "data" else shared_path / video
    if not path.is_file():
        pytest.skip(f"needs {path}")
    idx = index_video(path)
    n = min(idx.frames, 130)
    full = _frames(path, n)
    assert idx.pts is not None and len(idx.keyframes) > 1  # the seek path is what is tested
    for seg, stride, threads in ((16, 1, None), (25, 3, 1), (25, 1, 3)):  # decoder threads change no frame
        got = [f for a, b in plan_segments(n, seg, stride, idx.keyframes)
               for f in iter_segment(path, idx, a, b, stride, threads)]
        want = full[::stride]
        assert len(got) == len(want)
        assert all(np.array_equal(x, y) for x, y in zip(got, want))


def test_q_equals_dctqa_score_per_pair(data, local_run, tmp_path, yolox_backbone):
    table = pq.read_table(local_run / "frames.parquet").to_pandas()
    for dist in ("d0.mp4", "d1.mp4"):
        log = tmp_path / f"{dist}.json"
        assert main(["score", str(data.parent / "ref.mp4"), str(data.parent / dist), "--backbone", yolox_backbone,
                     "--json", str(log), "--quiet"]) == 0
        want = json.loads(log.read_text())["frames"]
        rows = table[table["dist"] == dist]
        assert list(rows["frame"]) == [f["frameNum"] for f in want] == list(range(FRAMES))
        q = np.array([f["metrics"]["dctqa"] for f in want])
        np.testing.assert_allclose(rows["dctqa"].to_numpy(), q, rtol=1e-9, atol=0)


def test_outputs_layout(data, local_run):
    table = pq.read_table(local_run / "frames.parquet")
    assert table.column_names[:7] == ["ref", "dist", "crf", "frame", "dctqa", "implementation", "metric_version"]
    assert [c for c in table.column_names if c.startswith("q_")] == [f"q_{k}" for k in range(16)]
    df = table.to_pandas()
    np.testing.assert_allclose(df[[f"q_{k}" for k in range(16)]].mean(axis=1), df["dctqa"], rtol=1e-12)
    import csv

    summary = list(csv.DictReader(open(local_run / "summary.csv")))
    assert [r["dist"] for r in summary] == ["d0.mp4", "d1.mp4"] and summary[0]["crf"] == "30"
    for r in summary:
        log = json.loads((local_run / r["log"]).read_text())
        assert float(r["mean"]) == log["pooled_metrics"]["dctqa"]["mean"]
        assert np.isclose(float(r["mean"]), df[df["dist"] == r["dist"]]["dctqa"].mean(), rtol=1e-12)
    assert open(local_run / "errors.csv").read().strip() == "ref,dist,crf,stage,error"


def test_bad_pairs_recorded_others_scored(data, tmp_path, yolox_backbone):
    folder = data.parent
    (tmp_path / "corrupt.mp4").write_bytes((folder / "d0.mp4").read_bytes()[:3000])
    from dctqa.io import read_frames

    make_video(tmp_path / "small.mp4", read_frames(folder / "d0.mp4", max_frames=5)[:, :50, :50].copy())
    m = tmp_path / "m.csv"
    m.write_text(f"ref,dist\n{folder}/ref.mp4,{folder}/d0.mp4\n{folder}/ref.mp4,nothere.mp4\n"
                 f"{folder}/ref.mp4,corrupt.mp4\n{folder}/ref.mp4,small.mp4\n")
    out = tmp_path / "out"
    assert main(["score-many", str(m), "--out", str(out), "--engine", "local", "--backbone", yolox_backbone,
                 "--segment-frames", "16", "--quiet"]) == 1
    import csv

    errors = {r["dist"]: r["error"] for r in csv.DictReader(open(out / "errors.csv"))}
    assert set(errors) == {"nothere.mp4", "corrupt.mp4", "small.mp4"}
    assert "not a file" in errors["nothere.mp4"] and "50x50" in errors["small.mp4"]
    assert set(pq.read_table(out / "frames.parquet").column("dist").to_pylist()) == {f"{folder}/d0.mp4"}


def test_resume_skips_and_never_duplicates(data, local_run, tmp_path, yolox_backbone):
    out = tmp_path / "out"
    args = dict(engine="local", backbone=yolox_backbone, segment_frames=SEGMENT, per_filter=True)
    first = score_many(data, out, **args)
    again = score_many(data, out, **args)
    assert (len(first.scored), len(again.scored), len(again.resumed)) == (2, 0, 2)
    assert pq.read_table(out / "frames.parquet").equals(pq.read_table(local_run / "frames.parquet"))
    dist = data.parent / "d1.mp4"  # a changed input is scored again, the other kept
    os.utime(dist, ns=(time.time_ns(), time.time_ns()))
    third = score_many(data, out, **args)
    assert (len(third.scored), len(third.resumed)) == (1, 1)
    other = score_many(data, out, **{**args, "frame_stride": 2})  # other options: all again
    assert len(other.scored) == 2 and pq.read_table(out / "frames.parquet").num_rows == FRAMES
    forced = score_many(data, out, **{**args, "frame_stride": 2}, force=True)
    assert len(forced.scored) == 2 and pq.read_table(out / "frames.parquet").num_rows == FRAMES


def test_bad_invocations_exit_2(data, tmp_path, capsys):
    assert main(["score-many", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--engine", "local"]) == 2
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["score-many", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o"), "--engine", "local"]) == 2
    (tmp_path / "dup.csv").write_text("ref,dist\na.mp4,b.mp4\na.mp4,b.mp4\n")
    assert main(["score-many", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "o"), "--engine", "local"]) == 2
    assert main(["score-many", str(data), "--out", str(tmp_path / "o"), "--engine", "local",
                 "--actors", "2"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "listed twice" in err and "--engine ray" in err
    with pytest.raises(SystemExit) as exc:
        main(["score-many", str(data), "--out", str(tmp_path / "o"), "--segment-frames", "0"])
    assert exc.value.code == 2


def test_sigint_keeps_finished_pairs_and_resume_completes(tmp_path, car_path, yolox_backbone):
    manifest = make_pairs(tmp_path, car_path, pairs=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dctqa", "score-many", str(manifest), "--out", str(out), "--engine", "local",
           "--backbone", yolox_backbone, "--segment-frames", str(SEGMENT), "--per-filter", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # SIGINT once the first pair is written
    while not list(out.glob("logs/*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    kept = pq.read_table(out / "frames.parquet").to_pandas()
    done = len(set(kept["dist"]))
    assert 1 <= done < 4 and len(kept) == done * FRAMES
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} kept from an earlier run" in rerun.stdout
    final = pq.read_table(out / "frames.parquet").to_pandas()
    assert len(final) == 4 * FRAMES and not final.duplicated(["dist", "frame"]).any()
    fresh = tmp_path / "fresh"  # one uninterrupted in-process run over the same files
    assert score_many(manifest, fresh, engine="local", backbone=yolox_backbone, segment_frames=SEGMENT,
                      per_filter=True).exit_status == 0
    assert pq.read_table(out / "frames.parquet").equals(pq.read_table(fresh / "frames.parquet"))


def test_ray_missing_is_a_clear_error(monkeypatch):
    import builtins

    from dctqa.errors import ConfigError
    from dctqa.scale.engine_ray import import_ray

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install dctqa\[ray\]"):
        import_ray()


def test_core_imports_without_scale_or_ray():
    code = ("import sys; import dctqa, dctqa.metric, dctqa.io, dctqa.cli; dctqa.cli.build_parser(); "
            "assert 'ray' not in sys.modules, 'ray imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_no_reference_glob_equals_dctqa_predict(data, tmp_path):
    from tests.test_study_nr import make_checkpoint

    model = make_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    assert main(["score-many", "--no-reference", f"{data.parent}/d*.mp4", "--model", str(model), "--out", str(out),
                 "--engine", "local", "--max-frames", "12", "--frame-stride", "2", "--quiet"]) == 0
    table = pq.read_table(out / "frames.parquet").to_pandas()
    assert set(table["ref"]) == {""} and "dctqa_nr" in table.columns
    for dist in ("d0.mp4", "d1.mp4"):
        log = tmp_path / f"{dist}.json"
        assert main(["predict", str(data.parent / dist), "--model", str(model), "--json", str(log),
                     "--max-frames", "12", "--frame-stride", "2", "--quiet"]) == 0
        want = json.loads(log.read_text())["frames"]
        rows = table[table["dist"] == str(data.parent / dist)]
        assert list(rows["frame"]) == [f["frameNum"] for f in want]
        np.testing.assert_allclose(rows["dctqa_nr"].to_numpy(), [f["metrics"]["dctqa_nr"] for f in want],
                                   rtol=1e-9, atol=0)
    again = score_many(None, out, engine="local", no_reference=f"{data.parent}/d*.mp4", model=str(model),
                       max_frames=12, frame_stride=2)
    assert (len(again.scored), len(again.resumed)) == (0, 2)


def test_no_reference_bad_calls(data, tmp_path, capsys, monkeypatch):
    from dctqa.nr import default

    out = str(tmp_path / "o")
    assert main(["score-many", "--no-reference", f"{tmp_path}/none*.mp4", "--model", str(data), "--out", out,
                 "--engine", "local"]) == 2
    # no --model and no default model installed (a build without package data): said, rc 2
    monkeypatch.setattr(default, "MODELS_DIR", tmp_path / "no-models")
    assert main(["score-many", "--no-reference", f"{data.parent}/d*.mp4", "--out", out, "--engine", "local"]) == 2
    assert main(["score-many", str(data), "--no-reference", "x*", "--model", "m", "--out", out]) == 2
    assert main(["score-many", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "no default no-reference model is installed" in err and "--model" in err
    assert "not both or neither" in err
    assert not (tmp_path / "o").exists()


def test_progress_lines_off_a_terminal(data, tmp_path, yolox_backbone, capsys):
    assert main(["score-many", str(data), "--out", str(tmp_path / "o"), "--engine", "local", "--backbone",
                 yolox_backbone, "--max-frames", "8", "--progress", "log"]) == 0
    captured = capsys.readouterr()
    lines = [l for l in captured.err.splitlines() if l.startswith("score-many:")]
    assert lines and "2/2 pairs, 16 frames" in lines[-1] and "frames/s" in lines[-1] and "ETA" in lines[-1]
    assert "2 pair(s) scored" in captured.out


def test_actor_resources_cpu_and_gpu():
    from dctqa.errors import InputError
    from dctqa.scale.engine_ray import actor_resources
    from dctqa.scale.worker import ScoreOptions

    assert actor_resources(ScoreOptions(), None) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert actor_resources(ScoreOptions(threads=4), None) == {"num_cpus": 4.0, "num_gpus": 0.0}
    assert actor_resources(ScoreOptions(device="cuda"), None)["num_gpus"] == 1.0
    assert actor_resources(ScoreOptions(device="cuda:1", threads=2), 0.25) == {"num_cpus": 2.0, "num_gpus": 0.25}
    with pytest.raises(InputError, match="needs --device cuda"):
        actor_resources(ScoreOptions(), 0.5)


def test_segment_cuts_move_back_to_common_keyframes():
    # nominal cuts 128, 256, 384; keyframes 0, 100, 200, 300: each cut moves back to the last
    # keyframe that keeps its segment at least half long; 130 is too close to 100's segment start
    assert plan_segments(400, 128, keyframes=(0, 100, 200, 300)) == [(0, 100), (100, 200), (200, 300), (300, 400)]
    assert plan_segments(400, 128, keyframes=(0, 30)) == [(0, 128), (128, 256), (256, 384), (384, 400)]
    assert plan_segments(400, 128, keyframes=(0, 100, 130)) == [(0, 100), (100, 228), (228, 356), (356, 400)]
    # stride: the span is segment_frames * stride source frames
    assert plan_segments(100, 10, stride=3, keyframes=(0, 25, 50, 75)) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    for n, seg, keys in ((400, 128, (0, 100, 130)), (97, 7, tuple(range(0, 97, 5))), (5, 1, (0, 1, 2))):
        cuts = plan_segments(n, seg, keyframes=keys)
        assert cuts[0][0] == 0 and cuts[-1][1] == n and all(a < b for a, b in cuts)
        assert all(b == c for (_, b), (c, _) in zip(cuts, cuts[1:]))


def test_common_keyframes_of_a_pair(data):
    from dctqa.scale.segments import VideoIndex

    a = VideoIndex("a", 10, 4, 4, tuple(range(10)), (0, 4, 8))
    b = VideoIndex("b", 10, 4, 4, tuple(range(10)), (0, 2, 4, 6))
    assert common_keyframes(a, b) == (0, 4)
    assert common_keyframes(a, VideoIndex("c", 10, 4, 4, None, (0,))) == ()
    idx = index_video(data.parent / "d0.mp4")
    assert common_keyframes(idx, idx) == idx.keyframes


def test_segment_plan_and_bounds(data):
    from dctqa.errors import InputError

    assert plan_segments(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_segments(10, 2, stride=3) == [(0, 6), (6, 10)]
    idx = index_video(data.parent / "d0.mp4")
    with pytest.raises(InputError, match="outside"):
        list(iter_segment(data.parent / "d0.mp4", idx, 30, FRAMES + 1))


#: Run in a fresh process: ``SegmentScorer.score`` over the first SHORT, then the first LONG
#: (4x) frames of one pair, for the real scorer and for a control that keeps every frame pair it
#: scores. For a warm-up SHORT call, a second SHORT call and the LONG call, it prints each
#: call's peak resident memory in MiB (Linux's VmHWM, reset before each call where the kernel
#: allows it; unlike ``ru_maxrss`` it is not inherited from the parent process).
_PEAK_MEMORY = r"""
import json, sys
from dctqa.scale.segments import index_video
from dctqa.scale.worker import ScoreOptions, SegmentScorer

ref, dist, short, long_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


class Hoarding(SegmentScorer):  # the control: a scorer whose memory grows with the video
    kept = []

    def _batch(self, batch):
        self.kept.extend(batch)
        return super()._batch(batch)


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not allowed here: the resident peak stays the process's own, since exec
        pass


def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


ri, di = index_video(ref), index_video(dist)
peaks = {}
for name, cls in (("scorer", SegmentScorer), ("hoarding", Hoarding)):
    s = cls(ScoreOptions(backbone="pixel", domain="pixel", segment_frames=long_, threads=1))
    row = []
    for stop in (short, short, long_):  # the first call warms up (decoder, caches)
        reset_peak()
        res = s.score("k", ref, dist, ri, di, 0, stop)
        assert res.error is None and len(res.numbers) == stop, res.error
        row.append(peak_mib())
    peaks[name] = row
print(json.dumps(peaks))
"""


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="reads the peak RSS (VmHWM) from Linux's /proc")
def test_scorer_memory_is_flat_in_video_length(tmp_path):
    """An actor's memory does not grow with the video. A SegmentScorer scores the first 40, then
    the first 160 frames of a 320x240 pair in one segment; the 120 more frame pairs of the
    second call hold 53 MiB. Its peak RSS may grow by at most 8 MiB (1 to 2 MiB measured). A
    control that keeps its frame pairs must grow by more than half of the 53 MiB (72 measured),
    so the test can fail. glibc is told to return freed frames to the system at once (a fixed
    mmap threshold, two arenas), so the RSS follows what is held, not the allocator's caching
    (which otherwise adds 0 to 60 MiB of noise, varying from run to run)."""
    short, long_, h, w = 40, 160, 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    texture = np.random.default_rng(0).integers(0, 32, (h, w, 3))
    frames = np.stack([np.stack([(xx + 3 * i) % 224, (yy + 2 * i) % 224, (xx + yy + i) % 224], -1) + texture
                       for i in range(long_)]).astype(np.uint8)
    make_video(tmp_path / "ref.mp4", frames, crf=10, g=16)
    make_video(tmp_path / "dist.mp4", frames, crf=38, g=16)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_ARENA_MAX="2")
    proc = subprocess.run([sys.executable, "-c", _PEAK_MEMORY, str(tmp_path / "ref.mp4"), str(tmp_path / "dist.mp4"),
                           str(short), str(long_)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    extra_mib = (long_ - short) * 2 * h * w * 3 / 2**20  # the frame pairs the 4x call has beyond the 1x one
    grow = {name: row[2] - row[1] for name, row in peaks.items()}
    assert grow["scorer"] < 8, f"peak RSS grew {grow['scorer']:.1f} MiB from {short} to {long_} frames: {peaks}"
    assert grow["hoarding"] > extra_mib / 2, f"the control should grow by ~{extra_mib:.0f} MiB or more: {peaks}"
