"""``score-many`` on Ray against the in-process loop (issue 21's benchmark), CPU.

One manifest of 4 pairs of the shared videos: the first :data:`FRAMES` (360) frames of
car-detection.mp4 and bottle-detection.mp4, each re-encoded at CRF 30 and 40 with libx264
(keyframes every 50 frames). YOLOX-Nano (K = 16), spectral domain, the fused
C++ op. Measured in the same run, on the same manifest:

* ``loop``: the in-process ``Metric.score_video`` loop over the 4 pairs, 1 torch thread and
  single-thread decoders (``DCTQA_DECODE_THREADS=1``), so that every contender uses one core;
* ``local``: ``score_many(engine="local")`` (segments, outputs; 1 thread);
* ``ray-1`` / ``ray-2``: ``score_many(engine="ray")`` with 1 and 2 single-thread actors (torch and
  both decoders one thread each: ``threads=1``) on a
  local instance started before the timing (the figures include creating the actors);
* ``ray-data-2``: the same segments through Ray Data ``map_batches`` with a pool of 2
  actors (the alternative to Ray Core actors, docs/scaling.md);
* ``two-processes``: two independent processes, each the ``loop`` over half of the pairs, no
  engine: what 2 workers can give on this machine at all (its ceiling for ``ray-2``);
* ``startup``: seconds to start and shut down the local Ray instance (not in the above).

Figures go to ``extra_info`` (frames/s and the ratios: engine overhead = 1 - ray-1 / loop,
scaling = ray-2 / ray-1, efficiency = scaling / 2; and, measured apart afterwards, the
seconds until 1 and 2 fresh actors answer, with the ratios recomputed without them) and to
the summary. No time is asserted.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.conftest import NOTES, shared_dir

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray (pip install dctqa[ray])")

DECODE_THREADS = "DCTQA_DECODE_THREADS"  # the loop's decoders: one thread each, as an actor's
FRAMES = 360  # per video: 1 440 frame pairs in all (car-detection.mp4 holds 377)
SEGMENT = 64


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> tuple[Path, str, int]:
    """The 4-pair manifest, the backbone, and the frames it holds."""
    from dctqa.io import read_frames
    from tests.helpers import make_video

    model = shared_dir() / "models" / "yolox_nano.onnx"
    videos = [shared_dir() / "videos" / n for n in ("car-detection.mp4", "bottle-detection.mp4")]
    missing = [p for p in [model, *videos] if not p.is_file()]
    if missing:
        pytest.skip(f"needs {', '.join(str(p) for p in missing)} (set DCTQA_SHARED)")
    d = tmp_path_factory.mktemp("bench_scale")
    rows = ["ref,dist"]
    for v in videos:
        frames = read_frames(v, max_frames=FRAMES)
        make_video(d / f"{v.stem}.mp4", frames, crf=10, preset="veryfast", g=50)
        for crf in (30, 40):
            make_video(d / f"{v.stem}-crf{crf}.mp4", frames, crf=crf, preset="veryfast", g=50)
            rows.append(f"{v.stem}.mp4,{v.stem}-crf{crf}.mp4")
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    return d / "manifest.csv", f"onnx:{model}", 4 * FRAMES


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _loop(manifest: Path, backbone: str) -> None:
    import torch

    from dctqa import settings

    from dctqa import Metric
    from dctqa.scale import read_manifest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert settings.decode_threads() == 1  # set by the test (monkeypatch)
        metric = Metric(backbone=backbone)
        for p in read_manifest(manifest):
            metric.score_video(p.ref_path, p.dist_path)
    finally:
        torch.set_num_threads(threads)


def _two_processes(manifest: Path, backbone: str) -> None:
    """The machine's own ceiling for 2 workers: two independent Python processes, each running
    :func:`_loop` (1 torch thread, 1-thread decoders) over half of the pairs, no engine at all;
    timed from their start (imports included, as an actor's) to the end of the slower."""
    import subprocess
    import sys

    rows = manifest.read_text().splitlines()
    halves = []
    for i in (0, 1):  # pairs 0, 2 and 1, 3: one pair of each video per process
        half = manifest.with_name(f"half{i}.csv")
        half.write_text("\n".join([rows[0], *rows[1:][i::2]]) + "\n")
        halves.append(half)
    env = {**os.environ, DECODE_THREADS: "1", "OMP_NUM_THREADS": "1"}
    code = "import sys; from pathlib import Path; from benchmarks.test_bench_scale import _loop; " \
           "_loop(Path(sys.argv[1]), sys.argv[2])"
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(h), backbone], cwd=root, env=env) for h in halves]
    assert [p.wait() for p in procs] == [0, 0]


def _actor_start(backbone: str, actors: int) -> float:
    """Seconds until ``actors`` scorer actors answer (process start, imports, Metric made):
    the part of ``ray-N`` that does not depend on the manifest's length."""
    from dctqa.scale.engine_ray import make_actors
    from dctqa.scale.worker import ScoreOptions

    t0 = time.perf_counter()
    pool = make_actors(ray, ScoreOptions(backbone=backbone, segment_frames=SEGMENT, threads=1), actors, None)
    ray.get([a.describe.remote() for a in pool])
    sec = time.perf_counter() - t0
    for a in pool:
        ray.kill(a)
    return sec


def _ray_data(manifest: Path, backbone: str, actors: int) -> None:
    """The segments through Ray Data ``map_batches`` with an actor pool."""
    from dctqa.scale import read_manifest
    from dctqa.scale.worker import ScoreOptions, SegmentScorer

    options = ScoreOptions(backbone=backbone, segment_frames=SEGMENT, threads=1)
    planner = SegmentScorer(options)
    items = []
    for p in read_manifest(manifest):
        plan = planner.plan(p.key, p.ref_path, p.dist_path)
        items += [{"key": p.key, "ref": p.ref_path, "dist": p.dist_path, "start": a, "stop": b,
                   "ri": plan.ref_index, "di": plan.dist_index} for a, b in plan.segments]

    class Score:
        def __init__(self) -> None:
            self.scorer = SegmentScorer(options)

        def __call__(self, batch: dict) -> dict:
            out = [self.scorer.score(k, r, d, ri, di, a, b).qk.mean(axis=1).tolist()
                   for k, r, d, ri, di, a, b in zip(batch["key"], batch["ref"], batch["dist"], batch["ri"],
                                                    batch["di"], batch["start"], batch["stop"])]
            return {"key": list(batch["key"]), "start": list(batch["start"]), "n": [len(q) for q in out]}

    ds = ray.data.from_items(items).map_batches(Score, batch_size=1, batch_format="numpy", concurrency=actors,
                                                num_cpus=1)
    rows = ds.take_all()
    assert sum(r["n"] for r in rows) == 4 * FRAMES


def test_scale_engines(benchmark, manifest, tmp_path, monkeypatch) -> None:
    from dctqa.scale import score_many
    from dctqa.scale.engine_ray import ray_session

    path, backbone, frames = manifest
    args = dict(backbone=backbone, segment_frames=SEGMENT, threads=1)
    with monkeypatch.context() as m:
        m.setenv(DECODE_THREADS, "1")
        loop = _timed(lambda: _loop(path, backbone))
    sec = {"loop": loop, "two-processes": _timed(lambda: _two_processes(path, backbone)),
           "local": _timed(lambda: score_many(path, tmp_path / "local", engine="local", **args))}
    t0 = time.perf_counter()
    with ray_session(num_cpus=2):
        sec["startup"] = time.perf_counter() - t0
        sec["ray-1"] = _timed(lambda: score_many(path, tmp_path / "ray1", engine="ray", actors=1, **args))

        def two() -> None:  # the figure pytest-benchmark records
            sec["ray-2"] = _timed(lambda: score_many(path, tmp_path / "ray2", engine="ray", actors=2, **args))

        benchmark.pedantic(two, rounds=1, iterations=1)
        sec["ray-data-2"] = _timed(lambda: _ray_data(path, backbone, 2))
        start = {n: _actor_start(backbone, n) for n in (1, 2)}
    t1 = time.perf_counter()
    sec["startup"] += time.perf_counter() - t1
    fps = {k: frames / v for k, v in sec.items() if k != "startup"}
    info = {"frames": frames, "load_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
            **{f"{k}_frames_per_s": round(v, 2) for k, v in fps.items()},
            "ray_startup_shutdown_s": round(sec["startup"], 2),
            "overhead_ray1_vs_loop": round(1 - fps["ray-1"] / fps["loop"], 3),
            "ceiling_two_processes_vs_loop": round(fps["two-processes"] / fps["loop"], 3),
            "ray2_vs_two_processes": round(fps["ray-2"] / fps["two-processes"], 3),
            "scaling_ray2_vs_ray1": round(fps["ray-2"] / fps["ray-1"], 3),
            "efficiency_2_actors": round(fps["ray-2"] / fps["ray-1"] / 2, 3),
            "ray_data2_vs_ray2": round(fps["ray-data-2"] / fps["ray-2"], 3),
            **{f"actor_start_{n}_s": round(v, 2) for n, v in start.items()},
            # the same ratios without the actors' start: what a longer manifest tends to
            "scaling_without_start": round((sec["ray-1"] - start[1]) / (sec["ray-2"] - start[2]), 3),
            "overhead_ray1_without_start": round(1 - sec["loop"] / (sec["ray-1"] - start[1]), 3)}
    benchmark.extra_info.update(info)
    NOTES.append("score-many (4 pairs, " + ", ".join(f"{k} {v}" for k, v in info.items()) + ")")
