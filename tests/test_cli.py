"""The command line, end to end, through ``dctqa.cli.main`` (no subprocess needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dctqa.cli import main
from tests.helpers import make_video


@pytest.fixture
def clips(tmp_path, rng):
    """A reference clip (lossless-ish) and a strongly compressed one, 12 frames of 48x64."""
    base = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    frames = np.clip(base + np.arange(12)[:, None, None, None] * 3, 0, 255).astype(np.uint8)
    ref, dist = tmp_path / "ref.mp4", tmp_path / "dist.mp4"
    make_video(ref, frames, crf=0)
    make_video(dist, frames, crf=45)
    return ref, dist, frames


def test_score_writes_vmaf_style_json_and_csv(clips, tmp_path, capsys):
    ref, dist, frames = clips
    js, cs = tmp_path / "log.json", tmp_path / "log.csv"
    rc = main(["score", str(ref), str(dist), "--backbone", "pixel", "--json", str(js), "--csv", str(cs),
               "--quiet"])
    assert rc == 0
    log = json.loads(js.read_text())
    assert set(log) == {"version", "params", "frames", "pooled_metrics"}
    assert log["params"]["backbone"] == "pixel" and log["params"]["metric_version"] == 1
    assert log["params"]["reference_frames"] == log["params"]["distorted_frames"] == 12
    q = np.array([f["metrics"]["dctqa"] for f in log["frames"]])
    assert [f["frameNum"] for f in log["frames"]] == list(range(12))
    assert (q > 1).all()
    pooled = log["pooled_metrics"]["dctqa"]
    assert pooled["mean"] == pytest.approx(q.mean()) and pooled["max"] == pytest.approx(q.max())
    assert pooled["harmonic_mean"] == pytest.approx(len(q) / np.sum(1 / q))
    rows = cs.read_text().splitlines()
    assert rows[0] == "frame,dctqa" and len(rows) == 13
    out = capsys.readouterr().out
    assert "frames scored: 12" in out


def test_score_matches_api(clips, tmp_path, yolox_backbone):
    import dctqa
    from dctqa.io import read_frames

    ref, dist, _ = clips
    js = tmp_path / "log.json"
    assert main(["score", str(ref), str(dist), "--backbone", yolox_backbone, "--json", str(js), "--quiet"]) == 0
    q = [f["metrics"]["dctqa"] for f in json.loads(js.read_text())["frames"]]
    expected = dctqa.Metric(yolox_backbone).score(read_frames(ref), read_frames(dist))
    np.testing.assert_allclose(q, expected, rtol=1e-9)


def test_different_frame_counts_warn_and_are_logged(tmp_path, rng, capsys):
    frames = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    ref, dist = tmp_path / "ref.mp4", tmp_path / "dist.mp4"
    make_video(ref, frames, crf=0)
    make_video(dist, frames[:7], crf=30)
    js = tmp_path / "log.json"
    assert main(["score", str(ref), str(dist), "--backbone", "pixel", "--json", str(js), "--quiet"]) == 0
    log = json.loads(js.read_text())
    assert log["params"]["reference_frames"] == 10 and log["params"]["distorted_frames"] == 7
    assert len(log["frames"]) == 7
    assert "frame counts differ" in capsys.readouterr().err


def test_size_mismatch_errors_unless_scaled(tmp_path, rng, capsys):
    ref, dist = tmp_path / "ref.mp4", tmp_path / "dist.mp4"
    make_video(ref, rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8), crf=0)
    make_video(dist, rng.integers(0, 256, (4, 16, 24, 3), dtype=np.uint8), crf=0)
    js = tmp_path / "log.json"
    assert main(["score", str(ref), str(dist), "--backbone", "pixel", "--json", str(js)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: reference is 48x32 but distorted is 24x16") and "Traceback" not in err
    assert not js.exists()
    assert main(["score", str(ref), str(dist), "--backbone", "pixel", "--json", str(js), "--scale", "--quiet"]) == 0
    assert json.loads(js.read_text())["params"]["scaled"] is True


@pytest.mark.parametrize("args,message", [
    (["score", "{missing}", "{ref}", "--backbone", "pixel"], "no such file"),
    (["score", "{junk}", "{ref}", "--backbone", "pixel"], "cannot read it as an image or video"),
    (["score", "{ref}", "{ref}", "--backbone", "nope"], "unknown backbone 'nope'"),
    (["score", "{ref}", "{ref}", "--backbone", "fasterrcnn_resnet50_fpn", "--weights", "{missing}"],
     "does not exist"),
    (["score", "{ref}", "{gray}", "--backbone", "pixel"], "grayscale"),
])
def test_bad_input_exits_2_with_message_and_no_output(args, message, clips, tmp_path, capsys, rng):
    from PIL import Image

    ref = clips[0]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)).save(tmp_path / "gray.png")
    fill = {"ref": str(ref), "missing": str(tmp_path / "missing.mp4"), "junk": str(junk),
            "gray": str(tmp_path / "gray.png")}
    js = tmp_path / "out.json"
    argv = [a.format(**fill) for a in args] + ["--json", str(js)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not js.exists() and not list(tmp_path.glob(".out.json*"))


def test_output_into_missing_folder_is_an_error(clips, tmp_path, capsys):
    ref, dist, _ = clips
    assert main(["score", str(ref), str(dist), "--backbone", "pixel", "--json",
                 str(tmp_path / "nope" / "log.json"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_lists_implementations(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backends"]["torch"] is True and "onnx:PATH" in info["backbones"]
    names = {m["name"]: m for m in info["metrics"]}
    assert names["dctqa"]["lower_better"] is True and names["psnr"]["lower_better"] is False
