"""Hostile use of the newer command-line paths (issue 19): ``predict`` never writes over its
inputs and checks its outputs before any work, malformed checkpoints and bad devices are
``error:`` / rc 2, ``--patches`` is bounded and crops go through the net in chunks,
allocator errors are "out of memory", SIGINT/SIGTERM during startup end cleanly (130/143),
``StreamScorer`` refuses bad arguments and releases its per-size keys, and REF/DIST at
different frame rates give a warning and both rates in the log.

Everything runs in-process through ``dctqa.cli.main`` on tiny inputs, except one child
process for the startup signal.
"""
from __future__ import annotations

import json
import os
import re
import signal

import numpy as np
import pytest
import torch

from dctqa import fileio
from dctqa.cli import main
from dctqa.constants import METRIC_VERSION
from dctqa.errors import InputError
from tests.helpers import make_video

PATCH = 64


def _make_checkpoint(path, seed: int = 0):
    """A tiny untrained no-reference checkpoint (as tests/test_study_nr.py makes one)."""
    from dctqa.nr.model import NRConfig, NRModel, Provenance

    torch.manual_seed(seed)
    cfg = NRConfig(width=0.125, fc=(32, 16, 8), dropout=0.0, patch=PATCH, sigma=2.0)
    prov = Provenance(metric_version=METRIC_VERSION, backbone="onnx:test.onnx", backbone_sha256="ab" * 32,
                      target_mean=0.3, target_std=0.2)
    NRModel(cfg, prov).save(path)
    return path


@pytest.fixture(scope="module")
def nr_files(tmp_path_factory):
    """``(video, checkpoint)``: a 4-frame 72x96 H.264 clip and a tiny checkpoint, kept pristine
    (tests copy them into their own folder)."""
    d = tmp_path_factory.mktemp("issue19")
    frames = np.random.default_rng(19).integers(0, 256, (4, 72, 96, 3), dtype=np.uint8)
    video = d / "clip.mp4"
    make_video(video, frames, crf=30, preset="ultrafast")
    return video, _make_checkpoint(d / "ck.pt")


@pytest.fixture
def work(nr_files, tmp_path):
    """Copies of the clip and the checkpoint in this test's folder, and their bytes."""
    video, ck = tmp_path / "x.mp4", tmp_path / "ck.pt"
    video.write_bytes(nr_files[0].read_bytes())
    ck.write_bytes(nr_files[1].read_bytes())
    return tmp_path, video, ck


def _predict(video, ck, *extra: str) -> int:
    return main(["predict", str(video), "--model", str(ck), "--quiet", *extra])


def _no_prediction(monkeypatch):
    import dctqa.nr.predict as predict

    def never(*a, **k):
        raise AssertionError("predicted although the command line is bad")

    monkeypatch.setattr(predict, "predict_video", never)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _clean_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


# --- 1: predict never writes over an input, and checks its outputs first -------------------------

@pytest.mark.parametrize("how", ["json=video", "csv=model", "json=symlink", "json=hardlink", "csv=hardlink-model"])
def test_predict_never_overwrites_an_input(work, capsys, monkeypatch, how):
    folder, video, ck = work
    _no_prediction(monkeypatch)
    option, what = how.split("=")
    victim = ck if "model" in what else video
    target = victim
    if what.startswith("symlink"):
        target = folder / "link.json"
        target.symlink_to(victim)
    elif what.startswith("hardlink"):
        target = folder / "hard.out"
        os.link(victim, target)
    before = {p.name: p.read_bytes() for p in (video, ck)}
    names = _names(folder)
    assert _predict(video, ck, f"--{option}", str(target)) == 2
    err = _clean_error(capsys)
    assert "input" in err
    assert {p.name: p.read_bytes() for p in (video, ck)} == before
    assert _names(folder) == names and (what != "symlink" or target.is_symlink())


def test_predict_refuses_one_file_for_json_and_csv(work, capsys, monkeypatch):
    import dctqa.nr.predict as predict

    folder, video, ck = work
    real = predict.predict_video
    _no_prediction(monkeypatch)
    (folder / "o").mkdir()
    out = folder / "o" / "p"
    assert _predict(video, ck, "--json", str(out), "--csv", str(out)) == 2
    assert "same file" in _clean_error(capsys)
    assert _names(folder / "o") == []
    monkeypatch.setattr(predict, "predict_video", real)  # two distinct files: both written
    js, csv = folder / "o" / "p.json", folder / "o" / "p.csv"
    assert _predict(video, ck, "--json", str(js), "--csv", str(csv), "--sampling", "grid") == 0
    assert len(json.loads(js.read_text())["frames"]) == 4 and csv.read_text().count("\n") == 5
    assert _names(folder / "o") == ["p.csv", "p.json"]


@pytest.mark.parametrize("bad", ["under-a-file", "missing-folder", "unwritable"])
def test_predict_checks_the_csv_folder_before_predicting(work, capsys, monkeypatch, bad):
    folder, video, ck = work
    _no_prediction(monkeypatch)
    (folder / "afile").write_text("x")
    csv = {"under-a-file": folder / "afile" / "p.csv", "missing-folder": folder / "nowhere" / "p.csv",
           "unwritable": folder / "ro" / "p.csv"}[bad]
    if bad == "unwritable":  # root writes into any folder: refuse temporary files there instead
        (folder / "ro").mkdir()
        real_mkstemp = fileio.tempfile.mkstemp

        def denied(*a, dir=None, **k):
            if dir is not None and os.path.abspath(dir) == str(folder / "ro"):
                raise PermissionError(13, "Permission denied")
            return real_mkstemp(*a, dir=dir, **k)

        monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    names = _names(folder)
    js = folder / "p.json"
    assert _predict(video, ck, "--json", str(js), "--csv", str(csv)) == 2
    _clean_error(capsys)
    assert not js.exists() and _names(folder) == names


# --- 2: malformed checkpoints are CheckpointError / rc 2 ---------------------------------------------

def _broken_state_dict(ck):
    key = next(k for k, v in ck["state_dict"].items() if v.dim() >= 2)
    ck["state_dict"][key] = torch.zeros(3, 1)


def _set(section: str, name: str, value):
    def edit(ck):
        ck[section][name] = value
    return edit


def _replace(section: str, value):
    def edit(ck):
        ck[section] = value
    return edit


MALFORMED = {
    "state_dict shape": (_broken_state_dict, "weights do not fit"),
    "state_dict missing key": (lambda ck: ck["state_dict"].pop(next(iter(ck["state_dict"]))), "weights do not fit"),
    "config unknown key": (_set("config", "colour", 3), "unknown entries ['colour']"),
    "config not a dict": (_replace("config", "notadict"), "its config is a str"),
    "config bad value": (_set("config", "patch", 5), "config cannot be used"),
    "provenance not a dict": (_replace("provenance", [1, 2]), "its provenance is a list"),
    "provenance unknown key": (_set("provenance", "colour", 3), "unknown entries ['colour']"),
    "target_mean nan": (_set("provenance", "target_mean", float("nan")), "target_mean"),
    "target_mean string": (_set("provenance", "target_mean", "0.3"), "target_mean"),
    "target_std inf": (_set("provenance", "target_std", float("inf")), "target_std"),
    "target_std zero": (_set("provenance", "target_std", 0.0), "target_std"),
    "target_std negative": (_set("provenance", "target_std", -0.2), "target_std"),
}


def _malformed(nr_files, folder, case):
    edit, _ = MALFORMED[case]
    ck = torch.load(nr_files[1], weights_only=True)
    edit(ck)
    path = folder / "bad.pt"
    torch.save(ck, path)
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_checkpoint_is_a_checkpoint_error(nr_files, tmp_path, case):
    from dctqa.nr.model import CheckpointError, NRModel

    bad = _malformed(nr_files, tmp_path, case)
    with pytest.raises(CheckpointError, match=re.escape(MALFORMED[case][1])):
        NRModel.load(bad)


@pytest.mark.parametrize("case", ["state_dict shape", "config unknown key", "config not a dict", "target_mean nan",
                                  "target_std zero"])
def test_malformed_checkpoint_exits_2(nr_files, tmp_path, capsys, monkeypatch, case):
    _no_prediction(monkeypatch)
    bad = _malformed(nr_files, tmp_path, case)
    js = tmp_path / "p.json"
    assert _predict(nr_files[0], bad, "--json", str(js)) == 2
    assert MALFORMED[case][1] in _clean_error(capsys)
    assert not js.exists()


# --- 3: predict --device ---------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["bogus", "cuda"])
def test_predict_unusable_device_exits_2(work, capsys, monkeypatch, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, so --device cuda is usable here")
    folder, video, ck = work
    _no_prediction(monkeypatch)
    js = folder / "p.json"
    assert _predict(video, ck, "--device", device, "--json", str(js)) == 2
    assert "device" in _clean_error(capsys)
    assert not js.exists()


# --- 4: --patches bounded, crops in chunks, allocator errors -----------------------------------------

def test_patches_are_bounded_by_the_parser(capsys):
    import dctqa.nr

    assert dctqa.nr.MAX_PATCHES == 256
    for n in ("100000", "257"):  # files never opened: the parser refuses first
        with pytest.raises(SystemExit) as exc:
            main(["predict", "missing.mp4", "--model", "missing.pt", "--patches", n])
        assert exc.value.code == 2 and "--patches" in capsys.readouterr().err


def test_check_options_bounds_patches(nr_files):
    from dctqa.nr.model import NRModel

    model = NRModel.load(nr_files[1])
    model.check_options(patches=256, sampling="grid", height=72, width=96)
    for bad in (257, 100000, 0, True, 2.0):
        with pytest.raises(InputError, match="patches"):
            model.check_options(patches=bad, sampling="grid", height=72, width=96)
    frame = np.zeros((1, 72, 96, 3), np.uint8)
    with pytest.raises(InputError, match="patches"):
        model.predict_log(frame, patches=257, sampling="grid")


def test_many_patches_go_through_the_net_in_chunks(nr_files, monkeypatch):
    from dctqa.nr import model as nr_model
    from dctqa.nr.model import NRModel

    model = NRModel.load(nr_files[1])
    frames = np.random.default_rng(4).integers(0, 256, (2, 72, 96, 3), dtype=np.uint8)
    sizes = []
    forward = model.net.forward

    def counted(x):
        sizes.append(x.shape[0])
        return forward(x)

    monkeypatch.setattr(model.net, "forward", counted)
    chunked = model.predict_log(frames, patches=200, sampling="uniform", seed=3)
    chunk = nr_model.CROP_CHUNK
    assert 1 <= chunk < 400 and sum(sizes) == 400 and max(sizes) <= chunk and len(sizes) == -(-400 // chunk)
    sizes.clear()
    monkeypatch.setattr(nr_model, "CROP_CHUNK", 10_000)  # one call with every crop: the same values
    whole = model.predict_log(frames, patches=200, sampling="uniform", seed=3)
    assert sizes == [400] and chunked.shape == (2,)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


ALLOC = ("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: you tried to "
         "allocate 123 bytes. Error code 12 (Cannot allocate memory)")


def test_allocator_errors_are_out_of_memory(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from dctqa.cli import _error_message
    from dctqa.metric import Metric

    assert _error_message(RuntimeError(ALLOC)).startswith("out of memory")
    assert _error_message(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")).startswith("out of memory")
    assert _error_message(RuntimeError("some other bug")) is None

    def alloc_fails(*a, **k):
        raise RuntimeError(ALLOC)

    monkeypatch.setattr(Metric, "score_video", alloc_fails)
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    js = tmp_path / "o.json"
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--backbone", "pixel", "--quiet",
                 "--json", str(js)]) == 2
    assert _clean_error(capsys).startswith("error: out of memory") and not js.exists()


def test_allocator_error_in_predict_exits_2(work, monkeypatch, capsys):
    import dctqa.nr.predict as predict

    folder, video, ck = work

    def alloc_fails(*a, **k):
        raise RuntimeError(ALLOC)

    monkeypatch.setattr(predict, "predict_video", alloc_fails)
    js = folder / "p.json"
    assert _predict(video, ck, "--json", str(js)) == 2
    assert "out of memory" in _clean_error(capsys) and not js.exists()


# --- 9: SIGINT / SIGTERM while the command line starts -------------------------------------------------

class _Escaped(Exception):
    """Raised by the test's own SIGTERM handler: the signal reached code outside main's handling."""


@pytest.mark.parametrize("sig,rc,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_startup_ends_cleanly(tmp_path, monkeypatch, capsys, sig, rc, word):
    import dctqa.cli as cli

    real = cli.build_parser
    sent = []

    def signalled():
        sent.append(sig)
        os.kill(os.getpid(), sig)  # as if the user pressed ^C (or kill ran) while the CLI starts
        return real()

    def escaped(signum, frame):
        raise _Escaped(signum)

    monkeypatch.setattr(cli, "build_parser", signalled)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, escaped)  # a SIGTERM main does not handle must not kill pytest
    js = tmp_path / "o.json"
    try:
        rc_got = main(["score", "missing-ref.png", "missing-dist.png", "--backbone", "pixel", "--json", str(js)])
    except (KeyboardInterrupt, _Escaped) as exc:
        pytest.fail(f"{type(exc).__name__} escaped main during startup")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    assert sent == [sig] and rc_got == rc
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err and not js.exists()


def test_sigint_while_torch_loads_in_a_real_process(tmp_path):
    """End to end: ^C while the child imports torch ends with 130 and "interrupted", not a
    KeyboardInterrupt traceback or death by SIGINT."""
    import subprocess
    import sys
    import time

    frames = np.random.default_rng(5).integers(0, 256, (40, 64, 96, 3), dtype=np.uint8)
    ref, dist = tmp_path / "ref.mkv", tmp_path / "dist.mkv"
    make_video(ref, frames, codec="ffv1")
    make_video(dist, frames[:, ::-1].copy(), codec="ffv1")
    js = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dctqa", "score", str(ref), str(dist), "--backbone", "pixel",
                             "--quiet", "--json", str(js)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    loading = False
    while time.time() < deadline and proc.poll() is None:  # torch's libraries are being mapped
        try:
            with open(f"/proc/{proc.pid}/maps") as maps:
                loading = any("libtorch" in line for line in maps)
        except OSError:
            break
        if loading:
            break
        time.sleep(0.005)
    if proc.poll() is not None or not loading:
        proc.kill()
        proc.communicate(timeout=60)
        pytest.skip("the child finished (or never loaded torch) before the signal could be sent")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    if proc.returncode == 0:  # finished scoring before the signal was seen: a complete output
        assert json.loads(js.read_text())["frames"]
    else:
        assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)
        assert not js.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist.mkv", "ref.mkv"] + (
        ["out.json"] if proc.returncode == 0 else [])


# --- 10: StreamScorer arguments and key release ------------------------------------------------------

def _score_first_pixel(ref, dist):
    return dist[:, 0, 0, 0].double()


@pytest.mark.parametrize("kw,match", [
    ({"max_wait_ms": "5"}, "max_wait_ms"), ({"max_wait_ms": True}, "max_wait_ms"),
    ({"latency_window": -1}, "latency_window"), ({"latency_window": 0}, "latency_window"),
    ({"latency_window": True}, "latency_window"), ({"latency_window": 2.5}, "latency_window"),
    ({"device": "nope"}, "device"), ({"device": 3}, "device"),
    ({"max_batch": True}, "max_batch"), ({"max_batch": 1, "max_queue": True}, "max_queue"),
    ({"reference": "yes"}, "reference"),
])
def test_stream_scorer_bad_arguments_are_input_errors(kw, match):
    from dctqa.serve import StreamScorer

    with pytest.raises(InputError, match=match):
        StreamScorer(_score_first_pixel, **kw)


def test_stream_scorer_cuda_without_gpu_is_an_input_error():
    from dctqa.serve import StreamScorer

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, so device='cuda' is usable here")
    with pytest.raises(InputError, match="cuda"):
        StreamScorer(_score_first_pixel, device="cuda")


def test_stream_scorer_releases_the_keys_of_frame_sizes():
    from dctqa.serve import StreamScorer

    with StreamScorer(_score_first_pixel, max_batch=4, max_wait_ms=0, max_queue=64) as s:
        for i in range(40):  # 40 streams, each with its own frame size, that come and go
            h, w = 8 + i, 8 + 2 * (i % 7)
            futures = [s.submit(f"cam{i}", np.full((h, w, 3), v, np.uint8), np.full((h, w, 3), v, np.uint8))
                       for v in (i, i + 1)]
            assert [f.result(timeout=20) for f in futures] == [float(i), float(i + 1)]
            s.forget(f"cam{i}")
        with s._lock:
            assert len(s._keys) == 0 and not s._streams, dict(s._keys)
        assert s.stats().total.pairs == 80


def test_stream_scorer_drop_oldest_releases_keys():
    import threading

    from dctqa.errors import DroppedError
    from dctqa.serve import StreamScorer

    gate, entered = threading.Event(), threading.Event()

    def held(ref, dist):
        entered.set()
        assert gate.wait(20)
        return dist[:, 0, 0, 0].double()

    s = StreamScorer(held, max_batch=1, max_wait_ms=0, max_queue=2, when_full="drop_oldest")
    try:
        first = s.submit("a", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))
        assert entered.wait(20)  # the worker holds the first pair; the rest queue behind it
        futures = [s.submit("a", np.full((9 + i, 8, 3), i, np.uint8), np.full((9 + i, 8, 3), i, np.uint8))
                   for i in range(12)]
        gate.set()
        first.result(timeout=20)
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(timeout=20))
            except DroppedError:
                outcomes.append("dropped")
        assert outcomes.count("dropped") >= 9
        with s._lock:
            assert len(s._keys) == 0, dict(s._keys)
    finally:
        gate.set()
        s.close()


# --- 11: REF and DIST at different frame rates ---------------------------------------------------------

@pytest.fixture(scope="module")
def two_rates(tmp_path_factory):
    d = tmp_path_factory.mktemp("rates")
    frames = np.random.default_rng(11).integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    ref, dist = d / "ref10.mkv", d / "dist25.mkv"
    make_video(ref, frames, codec="ffv1", rate=10)
    make_video(dist, frames, codec="ffv1", rate=25)
    same = d / "dist10.mkv"
    make_video(same, frames, codec="ffv1", rate=10)
    return ref, dist, same


def test_different_frame_rates_warn_and_are_logged(two_rates, tmp_path, capsys):
    ref, dist, _ = two_rates
    js = tmp_path / "o.json"
    assert main(["score", str(ref), str(dist), "--backbone", "pixel", "--quiet", "--json", str(js)]) == 0
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if line.startswith("warning:") and "frames/s" in line]
    assert note and "10" in note[0] and "25" in note[0], err
    params = json.loads(js.read_text())["params"]
    assert params["reference_fps"] == pytest.approx(10.0) and params["distorted_fps"] == pytest.approx(25.0)


def test_same_frame_rate_gives_no_rate_warning(two_rates, tmp_path, capsys):
    ref, _, same = two_rates
    js = tmp_path / "o.json"
    assert main(["score", str(ref), str(same), "--backbone", "pixel", "--quiet", "--json", str(js)]) == 0
    assert "frames/s" not in capsys.readouterr().err
    params = json.loads(js.read_text())["params"]
    assert params["reference_fps"] == pytest.approx(10.0) == params["distorted_fps"]


def test_different_frame_rates_warn_in_the_api(two_rates):
    import dctqa
    from dctqa.metric import frame_rate_note

    ref, dist, _ = two_rates
    with pytest.warns(UserWarning, match="frames/s"):
        res = dctqa.Metric(domain="pixel").score_video(ref, dist)
    assert res.ref_fps == pytest.approx(10.0) and res.dist_fps == pytest.approx(25.0)
    assert any("frames/s" in w for w in res.warnings)
    assert frame_rate_note(25.0, 25.0) is None and frame_rate_note(None, 25.0) is None
    assert frame_rate_note(25.0, 25.0 * (1 + 1e-4)) is None and frame_rate_note(10.0, 25.0)
