"""``dctqa ladder --engine ray``: the study stages' jobs as Ray tasks on a local instance give the
same ladder as a local run (skipped where Ray is not installed, like tests/test_scale_ray.py)."""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray (pip install dctqa[ray])")

from dctqa.ladder import LadderConfig, run_ladder  # noqa: E402
from dctqa.scale.engine_ray import RayExecutor, ray_session  # noqa: E402
from dctqa.study.run import STAGE_EXECUTOR  # noqa: E402
from tests.test_study import blob_clip, write_lossless  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    with ray_session(num_cpus=2) as r:
        yield r
    assert not r.is_initialized()


def _fields(doc):
    return [(c["name"], c["crf"], c["kbps"], c["q"], c["meets_bound"]) for c in doc["candidates"]]


def test_ladder_on_ray_equals_local(local_ray, tmp_path):
    clip = tmp_path / "blobs.mkv"
    write_lossless(clip, blob_clip(n=16, h=64, w=96))
    base = dict(video=clip, max_q=1e6, backbone="pixel", crfs=(20, 51), preset="ultrafast", threads=1)
    local = run_ladder(LadderConfig(out=tmp_path / "local", **base))
    bound = sorted(c["q"] for c in local.doc["candidates"])[0] * 1.0001  # only the best CRF meets it ...
    submitted = []

    class Counting(RayExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    runs = {}
    for name, executor in (("local", None), ("ray", Counting)):
        token = STAGE_EXECUTOR.set(executor)
        try:
            runs[name] = run_ladder(LadderConfig(out=tmp_path / f"b-{name}", jobs=2, **{**base, "max_q": bound}))
        finally:
            STAGE_EXECUTOR.reset(token)
    assert "encode_job" in submitted and submitted.count("score_pair") == len(runs["ray"].doc["candidates"])
    assert runs["ray"].doc["search"]["rounds"]  # ... so a bisection ran, its encodes on Ray too
    assert submitted.count("encode_job") == 1 + len(runs["ray"].doc["search"]["measured_crfs"]) - 2
    assert _fields(runs["ray"].doc) == _fields(runs["local"].doc)
    assert runs["ray"].recommended == {**runs["local"].recommended, "path": runs["ray"].recommended["path"]}


def test_cli_engine_ray_sets_the_executor(local_ray, monkeypatch, tmp_path):
    from dctqa.cli import main
    from dctqa.ladder import run as run_mod

    seen = {}

    def fake(cfg):
        seen.update(executor=STAGE_EXECUTOR.get(), jobs=cfg.jobs)
        raise KeyboardInterrupt  # stop here: the rest is tested above

    monkeypatch.setattr(run_mod, "run_ladder", fake)
    clip = tmp_path / "c.mkv"
    write_lossless(clip, blob_clip(n=4, h=32, w=32))
    argv = ["ladder", str(clip), "--out", str(tmp_path / "l"), "--max-q", "2", "--backbone", "pixel", "--quiet"]
    assert main(argv + ["--engine", "ray"]) == 130
    assert seen == {"executor": RayExecutor, "jobs": 2} and STAGE_EXECUTOR.get() is None
