"""The Ray engine: a local instance (security, hygiene, identity) and a simulated 2-node
cluster (``ray.cluster_utils.Cluster``) with an actor killed and a node removed mid-run.

Every test shuts down what it started; the cluster and the local instance are shared per module
section to keep the Ray tests near two minutes on a 2-core machine."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.scale_data import FRAMES, SEGMENT, make_pairs

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray (pip install dctqa[ray])")
pq = pytest.importorskip("pyarrow.parquet")

from dctqa.scale import score_many  # noqa: E402
from dctqa.scale.engine_ray import ray_session  # noqa: E402

RAY_DAEMONS = ("raylet", "gcs_server", "dashboard", "ray::", "log_monitor", "monitor.py", "runtime_env")


def _ray_children() -> list[str]:
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            line = " ".join(p.cmdline()) or p.name()
        except psutil.Error:
            continue
        if any(d in line for d in RAY_DAEMONS):
            found.append(f"{p.pid} {line[:80]}")
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory, car_path) -> Path:
    return make_pairs(tmp_path_factory.mktemp("scale_ray"), car_path, pairs=3)


@pytest.fixture(scope="module")
def reference(data, yolox_backbone, tmp_path_factory):
    """frames.parquet of the in-process engine over the same manifest."""
    out = tmp_path_factory.mktemp("ref") / "out"
    assert score_many(data, out, engine="local", backbone=yolox_backbone, segment_frames=SEGMENT).exit_status == 0
    return pq.read_table(out / "frames.parquet")


def test_auth_disabled_is_refused(monkeypatch, data, tmp_path):
    from dctqa.errors import ConfigError

    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="token authentication"):
        with ray_session(num_cpus=1):
            pass
    assert not ray.is_initialized()


def test_embedded_instance_is_shut_down_with_no_stray_process(data, reference, yolox_backbone, tmp_path,
                                                              monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized() and not _ray_children()
    res = score_many(data, tmp_path / "out", engine="ray", num_cpus=2, threads=1, backbone=yolox_backbone,
                     segment_frames=SEGMENT)
    assert res.exit_status == 0 and len(res.scored) == 3
    assert pq.read_table(tmp_path / "out" / "frames.parquet").equals(reference)
    assert not ray.is_initialized()
    deadline = time.monotonic() + 10  # processes exit a moment after shutdown returns
    while _ray_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_children()


def test_cli_sigint_on_ray_keeps_pairs_and_leaves_no_process(tmp_path, car_path, yolox_backbone, monkeypatch):
    import psutil
    import signal
    import subprocess
    import sys

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    manifest = make_pairs(tmp_path, car_path, pairs=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dctqa", "score-many", str(manifest), "--out", str(out), "--backbone",
           yolox_backbone, "--segment-frames", str(SEGMENT), "--threads", "1", "--quiet"]
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # SIGINT once the first pair is written
    while not list(out.glob("logs/*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert 1 <= pq.read_table(out / "frames.parquet").num_rows // FRAMES < 4

    def daemons():
        found = []
        for p in psutil.process_iter(["name", "create_time"]):
            if p.info["name"] in ("raylet", "gcs_server") and p.info["create_time"] >= started - 1:
                found.append(p.pid)
        return found

    deadline = time.monotonic() + 10
    while daemons() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not daemons()


@pytest.fixture(scope="module")
def local_ray():
    with ray_session(num_cpus=2) as r:
        yield r
    assert not r.is_initialized()


def test_local_instance_is_private(local_ray):
    from ray._raylet import AuthenticationMode, get_authentication_mode

    node = local_ray._private.worker.global_worker.node
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert node.node_ip_address == "127.0.0.1"
    assert node.address_info["gcs_address"].startswith("127.0.0.1:")
    assert not node.address_info.get("webui_url")  # no dashboard
    assert not any("dashboard" in line for line in _ray_children())
    import psutil

    listening = set()
    for p in psutil.Process().children(recursive=True):
        try:
            listening |= {c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in listening), listening


def test_ray_equals_local_with_a_bad_pair(local_ray, data, reference, yolox_backbone, tmp_path):
    m = tmp_path / "m.csv"
    lines = data.read_text().splitlines()
    rows = [",".join(str(data.parent / c) if c.endswith(".mp4") else c for c in line.split(","))
            for line in lines[1:]]
    m.write_text("\n".join([lines[0], *rows, f"{data.parent}/ref.mp4,missing.mp4,0"]) + "\n")
    res = score_many(m, tmp_path / "out", engine="ray", actors=2, threads=1, backbone=yolox_backbone,
                     segment_frames=SEGMENT)
    assert res.exit_status == 1 and len(res.failed) == 1 and len(res.scored) == 3
    got = pq.read_table(tmp_path / "out" / "frames.parquet").to_pandas()
    want = reference.to_pandas()
    assert (got["dctqa"].to_numpy() == want["dctqa"].to_numpy()).all()
    assert "missing.mp4" in (tmp_path / "out" / "errors.csv").read_text()


def test_no_reference_on_ray_equals_local(local_ray, data, tmp_path):
    from tests.test_study_nr import make_checkpoint

    model = str(make_checkpoint(tmp_path / "m.pt"))
    args = dict(no_reference=f"{data.parent}/d*.mp4", model=model, max_frames=8, threads=1)
    assert score_many(None, tmp_path / "local", engine="local", **args).exit_status == 0
    res = score_many(None, tmp_path / "ray", engine="ray", actors=2, **args)
    assert res.exit_status == 0 and len(res.scored) == 3
    assert pq.read_table(tmp_path / "ray" / "frames.parquet").equals(pq.read_table(tmp_path / "local" / "frames.parquet"))


def _study_outputs(out: Path) -> dict[str, str]:
    """Every CSV of a study folder, and report.md without its timing section (wall times differ
    between any two runs, local ones too)."""
    files = {p.name: p.read_text() for p in sorted(out.glob("*.csv"))}
    report = (out / "report.md").read_text()
    files["report.md"] = report.split("## Where the time goes")[0]
    return files


def _detections(out: Path) -> dict[str, dict]:
    """The detection cache of a study folder: file name -> its arrays (not the stored timing)."""
    import numpy as np

    found = {}
    for f in sorted((out / "cache" / "detect").glob("*.npz")):
        with np.load(f) as z:
            found[f.name] = {k: z[k] for k in z.files if k != "__meta__"}
    return found


def test_study_on_ray_equals_local(local_ray, tmp_path, vtest_path, yolox_path):
    """encode (one task per video), score and detect (one per variant, and the reference) run as
    Ray tasks; YOLOX-Nano's detections there, the CSVs and the report equal a local run's."""
    import numpy as np

    from dctqa.io import read_frames
    from dctqa.study import StudyConfig, run_study
    from dctqa.study.codec import EncodeSettings
    from dctqa.study.run import STAGE_EXECUTOR
    from dctqa.scale.engine_ray import RayExecutor
    from tests.test_study import write_lossless

    clip = tmp_path / "walkers.mkv"
    write_lossless(clip, read_frames(vtest_path, max_frames=40)[:, ::2, ::2].copy())
    base = dict(videos=[clip], encode=EncodeSettings(crfs=(20, 51), cap_bpp=(), preset="ultrafast", threads=1),
                backbones=[], pixel=True, detector=f"onnx:{yolox_path}", metric_stride=2, window=10, n_boot=50,
                jobs=2)
    submitted = []

    class Counting(RayExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    run_study(StudyConfig(out=tmp_path / "local", **base))
    token = STAGE_EXECUTOR.set(Counting)
    try:
        run_study(StudyConfig(out=tmp_path / "ray", **base))
    finally:
        STAGE_EXECUTOR.reset(token)
    # as Ray tasks: the video's encode, both variants' scores, the detections of the reference and both variants
    assert submitted == ["encode_job", "score_pair", "score_pair", "detection_job", "detection_job", "detection_job"]
    local, on_ray = _study_outputs(tmp_path / "local"), _study_outputs(tmp_path / "ray")
    assert "windows.csv" in local and local == on_ray
    det_local, det_ray = _detections(tmp_path / "local"), _detections(tmp_path / "ray")
    assert len(det_local) == 3 and det_local.keys() == det_ray.keys()
    assert sum(len(d["scores"]) for d in det_local.values()) > 0  # the walkers are found
    for name, arrays in det_local.items():
        assert arrays.keys() == det_ray[name].keys()
        assert all(np.array_equal(arrays[k], det_ray[name][k]) for k in arrays), name
    submitted.clear()  # a rerun on Ray finds everything cached: no task at all
    token = STAGE_EXECUTOR.set(Counting)
    try:
        run_study(StudyConfig(out=tmp_path / "ray", **base))
    finally:
        STAGE_EXECUTOR.reset(token)
    assert submitted == [] and _study_outputs(tmp_path / "ray") == on_ray


def test_study_cli_engine_ray_sets_the_executor(local_ray, monkeypatch, tmp_path, vtest_path, yolox_path):
    from dctqa.cli import main
    from dctqa.study import pipeline
    from dctqa.study.run import STAGE_EXECUTOR
    from dctqa.scale.engine_ray import RayExecutor

    seen = {}

    def fake_run_study(cfg):
        seen.update(executor=STAGE_EXECUTOR.get(), jobs=cfg.jobs)
        raise KeyboardInterrupt  # stop here: the rest is the study's own (tested there)

    monkeypatch.setattr(pipeline, "run_study", fake_run_study)
    argv = ["study", str(vtest_path), "--out", str(tmp_path / "s"), "--quick", "--detector", f"onnx:{yolox_path}",
            "--backbone", f"onnx:{yolox_path}", "--quiet"]
    assert main(argv + ["--engine", "ray"]) == 130
    assert seen == {"executor": RayExecutor, "jobs": 2} and STAGE_EXECUTOR.get() is None
    assert main(argv + ["--address", "127.0.0.1:1"]) == 2  # --address without --engine ray


# --- a simulated cluster: a head without CPUs, two worker nodes of 2 logical CPUs each ---------

@pytest.fixture(scope="module")
def cluster(local_ray):
    from ray.cluster_utils import Cluster

    local_ray.shutdown()  # the local instance's tests are done; the cluster replaces it
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=2) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def _run_with(fault, data, out, backbone):
    """score_many on the cluster in a thread; ``fault()`` runs once the first pair is written."""
    box = {}

    def work():
        box["res"] = score_many(data, out, engine="ray", actors=2, threads=1, backbone=backbone,
                                segment_frames=SEGMENT)

    t = threading.Thread(target=work)
    t.start()
    deadline = time.monotonic() + 120
    while not list(out.glob("logs/*.json")) and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    fired = fault() if t.is_alive() else None
    t.join(300)
    assert not t.is_alive()
    return box["res"], fired


def _actor_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if "ray::_ScorerActor" in " ".join(p.cmdline() or [p.name()])]


def test_killed_actor_is_retried_and_table_identical(cluster, data, reference, yolox_backbone, tmp_path):
    def kill():
        pids = _actor_pids()
        if pids:
            os.kill(pids[0], 9)
        return pids

    res, killed = _run_with(kill, data, tmp_path / "out", yolox_backbone)
    assert killed, "no actor process was found to kill"
    assert res.exit_status == 0 and len(res.scored) == 3
    assert pq.read_table(tmp_path / "out" / "frames.parquet").equals(reference)


def test_removed_node_is_survived_and_table_identical(cluster, data, reference, yolox_backbone, tmp_path):
    c, nodes = cluster

    def remove():
        c.remove_node(nodes[1])
        return True

    res, removed = _run_with(remove, data, tmp_path / "out", yolox_backbone)
    assert removed, "the run ended before the node could be removed"
    assert res.exit_status == 0 and len(res.scored) == 3
    assert pq.read_table(tmp_path / "out" / "frames.parquet").equals(reference)
