"""Every subcommand under hostile arguments (issue 19): each run ends in rc 0, or in rc 2
with ``error: ...`` (argparse's own ``... error:`` usage line for a malformed option), never
a traceback or rc 1; a failed run leaves no file or folder behind, and no run ever changes
an input.

Two parts: a fixed table of known-bad calls per subcommand (each one a reproduced bug or
the boundary next to it), and a hypothesis test that takes a quick, valid call of each
subcommand and replaces one argument with a hostile value (empty, negative, NaN, inf,
huge, an input file, a folder, a FIFO, a path under a file, an embedded NUL, a long name).
Everything runs in-process through ``dctqa.cli.main`` on a 6-frame 96x72 clip.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dctqa.cli import main
from dctqa.nr.data import DATA_FORMAT, INDICATORS
from dctqa.study.report import rows_to_csv
from tests.helpers import make_video
from tests.test_analysis import _table
from tests.test_nr import _tiny_config
from tests.test_study_nr import make_checkpoint

H, W, N = 72, 96, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The inputs every call may use: ``v.mp4`` (6 frames), ``m.pt`` (a tiny checkpoint),
    ``t.pt`` (a model trained on ``data/``, fold ``a`` held out), ``data/`` (an nr-data
    folder over two 224x224 videos, two variants each), ``w.csv`` and ``study/windows.csv`` (a study
    window table), ``bad.bin`` (binary junk), ``fifo`` and ``file`` (a plain file)."""
    d = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8)
    make_video(d / "v.mp4", frames)
    (d / "src").mkdir()
    shutil.copy(d / "v.mp4", d / "src" / "crf45.mp4")
    make_checkpoint(d / "m.pt")
    data = d / "data"
    data.mkdir()
    rows = []
    big = rng.integers(0, 256, (N, 224, 224, 3), dtype=np.uint8)  # train-nr's default patch is 224
    for vid in ("a", "b"):
        for crf in (20, 40):
            path = data / f"{vid}-crf{crf}.mp4"
            make_video(path, big[::-1] if vid == "b" else big, crf=crf, preset="ultrafast")
            for f in range(0, N, 2):
                q = 1.0 + crf / 40 + 0.01 * f
                rows.append({"video": vid, "variant": f"crf{crf}", "crf": crf, "frame": f, "path": str(path), "q": q,
                             "log_q": math.log(q), **{k: crf + i for i, k in enumerate(INDICATORS)},
                             "psnr": 50 - crf / 2, "train_only": 0})
    with open(data / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from dctqa.constants import METRIC_VERSION

    (data / "dataset.json").write_text(json.dumps({"format": DATA_FORMAT, "metric_version": METRIC_VERSION,
                                                   "backbone": "onnx:test.onnx", "backbone_sha256": "ab" * 32,
                                                   "target": "dctqa_spectral_x"}))
    (d / "w.csv").write_text(rows_to_csv(_table(rng, n_windows=3, videos=("v1", "v2", "v3"))))
    (d / "study").mkdir()
    shutil.copy(d / "w.csv", d / "study" / "windows.csv")
    from dctqa.nr.train import train

    train(data, d / "t.pt", _tiny_config(split="unseen", fold="a", epochs=1, batch_size=4))
    (d / "bad.bin").write_bytes(bytes(range(256)) * 4)
    (d / "file").write_text("a plain file\n")
    (d / "m.csv").write_text("ref,dist\nv.mp4,src/crf45.mp4\n")  # a score-many manifest
    return d


@pytest.fixture
def here(world, tmp_path, monkeypatch):
    """A private copy of the world, as the working folder."""
    d = tmp_path / "w"
    shutil.copytree(world, d, symlinks=True)
    os.mkfifo(d / "fifo")
    monkeypatch.chdir(d)
    return d


def _state(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content's sha256 (folders and FIFOs: their kind)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_fifo():
            out[rel] = "fifo"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Hang(BaseException):
    """A call that did not end within :data:`HANG_S` seconds (e.g. reading a FIFO)."""


HANG_S = 60


def _hang(signum, frame):
    raise Hang()


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """rc and stderr of ``dctqa ARGV``; argparse's exit counts as its code. A call that
    hangs fails the test (SIGALRM after :data:`HANG_S` s) instead of stopping the suite."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_S)
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 2
    except Hang:
        raise AssertionError(f"{argv}: no result after {HANG_S} s (hangs)") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return rc, capsys.readouterr().err


OUTPUT_OPTIONS = ("--json", "--csv", "--out", "--onnx")


def check_call(argv: list[str], folder: Path, capsys) -> int:
    """Run ``argv`` in ``folder`` and check the rules of this module; returns the rc."""
    before = _state(folder)
    rc, err = _run(argv, capsys)
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    after = _state(folder)
    changed = sorted(k for k in before if after.get(k) != before[k])
    outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OUTPUT_OPTIONS]
    ins = {os.path.normpath(a) for a in argv[1:] if a not in outs}
    asked = [k for k in changed if rc == 0 and k not in ins  # a successful run may replace what it was told to
             and any(o and (os.path.normpath(o) in (k, ".") or k.startswith(os.path.normpath(o) + os.sep))
                     for o in outs)]
    changed = [k for k in changed if k not in asked]
    assert not changed, (argv, "inputs changed or removed", changed, err)
    new = sorted(set(after) - set(before))
    if rc == 2:
        assert "error:" in err, (argv, err)
        assert not new, (argv, "a failed run left", new, err)
    else:
        assert not [n for n in new if Path(n).name.startswith(".") or n.endswith(".tmp")], (argv, new)
    return rc


# --- known-bad calls, per subcommand ------------------------------------------------------------

BAD = {
    "score": [["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--json", "v.mp4"],
              ["score", "v.mp4", "bad.bin", "--backbone", "pixel"],
              ["score", "fifo", "v.mp4", "--backbone", "pixel"],
              ["score", "v.mp4", "v.mp4", "--backbone", "bogus"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--device", "bogus"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--frame-stride", "0"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--csv", "file/x.csv"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--metrics", "psnr,vmaf"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--hwaccel", "bogus"],
              ["score", "http://127.0.0.1:1/v.mp4", "v.mp4", "--backbone", "pixel"],
              ["score", "v.mp4", "v.mp4", "--backbone", "pixel", "--json", "http://127.0.0.1:1/o.json"]],
    "info": [["info", "--json", "fifo"], ["info", "--json", "file/x.json"], ["info", "--json", "data"]],
    "demo": [["demo", "--out", "file"], ["demo", "--out", "d", "--frames", "0"], ["demo", "--out", "file/d"]],
    "encode": [["encode", "v.mp4", "--out", "e", "--cap-kbps", "inf"],
               ["encode", "v.mp4", "--out", "e", "--cap-kbps", "1e300"],
               ["encode", "v.mp4", "--out", "e", "--cap-bpp", "nan"],
               ["encode", "v.mp4", "--out", "e", "--bufsize", "inf"],
               ["encode", "v.mp4", "--out", "e", "--crf", "52"],
               ["encode", "bad.bin", "--out", "e"],
               ["encode", "v.mp4", "--out", "file"],
               ["encode", "src/crf45.mp4", "--out", "src", "--crf", "45", "--preset", "ultrafast"]],  # its own variant
    "study": [["study", "v.mp4", "--out", "s", "--quick", "--detector", "bogus"],
              ["study", "v.mp4", "--out", "s", "--quick", "--backbone", "bogus"],
              ["study", "v.mp4", "--out", "s", "--quick", "--detector", "onnx:missing.onnx"],
              ["study", "v.mp4", "--out", "s", "--quick", "--device", "bogus"],
              ["study", "v.mp4", "--out", "s", "--quick", "--nr-model", "bad.bin"],
              ["study", "v.mp4", "--out", "file", "--quick"],
              ["study", "v.mp4", "--out", "s", "--quick", "--gt-score", "nan"]],
    "study-tables": [["study-tables", "study/windows.csv", "--out", "study"],
                     ["study-tables", "bad.bin", "--out", "t"],
                     ["study-tables", "fifo", "--out", "t"],
                     ["study-tables", "data/labels.csv", "--out", "t"],
                     ["study-tables", "data/dataset.json", "--out", "t"],
                     ["study-tables", "w.csv", "--out", "t", "--n-boot", "-5"],
                     ["study-tables", "w.csv", "--out", "file"]],
    "nr-data": [["nr-data", "v.mp4", "--out", "n", "--backbone", "bogus"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "onnx:missing.onnx"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--labels", "missing.csv"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--labels", "bad.bin"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--labels", "w.csv"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--metric-stride", "0"],
                ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--extra-skimage", "nosuch"],
                ["nr-data", "v.mp4", "--out", "file", "--backbone", "pixel"]],
    "train-nr": [["train-nr", "data", "--split", "seen", "--out", "data/labels.csv"],
                 ["train-nr", "data", "--split", "seen", "--out", "v.mp4"],
                 ["train-nr", "data", "--split", "seen", "--out", "file/m.pt"],
                 ["train-nr", "data", "--split", "unseen", "--fold", "zz", "--out", "m2.pt"],
                 ["train-nr", "data", "--split", "seen", "--out", "m2.pt", "--lr", "nan"],
                 ["train-nr", "data", "--split", "seen", "--out", "m2.pt", "--epochs", "0"],
                 ["train-nr", "broken", "--split", "seen", "--out", "m2.pt"],
                 ["train-nr", ".", "--split", "seen", "--out", "m2.pt"]],
    "predict": [["predict", "v.mp4", "--model", "m.pt", "--json", "v.mp4"],
                ["predict", "v.mp4", "--model", "m.pt", "--csv", "m.pt"],
                ["predict", "v.mp4", "--model", "m.pt", "--json", "o", "--csv", "o"],
                ["predict", "v.mp4", "--model", "bad.bin"],
                ["predict", "v.mp4", "--model", "m.pt", "--device", "bogus"],
                ["predict", "v.mp4", "--model", "m.pt", "--patches", "100000"],
                ["predict", "bad.bin", "--model", "m.pt"],
                ["predict", "fifo", "--model", "m.pt"],
                ["predict", "v.mp4", "--model", "fifo"]],
    "export-nr": [["export-nr", "m.pt", "--onnx", "m.pt"],
                  ["export-nr", "m.pt", "--onnx", "file/x.onnx"],
                  ["export-nr", "m.pt", "--onnx", "no/such/dir/x.onnx"],
                  ["export-nr", "m.pt", "--onnx", "fifo"],
                  ["export-nr", "m.pt", "--onnx", "data"],
                  ["export-nr", "bad.bin", "--onnx", "x.onnx"],
                  ["export-nr", "fifo", "--onnx", "x.onnx"],
                  ["export-nr", "missing.pt", "--onnx", "x.onnx"],
                  ["export-nr", "m.pt", "--onnx", "x.onnx", "--patches", "0"],
                  ["export-nr", "m.pt", "--onnx", "x.onnx", "--opset", "99"]],
    "eval-nr": [["eval-nr", "m.pt", "--data", "broken", "--out", "o"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "o"],  # untrained: no training settings
                ["eval-nr", "t.pt", "--data", "data", "--out", "data", "--paired-with", "data/labels.csv"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "o", "--windows", "bad.bin"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "o", "--windows", "data/labels.csv"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "o", "--paired-with", "w.csv"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "file"],
                ["eval-nr", "bad.bin", "--data", "data", "--out", "o", "--no-ablations", "--n-boot", "10"],
                ["eval-nr", "m.pt", "--data", "data", "--out", "o", "--jobs", "0"]],
    "score-many": [["score-many", "missing.csv", "--out", "o", "--engine", "local", "--backbone", "pixel"],
                   ["score-many", "bad.bin", "--out", "o", "--engine", "local", "--backbone", "pixel"],
                   ["score-many", "fifo", "--out", "o", "--engine", "local", "--backbone", "pixel"],
                   ["score-many", "data/labels.csv", "--out", "o", "--engine", "local", "--backbone", "pixel"],
                   ["score-many", "m.csv", "--out", "file", "--engine", "local", "--backbone", "pixel"],
                   ["score-many", "m.csv", "--out", "o", "--engine", "local", "--backbone", "bogus"],
                   ["score-many", "m.csv", "--out", "o", "--engine", "local", "--segment-frames", "0"],
                   ["score-many", "m.csv", "--out", "o", "--engine", "local", "--actors", "2"]],
    "calibrate-nr": [["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "m.pt", "--out", "c.pt"],
                     ["calibrate-nr", "t.pt", "--data", "broken", "--from-folds", "t.pt", "--out", "c.pt"],
                     ["calibrate-nr", "bad.bin", "--data", "data", "--from-folds", "t.pt", "--out", "c.pt"],
                     ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "fifo", "--out", "c.pt"],
                     ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "t.pt", "t.pt", "--out", "c.pt"],
                     ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "t.pt", "--out", "t.pt"],
                     ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "t.pt", "--out", "file/c.pt"],
                     ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "t.pt", "--frame-step", "0"]],
    "ladder": [["ladder", "v.mp4", "--out", "l", "--backbone", "pixel"],
               ["ladder", "v.mp4", "--out", "l", "--max-q", "2", "--max-ap-drop", "0.1"],
               ["ladder", "v.mp4", "--out", "l", "--max-q", "nan"],
               ["ladder", "v.mp4", "--out", "l", "--max-ap-drop", "-0.1"],
               ["ladder", "v.mp4", "--out", "l", "--max-q", "2", "--confidence", "1"],
               ["ladder", "v.mp4", "--out", "l", "--max-q", "2", "--replicates", "0"],
               ["ladder", "bad.bin", "--out", "l", "--max-q", "2", "--backbone", "pixel"],
               ["ladder", "fifo", "--out", "l", "--max-q", "2", "--backbone", "pixel"],
               ["ladder", "v.mp4", "--out", "file", "--max-q", "2", "--backbone", "pixel"],
               ["ladder", "v.mp4", "--out", "file/l", "--max-q", "2", "--backbone", "pixel"],
               ["ladder", "v.mp4", "--out", "l", "--max-q", "2", "--backbone", "bogus"],
               ["ladder", "v.mp4", "--out", "l", "--max-ap-drop", "0.1", "--detector", "onnx:missing.onnx"]],
}


def _broken(folder: Path, kind: str) -> None:
    """``broken/``: an nr-data folder whose labels.csv or dataset.json is damaged."""
    b = folder / "broken"
    shutil.copytree(folder / "data", b)
    if kind == "json":
        (b / "dataset.json").write_text("{")
    elif kind == "csv":
        (b / "labels.csv").write_text("a,b\n1,2\n")
    elif kind == "binary":
        (b / "labels.csv").write_bytes(bytes(range(256)))
    else:  # a cell that is not a number
        text = (b / "labels.csv").read_text().splitlines()
        cells = text[1].split(",")
        cells[3] = "three"
        (b / "labels.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")


def test_every_subcommand_is_covered() -> None:
    from dctqa.cli import build_parser

    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(BAD) == set(VALID), sorted(set(sub.choices) ^ set(BAD))


@pytest.mark.parametrize("argv", [a for calls in BAD.values() for a in calls], ids=lambda a: " ".join(a)[:60])
@pytest.mark.parametrize("broken", ["json"])
def test_bad_calls_fail_cleanly(argv, broken, here, capsys) -> None:
    _broken(here, broken)
    assert check_call(argv, here, capsys) == 2


@pytest.mark.parametrize("kind", ["json", "csv", "binary", "cell"])
@pytest.mark.parametrize("command", ["train-nr", "eval-nr"])
def test_damaged_data_folders_fail_cleanly(kind, command, here, capsys) -> None:
    _broken(here, kind)
    argv = (["train-nr", "broken", "--split", "seen", "--out", "m2.pt"] if command == "train-nr" else
            ["eval-nr", "m.pt", "--data", "broken", "--out", "o"])
    assert check_call(argv, here, capsys) == 2


# --- valid quick calls with one argument replaced by a hostile value ------------------------------

VALID = {
    "score": ["score", "v.mp4", "src/crf45.mp4", "--backbone", "pixel", "--quiet", "--json", "o.json",
              "--frame-stride", "2", "--metrics", "psnr,ssim", "--hwaccel", "auto"],
    "info": ["info", "--json"],
    "demo": ["demo", "--out", "d", "--frames", "0"],  # the real demo takes minutes: its checks only
    "encode": ["encode", "v.mp4", "--out", "e", "--crf", "45", "--cap-kbps", "20", "--preset", "ultrafast",
               "--quiet"],
    "study": ["study", "v.mp4", "--out", "s", "--quick", "--detector", "bogus", "--quiet"],  # checks only
    "study-tables": ["study-tables", "w.csv", "--out", "t", "--n-boot", "20", "--min-gt", "2"],
    "nr-data": ["nr-data", "v.mp4", "--out", "n", "--backbone", "bogus", "--quiet"],  # checks only
    "train-nr": ["train-nr", "data", "--split", "unseen", "--fold", "a", "--out", "m2.pt", "--epochs", "1", "--batch-size", "4",
                 "--frame-step", "2", "--width", "0.125", "--quiet"],
    "predict": ["predict", "v.mp4", "--model", "m.pt", "--json", "p.json", "--csv", "p.csv", "--max-frames", "2",
                "--quiet"],
    "export-nr": ["export-nr", "m.pt", "--onnx", "m.onnx", "--patches", "2", "--sampling", "grid", "--opset", "17"],
    "eval-nr": ["eval-nr", "t.pt", "--data", "data", "--out", "o", "--no-ablations", "--n-boot", "10",
                "--frame-step", "2", "--quiet"],
    "score-many": ["score-many", "m.csv", "--out", "sm", "--engine", "local", "--backbone", "pixel", "--quiet"],
    # checks only: one fold's 6 held-out frames are too few for a 90 % interval (it needs 9)
    "calibrate-nr": ["calibrate-nr", "t.pt", "--data", "data", "--from-folds", "t.pt", "--out", "c.pt"],
    "ladder": ["ladder", "v.mp4", "--out", "l", "--max-q", "1e9", "--backbone", "pixel", "--crf", "30,50",
               "--preset", "ultrafast", "--quiet"],
}

HOSTILE = ["", "-1", "0", "nan", "inf", "-inf", "1e300", "99999999999999999999", "v.mp4", "m.pt", "data",
           "data/labels.csv", "fifo", "file/x", "no/such/dir/x", "x\x00y", "n" * 300, "/proc/self/x", "--quiet",
           "bad.bin", "."]


@settings(max_examples=int(os.environ.get("DCTQA_FUZZ_EXAMPLES", 150)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(command=st.sampled_from(sorted(VALID)), data=st.data())
def test_one_hostile_argument(command, data, world, tmp_path_factory, capsys) -> None:
    argv = list(VALID[command])
    i = data.draw(st.integers(1, len(argv) - 1), label="position")
    argv[i] = data.draw(st.sampled_from(HOSTILE), label="value")
    folder = tmp_path_factory.mktemp("h") / "w"
    shutil.copytree(world, folder, symlinks=True)
    os.mkfifo(folder / "fifo")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        check_call(argv, folder, capsys)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("command", sorted(VALID))
def test_valid_quick_calls(command, here, capsys) -> None:
    """The starting points of the hostile test: the quick ones succeed, the check-only ones
    fail cleanly (so that the hostile test is about the argument it changed)."""
    rc = check_call(list(VALID[command]), here, capsys)
    assert rc == (2 if command in ("demo", "study", "nr-data", "calibrate-nr") else 0)


# --- issue 19 items 6-8: before any work, nothing left behind ----------------------------------

@pytest.mark.parametrize("how, rc", [("sigint", 130), ("sigterm", 143), ("enospc", 2)])
def test_encode_interrupted_leaves_no_folder(how, rc, here, capsys, monkeypatch) -> None:
    import errno

    from dctqa.cli import Terminated
    from dctqa.study import codec

    real, sent = codec._Encoder.send, []

    def send(self, frame):
        sent.append(1)
        if len(sent) == 3:
            raise {"sigint": KeyboardInterrupt(), "sigterm": Terminated(),
                   "enospc": OSError(errno.ENOSPC, "No space left on device")}[how]
        return real(self, frame)

    monkeypatch.setattr(codec._Encoder, "send", send)
    before = _state(here)
    got, err = _run(["encode", "v.mp4", "--out", "new/e", "--crf", "45", "--preset", "ultrafast", "--quiet"], capsys)
    assert got == rc and "Traceback" not in err, err
    assert _state(here) == before  # no new/, no new/e, no temporary file


@pytest.mark.parametrize("argv", [
    ["nr-data", "v.mp4", "--out", "n", "--backbone", "bogus"],
    ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--labels", "missing.csv"],
    ["nr-data", "v.mp4", "--out", "n", "--backbone", "pixel", "--labels", "w.csv"],
    ["study", "v.mp4", "--out", "s", "--quick", "--detector", "bogus"],
    ["study", "v.mp4", "--out", "s", "--quick", "--backbone", "pixel", "--detector", "fasterrcnn_resnet50_fpn",
     "--weights", "missing/w.pth"],
    ["study", "v.mp4", "--out", "s", "--quick", "--backbone", "pixel", "--device", "cuda:7"],
])
def test_late_validation_fails_before_any_encode(argv, here, capsys, monkeypatch) -> None:
    from dctqa.study import codec

    def no_encode(*a, **k):
        raise AssertionError("encoded before the arguments were checked")

    monkeypatch.setattr(codec, "encode_sweep", no_encode)
    monkeypatch.setattr("dctqa.study.pipeline.encode_sweep", no_encode)
    assert check_call(argv, here, capsys) == 2


def test_encode_caps_must_be_finite_and_bounded() -> None:
    from dctqa.errors import InputError
    from dctqa.study.codec import EncodeSettings

    for bad in ({"caps_kbps": (math.inf,)}, {"caps_kbps": (1e300,)}, {"caps_kbps": (math.nan,)},
                {"cap_bpp": (25.0,)}, {"bufsize_s": math.inf}, {"crfs": (True,)}, {"threads": -1}):
        with pytest.raises(InputError):
            EncodeSettings(**bad)
    assert EncodeSettings(caps_kbps=(1e7,)).caps_kbps == (1e7,)
