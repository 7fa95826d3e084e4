"""``dctqa ladder`` end to end (issue 23's target: a 40-frame 768x432 clip with the pixel
backbone in under 2 minutes on a 2-core CPU), CPU.

The clip: the first 40 frames of car-detection.mp4 (768x432), written losslessly (FFV1), or,
without the shared folder, a 40-frame 768x432 pan over scikit-image's *coffee* photograph.
One whole ``run_ladder`` call, cold (a fresh output folder: nothing cached): ``--max-q`` set
between the default grid's CRF 29 and 35 Q values (measured first, in a warm-up run on another
folder, so that the timed run does the grid and a bisection), the pixel backbone in the
spectral domain, x264 preset medium, every frame scored. A second call on the same folder
measures the cached rerun. Figures go to ``extra_info`` and the summary's notes; no time is
asserted.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.conftest import NOTES, shared_dir

FRAMES, H, W = 40, 432, 768


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, str]:
    from dctqa.study.codec import write_lossless

    d = tmp_path_factory.mktemp("bench_ladder")
    car = shared_dir() / "videos" / "car-detection.mp4"
    path = d / "clip.mkv"
    if car.is_file():
        from dctqa.io import read_frames

        write_lossless(read_frames(car, max_frames=FRAMES), path, 12.5)
        return path, "car-detection.mp4, first 40 frames"
    from dctqa.study.clips import write_pan_clip

    write_pan_clip(path, "coffee", FRAMES, (H, W))
    return path, "scikit-image coffee pan"


def test_ladder_40_frames_pixel(benchmark, clip, tmp_path):
    from dctqa.ladder import LadderConfig, run_ladder

    path, source = clip
    base = dict(video=path, backbone="pixel", preset="medium")
    probe = run_ladder(LadderConfig(out=tmp_path / "probe", max_q=1e6, **base)).doc
    q = {c["crf"]: c["q"] for c in probe["candidates"]}
    bound = (q[29] + q[35]) / 2
    out = tmp_path / "timed"
    box = {}

    def cold():
        t0 = time.perf_counter()
        box["res"] = run_ladder(LadderConfig(out=out, max_q=bound, **base))
        box["cold_s"] = time.perf_counter() - t0

    benchmark.pedantic(cold, rounds=1, iterations=1)
    t0 = time.perf_counter()
    again = run_ladder(LadderConfig(out=out, max_q=bound, **base))
    warm_s = time.perf_counter() - t0
    doc = box["res"].doc
    t = doc["timings"]
    info = {"source": source, "frames": FRAMES, "size": f"{W}x{H}", "cold_s": round(box["cold_s"], 1),
            "cached_rerun_s": round(warm_s, 1), "candidates": len(doc["candidates"]),
            "bisection_rounds": len(doc["search"]["rounds"]), "recommended": (doc["recommended"] or {}).get("name"),
            **{f"{k}_s": round(t[k]["this_run_s"], 1) for k in ("encode", "decode", "metric") if k in t}}
    assert again.doc["cache"]["misses"] == {} and again.recommended == box["res"].recommended
    benchmark.extra_info.update(info)
    NOTES.append("ladder (" + ", ".join(f"{k} {v}" for k, v in info.items()) + ")")
