"""Hostile use of the command line (issue 7): odd output paths, damaged inputs, signals,
undefined scores, bad arguments. Every case ends in rc 0 with complete outputs, or in
``error: ...`` / rc 2 (130/143 for signals) with no output and no temporary file left.

Everything runs in-process through ``dctqa.cli.main`` on tiny inputs (a few seconds in all).
"""
from __future__ import annotations

import json
import os
import signal
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dctqa import fileio, io, log
from dctqa.cli import main
from dctqa.errors import OutputError
from tests.helpers import make_video


def _strict_json(text: str):
    """json.loads that refuses the NaN/Infinity tokens Python would otherwise accept."""
    def bad(token):
        raise AssertionError(f"invalid JSON token {token}")
    return json.loads(text, parse_constant=bad)


@pytest.fixture
def pair(tmp_path, rng):
    """A reference and a distorted 24x32 PNG."""
    from PIL import Image

    ref = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-40, 40, ref.shape), 0, 255).astype(np.uint8)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(dist).save(tmp_path / "dist.png")
    return tmp_path / "ref.png", tmp_path / "dist.png"


def _score(pair, *extra: str) -> int:
    return main(["score", str(pair[0]), str(pair[1]), "--backbone", "pixel", "--quiet", *extra])


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- 1, 8: output paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_output_never_overwrites_an_input(pair, tmp_path, capsys, how):
    ref = pair[0]
    before = ref.read_bytes()
    target = {"same": ref, "symlink": tmp_path / "link.json", "hardlink": tmp_path / "hard.json"}[how]
    if how == "symlink":
        target.symlink_to(ref)
    elif how == "hardlink":
        os.link(ref, target)
    assert _score(pair, "--json", str(target)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "input" in err and "Traceback" not in err
    assert ref.read_bytes() == before and (how != "symlink" or target.is_symlink())
    assert _leftovers(tmp_path) == []


def test_fifo_is_refused_not_replaced(pair, tmp_path, capsys):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    assert _score(pair, "--json", str(fifo)) == 2
    assert "FIFO" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("path", ["/dev/null", "/dev/stdout", "/proc/version", "/proc/self/fd/1"])
def test_devices_streams_and_proc_are_refused_before_writing(path):
    with pytest.raises(OutputError):
        fileio.check_output_path(path)


def test_proc_and_long_names_exit_2(pair, tmp_path, capsys):
    assert _score(pair, "--json", "/proc/version") == 2
    assert "/proc" in capsys.readouterr().err
    assert _score(pair, "--json", str(tmp_path / ("x" * 300 + ".json"))) == 2
    err = capsys.readouterr().err
    assert "305 bytes long" in err and "Traceback" not in err


def test_symlink_to_a_regular_file_is_written_through(pair, tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert _score(pair, "--json", str(link)) == 0
    assert link.is_symlink() and _strict_json(real.read_text())["frames"]
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    assert _score(pair, "--json", str(dangling)) == 2
    assert not (tmp_path / "nowhere.json").exists()


def test_outputs_are_checked_before_scoring(pair, tmp_path, monkeypatch, capsys):
    from dctqa.metric import Metric

    def never(*a, **k):
        raise AssertionError("scored although an output path is bad")

    monkeypatch.setattr(Metric, "score_video", never)
    ok = tmp_path / "ok.json"
    assert _score(pair, "--json", str(ok), "--csv", "/nonexistent/c.csv") == 2
    assert "does not exist" in capsys.readouterr().err
    assert not ok.exists() and _leftovers(tmp_path) == []
    assert _score(pair, "--json", str(ok), "--csv", str(ok)) == 2
    assert "same file" in capsys.readouterr().err and not ok.exists()
    ok.write_text("old")
    os.link(ok, tmp_path / "hard.csv")
    assert _score(pair, "--json", str(ok), "--csv", str(tmp_path / "hard.csv")) == 2
    assert "same file" in capsys.readouterr().err and ok.read_text() == "old"


def test_unwritable_folder_exits_2(pair, tmp_path, monkeypatch, capsys):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    assert _score(pair, "--json", str(tmp_path / "a.json")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write into the folder") and "Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the mapping is covered by "
                                               "test_unwritable_folder_exits_2")
def test_read_only_folder_exits_2(pair, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert _score(pair, "--json", str(folder / "a.json")) == 2
    finally:
        folder.chmod(0o755)
    assert "cannot write into the folder" in capsys.readouterr().err and list(folder.iterdir()) == []


def test_a_failure_after_scoring_leaves_no_output(pair, tmp_path, monkeypatch):
    from dctqa.errors import InputError

    def broken(rows):
        raise InputError("csv failed")

    monkeypatch.setattr(log, "csv_text", broken)
    ok = tmp_path / "ok.json"
    assert _score(pair, "--json", str(ok), "--csv", str(tmp_path / "c.csv")) == 2
    assert not ok.exists() and not (tmp_path / "c.csv").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("sig,rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_in_the_write_window_leaves_nothing(pair, tmp_path, monkeypatch, sig, rc):
    real_write = fileio._write
    calls = []

    def write_then_signal(path, data):
        real_write(path, data)
        calls.append(path)
        os.kill(os.getpid(), sig)

    monkeypatch.setattr(fileio, "_write", write_then_signal)
    js, cs = tmp_path / "a.json", tmp_path / "a.csv"
    assert _score(pair, "--json", str(js), "--csv", str(cs)) == rc
    assert calls and not js.exists() and not cs.exists() and _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_outputs_honour_the_umask(pair, tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert _score(pair, "--json", str(tmp_path / "a.json")) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_a_replaced_output_keeps_its_mode(pair, tmp_path):
    js = tmp_path / "a.json"
    js.write_text("old")
    js.chmod(0o640)
    assert _score(pair, "--json", str(js)) == 0
    assert stat.S_IMODE(js.stat().st_mode) == 0o640 and _strict_json(js.read_text())


def test_demo_refuses_a_file_as_folder_and_removes_a_folder_it_created(tmp_path, monkeypatch, capsys):
    import dctqa.demo as demo

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["demo", "--out", str(afile), "--quiet"]) == 2
    assert "not a folder" in capsys.readouterr().err and afile.read_text() == "x"

    def boom(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(demo, "choose_backbone", lambda: ("pixel", "test"))
    monkeypatch.setattr(demo, "make_clip", boom)
    out = tmp_path / "new" / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 2
    assert "out of memory" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                    min_size=1, max_size=300))
def test_any_output_name_gives_a_complete_file_or_a_clean_error(pair, tmp_path, name):
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    path = folder / name
    try:
        rc = _score(pair, "--json", str(path))
    except SystemExit as exc:  # argparse: a name that looks like an option
        assert exc.code == 2
        return
    if name in (".", ".."):
        assert rc == 2
    elif rc == 0:
        assert _strict_json(path.read_text())["frames"]
        assert [p.name for p in folder.iterdir()] == [name]
    else:
        assert rc == 2 and list(folder.iterdir()) == []


# --- 5: damaged inputs in every container ----------------------------------------------------------

def _damaged(tmp_path, ext: str, how: str):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    frames = np.clip(base + np.arange(24)[:, None, None, None] * 3, 0, 255).astype(np.uint8)
    ref = tmp_path / f"ref.{ext}"
    make_video(ref, frames, crf=20, g=4)
    data = ref.read_bytes()
    if how == "cut":  # 60 %; a transport stream is cut inside a 188-byte packet
        bad = data[: int(len(data) * 0.6) // 188 * 188 + 100] if ext == "ts" else data[: int(len(data) * 0.6)]
    else:
        b = bytearray(data)
        for i in np.random.default_rng(1).choice(np.arange(len(b) // 2, len(b)), 60, replace=False):
            b[i] ^= 0xFF
        bad = bytes(b)
    dist = tmp_path / f"dist_{how}.{ext}"
    dist.write_bytes(bad)
    return ref, dist


@pytest.mark.parametrize("ext", ["mkv", "ts", "avi"])
@pytest.mark.parametrize("how", ["cut", "flip"])
def test_damaged_video_is_an_error_unless_ignored(tmp_path, capsys, ext, how):
    ref, dist = _damaged(tmp_path, ext, how)
    js = tmp_path / "log.json"
    argv = ["score", str(ref), str(dist), "--backbone", "pixel", "--quiet", "--json", str(js)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "damaged" in err and "--ignore-decode-errors" in err
    assert not js.exists()
    assert main(argv + ["--ignore-decode-errors"]) == 0
    log = _strict_json(js.read_text())
    p = log["params"]
    assert p["ignore_decode_errors"] is True and p["decode_errors"] + p["missing_frames"] > 0
    assert 0 < len(log["frames"]) <= 24
    assert "damaged input" in capsys.readouterr().err


def test_clean_videos_in_every_container_have_no_decode_problems(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    for ext in ("mkv", "ts", "avi", "mp4"):
        path = tmp_path / f"v.{ext}"
        make_video(path, frames, crf=20)
        rep = io.DecodeReport(str(path))
        assert sum(1 for _ in io.iter_frames(path, report=rep)) == 12 and rep.clean


# --- 6: expected OS errors and memory ----------------------------------------------------------------

@pytest.mark.parametrize("exc", [MemoryError(), "torch-oom"])
def test_out_of_memory_is_an_error_not_a_traceback(pair, monkeypatch, capsys, exc):
    import torch

    from dctqa.metric import Metric

    error = torch.OutOfMemoryError("CUDA out of memory") if exc == "torch-oom" else exc

    def oom(*a, **k):
        raise error

    monkeypatch.setattr(Metric, "score_video", oom)
    assert _score(pair) == 2
    assert capsys.readouterr().err.startswith("error: out of memory")


def test_a_bug_keeps_its_traceback(pair, monkeypatch):
    from dctqa.metric import Metric

    def bug(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(Metric, "score_video", bug)
    with pytest.raises(ZeroDivisionError):
        _score(pair)


# --- 7: no NaN or inf written as a score ----------------------------------------------------------

def test_undefined_scores_are_null_in_json_and_empty_in_csv(pair, tmp_path, monkeypatch, capsys):
    from dctqa.metric import Metric, VideoScore

    def with_nan(self, *a, **k):
        return VideoScore(q=np.array([1.5, np.nan, 2.5, np.inf]), frame_numbers=np.arange(4),
                          ref_frames=4, dist_frames=4)

    monkeypatch.setattr(Metric, "score_video", with_nan)
    js, cs = tmp_path / "a.json", tmp_path / "a.csv"
    assert _score(pair, "--json", str(js), "--csv", str(cs)) == 0
    log = _strict_json(js.read_text())
    assert [f["metrics"]["dctqa"] for f in log["frames"]] == [1.5, None, 2.5, None]
    pool = log["pooled_metrics"]["dctqa"]
    assert pool["undefined_frames"] == 2 and pool["frames"] == 2 and pool["mean"] == 2.0
    assert cs.read_text().splitlines()[1:] == ["0,1.5", "1,", "2,2.5", "3,"]
    assert "2 frame(s) have no defined score" in capsys.readouterr().err


def test_harmonic_mean_is_over_positive_scores():
    p = log.pooled([0.0, 2.0, 2.0])
    assert p["harmonic_mean"] == 2.0 and p["harmonic_mean_excluded"] == 1 and p["min"] == 0.0
    assert log.pooled([0.0])["harmonic_mean"] is None
    with pytest.raises(Exception, match="defined score"):
        log.pooled([float("nan")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=20))
def test_pooled_never_yields_invalid_json(values):
    v = np.asarray(values)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        with pytest.raises(Exception):
            log.pooled(values)
        return
    with np.errstate(all="ignore"):
        pool = log.pooled(values)
    text = log.json_text(log.build_log(v, range(len(v)), {}))
    _strict_json(text)
    assert pool["frames"] + pool["undefined_frames"] == len(values)
    pos = finite[finite > 0]
    assert (pool["harmonic_mean"] is None) == (pos.size == 0)
    assert pool["harmonic_mean"] is None or 0 <= pool["harmonic_mean"] / pos.max() <= 1 + 1e-12


def test_json_writer_refuses_nan():
    with pytest.raises(Exception, match="invalid JSON"):
        log.json_text({"q": float("nan")})


# --- 9: messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--max-frames", "0"], "--max-frames: must be an integer >= 1, got 0"),
    (["--frame-stride", "-1"], "--frame-stride: must be an integer in 1..2147483647, got -1"),
    (["--batch-size", "x"], "--batch-size: expected an integer in 1..4096, got 'x'"),
    (["--batch-size", "99999999999999999999"], "--batch-size: must be an integer in 1..4096, got 99999999999999999999"),
])
def test_bad_numbers_name_the_value(pair, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        _score(pair, *args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_max_frames_zero_in_the_api_is_an_argument_error(pair):
    from dctqa.errors import InputError

    with pytest.raises(InputError, match="max_frames must be an integer >= 1"):
        next(io.iter_frames(pair[0], max_frames=0))


@pytest.mark.parametrize("spec,message", [
    ("onnx:", "empty ONNX model path"),
    ("onnx:{tmp}", "is a directory"),
    ("onnx:/dev/zero", "not a regular file"),
])
def test_onnx_path_messages_say_what_is_wrong(pair, tmp_path, capsys, spec, message):
    argv = ["score", str(pair[0]), str(pair[1]), "--backbone", spec.format(tmp=tmp_path), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "does not exist" not in err


def test_garbage_weights_file_message(pair, tmp_path, capsys):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"efgh" * 100)
    assert main(["score", str(pair[0]), str(pair[1]), "--backbone", "fasterrcnn_mobilenet_v3_large_fpn",
                 "--weights", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not a torch checkpoint" in err and "state_dict: " not in err


# --- the same rules for every writer (study stages, codec manifests, caches) -----------------------

def test_atomic_path_follows_the_output_rules(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.atomic_write_text(tmp_path / "sub" / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "a.txt").stat().st_mode) == 0o644
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="FIFO"):
        fileio.atomic_write_text(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "sub" / "a.txt")
    fileio.atomic_write_text(link, "y")
    assert link.is_symlink() and (tmp_path / "sub" / "a.txt").read_text() == "y"
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert not (tmp_path / "b.txt").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["encode", "study"])
def test_encode_and_study_check_their_folder_first(tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    src = tmp_path / "missing.mp4"  # never opened: the folder is checked first
    for out, message in [(afile, "not a folder"), ("/proc/dctqa", "under /proc")]:
        assert main([command, str(src), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ext=st.sampled_from(["mkv", "ts", "avi", "mp4"]), cut=st.floats(0.05, 1.0),
       flips=st.lists(st.floats(0.0, 1.0, exclude_max=True), max_size=40), ignore=st.booleans())
def test_any_damage_gives_a_score_or_a_clean_error(damage_source, tmp_path, capsys, ext, cut, flips, ignore):
    data = damage_source[ext]
    b = bytearray(data[: max(1, int(len(data) * cut))])
    for f in flips:
        b[int(f * len(b))] ^= 0x5A
    dist = tmp_path / f"fuzz.{ext}"
    dist.write_bytes(bytes(b))
    js = tmp_path / "fuzz.json"
    js.unlink(missing_ok=True)
    argv = ["score", str(damage_source["ref"]), str(dist), "--backbone", "pixel", "--quiet", "--json", str(js)]
    rc = main(argv + (["--ignore-decode-errors"] if ignore else []))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if rc == 0:
        log = _strict_json(js.read_text())
        if not ignore:  # a run without the flag reports no damage
            assert log["params"]["decode_errors"] == log["params"]["missing_frames"] == 0
    else:
        assert rc == 2 and err.startswith("error: ") and not js.exists()


@pytest.fixture(scope="module")
def damage_source(tmp_path_factory):
    """A 16-frame 32x32 reference (PNG-exact FFV1) and its H.264 encodings in four containers."""
    folder = tmp_path_factory.mktemp("damage")
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    frames = np.clip(base + np.arange(16)[:, None, None, None] * 4, 0, 255).astype(np.uint8)
    out = {"ref": folder / "ref.mkv"}
    make_video(out["ref"], frames, crf=0, g=4)
    for ext in ("mkv", "ts", "avi", "mp4"):
        make_video(folder / f"v.{ext}", frames, crf=25, g=4)
        out[ext] = (folder / f"v.{ext}").read_bytes()
    return out


# --- 6: model and configuration errors raised by the library reach the user as rc 2 ---------------

def _onnx_model(path, wshape, strides=(1, 1), inputs=True):
    """A one-Conv (+ Relu) ONNX graph whose first Conv has a weight of shape ``wshape``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal(wshape).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["images", "w"], ["c"], strides=list(strides), pads=[0, 0, 0, 0])
    relu = helper.make_node("Relu", ["c"], ["y"])
    graph_inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 24, 32])] if inputs else []
    graph = helper.make_graph([conv, relu], "g", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph), str(path))
    return f"onnx:{path}"


@pytest.mark.parametrize("case,domain,message", [
    (dict(wshape=(4,)), "spectral", "has a weight of shape (4,)"),
    (dict(wshape=(4, 3, 3)), "spectral", "has a weight of shape (4, 3, 3)"),
    (dict(wshape=(0, 3, 3, 3)), "feature", "has a weight of shape (0, 3, 3, 3)"),
    (dict(wshape=(4, 3, 3, 3), inputs=False), "spectral", "has no graph input"),
    (dict(wshape=(4, 3, 3, 3), strides=(0, 0)), "feature", "strides [0, 0]"),
    (dict(wshape=(4, 3, 33, 33)), "feature", "smaller than the first layer's 33x33 kernel"),
])
def test_unusable_onnx_models_exit_2(pair, tmp_path, capsys, case, domain, message):
    spec = _onnx_model(tmp_path / "m.onnx", **case)
    js = tmp_path / "o.json"
    assert main(["score", str(pair[0]), str(pair[1]), "--backbone", spec, "--domain", domain, "--quiet",
                 "--json", str(js)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not js.exists()


@pytest.mark.parametrize("device", ["meta", "garbage"])
def test_unusable_device_exits_2(pair, capsys, device):
    assert _score(pair, "--device", device) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_garbage_environment_variable_exits_2(pair, monkeypatch, capsys):
    monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")  # the torch path reads the spectra cache budget
    monkeypatch.setenv("DCTQA_SPECTRA_CACHE_MB", "abc")
    assert main(["score", str(pair[0]), str(pair[1]), "--backbone", "pixel", "--domain", "spectral",
                 "--quiet"]) == 2
    assert "DCTQA_SPECTRA_CACHE_MB" in capsys.readouterr().err


def test_sigterm_to_a_real_process_leaves_complete_output_or_none(tmp_path):
    """End to end in a child process: whenever SIGTERM lands, the output is complete or absent."""
    import subprocess
    import sys
    import time

    frames = np.random.default_rng(4).integers(0, 256, (40, 64, 96, 3), dtype=np.uint8)
    ref, dist = tmp_path / "ref.mkv", tmp_path / "dist.mkv"
    make_video(ref, frames, codec="ffv1")
    make_video(dist, frames[:, ::-1].copy(), codec="ffv1")
    js = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dctqa", "score", str(ref), str(dist), "--backbone", "pixel",
                             "--quiet", "--json", str(js)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:  # wait until the CLI is running, then stop it
        with open(f"/proc/{proc.pid}/maps") as maps:  # torch is loaded: the CLI is about to score
            if any("libtorch" in line for line in maps):
                break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode in (0, 143, -signal.SIGTERM), (proc.returncode, err)
    if proc.returncode == 0:
        assert _strict_json(js.read_text())["frames"]
    else:
        assert not js.exists()
    assert _leftovers(tmp_path) == []
