"""``dctqa study --nr-model``: the no-reference column ``dctqa_nr`` in the study's tables,
its cache, and a bad checkpoint refused before any encoding (tiny synthetic run, CPU)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dctqa.cli import main
from dctqa.constants import METRIC_VERSION
from dctqa.fileio import file_sha256
from dctqa.nr.model import NRConfig, NRModel, Provenance
from dctqa.nr.predict import predict_video
from dctqa.study import StudyConfig, run_study
from dctqa.study.codec import EncodeSettings
from tests.test_study import BrightBlobDetector, blob_clip, read_csv, write_lossless

FRAMES, WINDOW, STRIDE = 30, 10, 2


def make_checkpoint(path, *, backbone_sha256: str = "ab" * 32, metric_version=METRIC_VERSION, patch: int = 64,
                    seed: int = 0):
    """A tiny untrained no-reference checkpoint (random weights, seeded): enough for the plumbing."""
    torch.manual_seed(seed)
    cfg = NRConfig(width=0.125, fc=(32, 16, 8), dropout=0.0, patch=patch, sigma=2.0)
    prov = Provenance(metric_version=metric_version, backbone="onnx:test.onnx", backbone_sha256=backbone_sha256,
                      target_mean=0.3, target_std=0.2)
    NRModel(cfg, prov).save(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("nrclip") / "blobs.mkv"
    write_lossless(path, blob_clip(n=FRAMES))
    return path


def test_study_adds_a_cached_dctqa_nr_column(clip, tmp_path, monkeypatch):
    ck = make_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "study"
    cfg = StudyConfig(videos=[clip], out=out, encode=EncodeSettings(crfs=(20, 51), cap_bpp=(), preset="ultrafast"),
                      backbones=[], pixel=True, baselines=("psnr", "blockiness"), detector=BrightBlobDetector(),
                      frame_stride=1, metric_stride=STRIDE, window=WINDOW, n_boot=50, sensitivity_gt=(),
                      sensitivity_pred=(), nr_model=ck)
    seen = []
    real = NRModel.predict_video

    def recorded(self, video, **options):
        seen.append(video)
        return real(self, video, **options)

    monkeypatch.setattr(NRModel, "predict_video", recorded)
    res = run_study(cfg)
    # only the compressed variants are predicted, never the reference
    assert sorted(map(str, seen)) == sorted(str(v.path) for v in res.variants["blobs"])
    rows = read_csv(out / "windows.csv")
    assert len(rows) == 2 * FRAMES // WINDOW
    keys = list(rows[0])
    assert keys.index("dctqa_pixel") < keys.index("dctqa_nr") < keys.index("psnr")
    model = NRModel.load(ck)
    for v in res.variants["blobs"]:  # the scored frames, as `dctqa predict VARIANT --frame-stride 2` predicts them
        fr = res.frames["blobs"][v.name]
        pred = predict_video(model, v.path, frame_stride=STRIDE)
        assert list(fr["frame_indices"]) == list(range(0, FRAMES, STRIDE)) == list(pred.frame_numbers)
        assert np.allclose(fr["dctqa_nr"], pred.q, rtol=1e-12)
    for row in rows:  # one finite value per window: the mean over its scored frames
        fr = res.frames[row["video"]][row["variant"]]
        sel = (fr["frame_indices"] >= int(row["window_start"])) & (fr["frame_indices"] < int(row["window_end"]))
        assert sel.sum() == WINDOW // STRIDE
        assert math.isfinite(float(row["dctqa_nr"])) and float(row["dctqa_nr"]) > 0
        assert float(row["dctqa_nr"]) == pytest.approx(fr["dctqa_nr"][sel].mean(), rel=1e-5)
    # an indicator in the correlation tables (like blockiness), not the primary/compared dctqa column
    corr = {(c["target"], c["metric"]) for c in read_csv(out / "correlations.csv") if c["subset"] == "all"}
    assert {("ap", "dctqa_nr"), ("ap50", "dctqa_nr"), ("ap", "blockiness")} <= corr
    assert res.analysis.settings.primary == "dctqa_pixel" and "dctqa_nr" not in res.analysis.settings.compared
    assert "dctqa_nr" in read_csv(out / "frames.csv")[0]
    assert "`dctqa_nr`: Q predicted from the compressed frames alone" in (out / "report.md").read_text()

    # a rerun reuses the nr stage: no prediction at all, the same table
    before = (out / "windows.csv").read_text()
    nr_files = sorted((out / "cache" / "nr").iterdir())
    assert len(nr_files) == 2

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted again instead of reusing the nr stage")

    monkeypatch.setattr(NRModel, "predict_log", no_prediction)
    res2 = run_study(cfg)
    assert (out / "windows.csv").read_text() == before
    assert res2.timings["nr"]["this_run_s"] == 0.0 and res2.timings["nr"]["computed_s"] > 0
    assert sorted((out / "cache" / "nr").iterdir()) == nr_files
    # the key is the checkpoint's content (a copy elsewhere reuses it) and the sampling settings
    import shutil

    shutil.copy(ck, tmp_path / "copy.pt")
    run_study(StudyConfig(**{**cfg.__dict__, "nr_model": tmp_path / "copy.pt"}))
    assert sorted((out / "cache" / "nr").iterdir()) == nr_files
    monkeypatch.undo()
    grid = run_study(StudyConfig(**{**cfg.__dict__, "nr_sampling": "grid", "nr_patches": 1}))
    retrained = run_study(StudyConfig(**{**cfg.__dict__, "nr_model": make_checkpoint(tmp_path / "m2.pt", seed=1)}))
    assert len(list((out / "cache" / "nr").iterdir())) == 6
    for r in (grid, retrained):
        assert [w["dctqa_nr"] for w in r.windows] != [w["dctqa_nr"] for w in res.windows]


@pytest.mark.parametrize("case, msg", [
    ("missing", "does not exist"),
    ("junk", "not a readable dctqa_nr checkpoint"),
    ("version", "metric version"),
    ("backbone", "trained on Q of backbone"),
    ("small", "the model needs at least 112x112"),
])
def test_bad_checkpoint_fails_before_encoding(case, msg, clip, tmp_path, capsys):
    onnx = tmp_path / "backbone.onnx"
    onnx.write_bytes(b"stands in for the study's backbone (never run: the error comes first)")
    sha = file_sha256(onnx)
    ck = tmp_path / "m.pt"
    if case == "junk":
        ck.write_bytes(b"not a checkpoint")
    elif case == "version":
        make_checkpoint(ck, backbone_sha256=sha, metric_version="0-old")
    elif case == "backbone":
        make_checkpoint(ck)
    elif case == "small":  # 112-pixel patches do not fit the clip's 96 x 128 frames
        make_checkpoint(ck, backbone_sha256=sha, patch=112)
    out = tmp_path / "study"
    rc = main(["study", str(clip), "--out", str(out), "--backbone", f"onnx:{onnx}", "--detector", f"onnx:{onnx}",
               "--nr-model", str(ck), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and msg in err, err
    assert not out.exists()  # nothing encoded, no output folder


@pytest.mark.parametrize("opts", [["--nr-patches", "0"], ["--nr-sampling", "random"]])
def test_bad_nr_options(opts, clip, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", str(clip), "--out", str(tmp_path / "s"), "--nr-model", "m.pt", *opts])
    assert exc.value.code == 2 and "--nr-" in capsys.readouterr().err


def test_help_mentions_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert "--nr-model" in text and "--nr-patches" in text and "--nr-sampling" in text


@pytest.mark.parametrize("bad, msg", [({"nr_patches": 0}, r"patches must be an integer in 1\.\.256"),
                                      ({"nr_sampling": "random"}, "unknown sampling")])
def test_api_bad_nr_settings_fail_before_any_output(bad, msg, clip, tmp_path):
    from dctqa.errors import InputError

    out = tmp_path / "study"
    cfg = StudyConfig(videos=[clip], out=out, backbones=[], detector=BrightBlobDetector(),
                      nr_model=make_checkpoint(tmp_path / "m.pt"), **bad)
    with pytest.raises(InputError, match=msg):
        run_study(cfg)
    assert not out.exists()
