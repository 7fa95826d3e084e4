"""The no-reference model end to end on tiny synthetic data: splits, training, checkpoint,
prediction log, registry entry, evaluation tables and CLI errors."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dctqa.cli import main
from dctqa.log import write_csv
from dctqa.nr.data import DATA_FORMAT, INDICATORS, load_dataset, split_rows, window_key
from dctqa.nr.model import CheckpointError, NRConfig, NRModel
from dctqa.nr.train import TrainConfig, train
from tests.helpers import make_video

H, W, FRAMES, PATCH = 96, 128, 40, 64
CRFS = (12, 48)


def _content(seed: int) -> np.ndarray:
    """A textured scene panning right, ``FRAMES x H x W x 3`` uint8."""
    g = np.random.default_rng(seed)
    big = g.integers(0, 256, size=(H // 4, (W + FRAMES * 2) // 4, 3)).astype(np.uint8)
    big = np.kron(big, np.ones((4, 4, 1), np.uint8))
    return np.stack([big[:, 2 * i:2 * i + W] for i in range(FRAMES)])


def _tiny_config(**kw) -> TrainConfig:
    base = dict(split="seen", window=10, gap=1, every=4, frame_step=1, epochs=2, batch_size=8, lr=1e-3,
                warmup_steps=2, crops=2, open_files=4, buffer=16, workers=0, seed=0,
                model=NRConfig(width=0.125, fc=(32, 16, 8), dropout=0.0, patch=PATCH, sigma=2.0))
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two synthetic videos, two x264 variants each, labelled every 2nd frame with
    log Q = a function of the CRF (and a little of the frame)."""
    d = tmp_path_factory.mktemp("nrdata")
    rows = []
    for seed, vid in enumerate(("alpha", "beta")):
        frames = _content(seed)
        for crf in CRFS:
            path = d / f"{vid}-crf{crf}.mp4"
            make_video(path, frames, crf=crf, preset="ultrafast")
            for f in range(0, FRAMES, 2):
                q = 1.0 + (crf / 12.0) ** 2 * (1 + 0.01 * f)
                rows.append({"video": vid, "variant": f"crf{crf}", "crf": crf, "frame": f, "path": str(path),
                             "q": q, "log_q": math.log(q), **{k: crf + i + 0.1 * f for i, k in enumerate(INDICATORS)},
                             "psnr": 50 - crf / 2})
    import csv

    with open(d / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from dctqa.constants import METRIC_VERSION

    (d / "dataset.json").write_text(json.dumps({"format": DATA_FORMAT, "metric_version": METRIC_VERSION,
                                                "backbone": "onnx:test.onnx", "backbone_sha256": "ab" * 32,
                                                "target": "dctqa_spectral_test"}))
    return d


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("nrmodel") / "m.pt"
    model = train(tiny_data, out, _tiny_config(epochs=3))
    return out, model


def test_splits_share_no_window(tiny_data) -> None:
    rows, _ = load_dataset(tiny_data)
    for split, fold in (("seen", None), ("unseen", "alpha"), ("unseen", "beta")):
        tr, te = split_rows(rows, split, fold=fold, window=10, gap=1)
        assert tr and te
        assert not ({window_key(r, 10) for r in tr} & {window_key(r, 10) for r in te})
    tr, te = split_rows(rows, "seen", window=10, gap=2)
    test_frames = {r["frame"] for r in te}
    assert test_frames == set(range(30, 40, 2))  # window 3 of each video, all variants
    assert all(r["frame"] not in (28, 29) for r in tr)  # the gap before the held-out window
    assert {(r["video"], r["variant"]) for r in te} == {(v, f"crf{c}") for v in ("alpha", "beta") for c in CRFS}


def test_a_few_steps_lower_the_loss(trained) -> None:
    out, model = trained
    hist = torch.load(out, weights_only=True)["history"]
    assert len(hist) == 3 and all(h["steps"] > 0 for h in hist)
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_checkpoint_holds_provenance_and_refuses_others(trained, tmp_path) -> None:
    out, _ = trained
    ck = torch.load(out, weights_only=True)
    assert ck["config"]["width"] == 0.125 and ck["train_config"]["split"] == "seen"
    assert ck["provenance"]["backbone_sha256"] == "ab" * 32 and ck["normalisation"]["input"]["kind"] == "local contrast normalisation"
    assert ck["provenance"]["split"]["test_windows"] == ["alpha:3", "beta:3"]
    m = NRModel.load(out)
    assert m.prov.target_std > 0
    other = tmp_path / "other.pt"
    ck["provenance"]["metric_version"] = "0-old"
    torch.save(ck, other)
    with pytest.raises(CheckpointError, match="metric version"):
        NRModel.load(other)
    onnx = tmp_path / "other.onnx"
    onnx.write_bytes(b"not the training backbone")
    with pytest.raises(CheckpointError, match="backbone"):
        NRModel.load(out, backbone=f"onnx:{onnx}")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        NRModel.load(tmp_path / "junk.pt")


def test_resume_continues_and_refuses_other_settings(tiny_data, tmp_path) -> None:
    out = tmp_path / "r.pt"
    train(tiny_data, out, _tiny_config(epochs=1))
    train(tiny_data, out, _tiny_config(epochs=2), resume=True)
    ck = torch.load(out, weights_only=True)
    assert ck["epoch"] == 2 and [h["epoch"] for h in ck["history"]] == [1, 2]
    from dctqa.errors import InputError

    with pytest.raises(InputError, match="other settings"):
        train(tiny_data, out, _tiny_config(epochs=3, lr=5e-4), resume=True)


def test_predict_api_registry_and_log(trained, tiny_data, tmp_path) -> None:
    out, _ = trained
    model = NRModel.load(out)
    frames = _content(3)[:3]
    for sampling in ("activation", "uniform", "grid"):
        q = model.predict(frames, patches=2, sampling=sampling)
        assert q.shape == (3,) and np.all(np.isfinite(q)) and np.all(q > 0)
    assert np.array_equal(model.predict(frames, seed=4), model.predict(frames, seed=4))
    from dctqa.registry import create_metric, list_metrics

    info = {m.name: m for m in list_metrics()}["dctqa_nr"]
    assert info.kind == "NR" and info.lower_better
    metric = create_metric("dctqa_nr", model=str(out))
    assert isinstance(metric.score(frames[0]), float)
    log_path = tmp_path / "p.json"
    rc = main(["predict", str(tiny_data / "alpha-crf48.mp4"), "--model", str(out), "--json", str(log_path),
               "--patches", "2", "--quiet"])
    assert rc == 0
    log = json.loads(log_path.read_text())
    assert [f["frameNum"] for f in log["frames"]] == list(range(FRAMES))
    assert all(f["metrics"]["dctqa_nr"] > 0 for f in log["frames"])
    assert set(log["pooled_metrics"]["dctqa_nr"]) >= {"mean", "min", "max", "harmonic_mean"}
    assert log["params"]["sampling"] == "activation" and log["params"]["metric"] == "dctqa_nr"


def test_core_does_not_import_the_wing() -> None:
    code = ("import sys, dctqa, dctqa.registry, dctqa.cli; dctqa.registry.list_metrics(); "
            "assert 'dctqa.nr.model' not in sys.modules, sorted(m for m in sys.modules if 'nr' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_tables(trained, tiny_data, tmp_path) -> None:
    from dctqa.nr.evaluate import evaluate

    out, _ = trained
    t = evaluate([out], tiny_data, tmp_path / "ev", frame_step=2, ablation_step=4, n_boot=20)
    pooled = [r for r in t["metrics"] if r["scope"] == "pooled" and r["predictor"] == "nr"][0]
    assert pooled["frames"] == 2 * 2 * 5 and pooled["windows"] == 2
    assert {(r["sampling"], r["patches"]) for r in t["ablations"]} >= {("activation", 4), ("grid", 2)}
    assert (tmp_path / "ev" / "nr_results.md").read_text().startswith("# No-reference")


def test_eval_paired_with_an_earlier_evaluation(trained, tiny_data, tmp_path) -> None:
    from dctqa.errors import InputError
    from dctqa.nr.evaluate import evaluate

    out, _ = trained
    kw = dict(frame_step=2, ablation_step=4, n_boot=20, ablations=False)
    evaluate([out], tiny_data, tmp_path / "a", **kw)
    t = evaluate([out], tiny_data, tmp_path / "b", paired_with=tmp_path / "a" / "frames.csv", **kw)
    (p,) = t["paired"]  # the same model against itself: equal SROCC, difference exactly 0
    assert p["model"] == "seen" and p["frames"] == 20 and p["srocc"] == p["srocc_other"]
    assert p["difference"] == p["difference_lo"] == p["difference_hi"] == 0.0
    assert "Paired with an earlier evaluation" in (tmp_path / "b" / "nr_results.md").read_text()
    rows = list(csv.DictReader(open(tmp_path / "a" / "frames.csv")))
    for edit, msg in ((lambda r: r[1:], "lacks 1 of the 20 frames"), (lambda r: [dict(x, model="other") for x in r],
                                                                       "none of the models")):
        write_csv(tmp_path / "c.csv", edit(rows))
        with pytest.raises(InputError, match=msg):
            evaluate([out], tiny_data, tmp_path / "b", paired_with=tmp_path / "c.csv", **kw)


@pytest.mark.parametrize("argv, msg", [
    (["predict", "x.mp4", "--model", "missing.pt"], "no such file"),
    (["train-nr", ".", "--split", "seen", "--out", "m.pt"], "not an nr-data folder"),
    (["eval-nr", "missing.pt", "--data", ".", "--out", "o"], "not an nr-data folder"),
])
def test_cli_errors(argv, msg, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and msg in err


def test_cli_bad_options(trained, tiny_data, capsys) -> None:
    out, _ = trained
    with pytest.raises(SystemExit) as exc:  # argparse refuses it before any work
        main(["predict", str(tiny_data / "alpha-crf12.mp4"), "--model", str(out), "--patches", "0"])
    assert exc.value.code == 2 and "--patches" in capsys.readouterr().err
    assert main(["train-nr", str(tiny_data), "--split", "unseen", "--fold", "gamma", "--out", "x.pt"]) == 2
    assert "--fold" in capsys.readouterr().err


def test_checkpoint_stores_its_target_column_and_window(trained, tmp_path) -> None:
    """train-nr writes the target column and the content window into the provenance; a
    checkpoint from before (neither stored, or the old placeholder target) gets its backbone's
    spectral column and its split's window; one whose backbone names no column is refused."""
    from dctqa.nr.model import read_provenance

    out, _ = trained
    ck = torch.load(out, weights_only=True)
    assert ck["provenance"]["target"] == "dctqa_spectral_test" and ck["provenance"]["window"] == 10
    for legacy in ({"target": "dctqa_spectral"}, {}):
        old = dict(ck, provenance={k: v for k, v in ck["provenance"].items() if k not in ("target", "window")})
        old["provenance"].update(legacy)
        torch.save(old, tmp_path / "old.pt")
        prov = read_provenance(tmp_path / "old.pt")
        assert (prov.target, prov.window) == ("dctqa_spectral_test", 10)
        assert NRModel.load(tmp_path / "old.pt").prov.target == "dctqa_spectral_test"
    for bad, msg in (({"target": None, "backbone": ""}, "names no target column"),
                     ({"window": 0}, "provenance window is 0"), ({"target": 3}, "provenance target is 3")):
        torch.save(dict(ck, provenance={**ck["provenance"], **bad}), tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=msg):
            NRModel.load(tmp_path / "bad.pt")


def _study_windows(path, column: str) -> None:
    """A study windows.csv over tiny_data's variants: 10-frame windows, AP falling with the CRF,
    the full-reference column ``column`` rising with it."""
    rows = [{"video": v, "variant": f"crf{c}", "window_start": s, "window_end": s + 10, "ap": 0.9 - c / 100 - s / 1000,
             "ap50": 0.95 - c / 100 - s / 1000, "psnr": 50 - c / 2, column: 1 + c / 10 + s / 1000}
            for v in ("alpha", "beta") for c in CRFS for s in range(0, FRAMES, 10)]
    write_csv(path, rows)


def test_eval_windows_use_the_checkpoint_target_and_the_study_windows(trained, tiny_data, tmp_path) -> None:
    """The window table reads the checkpoint's target column (not a fixed YOLOX-Nano name) and
    pools each held-out frame into the study window holding it (not a fixed 100 frames)."""
    from dctqa.errors import InputError
    from dctqa.nr.evaluate import evaluate

    out, _ = trained
    kw = dict(frame_step=2, ablation_step=4, n_boot=20, ablations=False)
    _study_windows(tmp_path / "w.csv", "dctqa_spectral_test")
    t = evaluate([out], tiny_data, tmp_path / "ev", windows_csv=tmp_path / "w.csv", **kw)
    fr = {r["score"]: r for r in t["windows"] if r["target"] == "ap50"}
    assert set(fr) == {"dctqa_nr", "ridge", "full_reference_q", "psnr"}
    assert fr["full_reference_q"]["windows"] == 4  # held-out window 30..39 of 2 videos x 2 variants
    assert fr["full_reference_q"]["srocc"] > 0.7  # -Q against AP: both fall with the CRF
    _study_windows(tmp_path / "w2.csv", "dctqa_spectral_yolox_nano")
    with pytest.raises(InputError, match="dctqa_spectral_test"):
        evaluate([out], tiny_data, tmp_path / "ev2", windows_csv=tmp_path / "w2.csv", **kw)
    other = tmp_path / "other_data"
    other.mkdir()
    (other / "labels.csv").write_bytes((tiny_data / "labels.csv").read_bytes())
    meta = json.loads((tiny_data / "dataset.json").read_text())
    (other / "dataset.json").write_text(json.dumps(dict(meta, target="dctqa_spectral_other")))
    with pytest.raises(InputError, match="was trained on targets 'dctqa_spectral_test'"):
        evaluate([out], other, tmp_path / "ev3", **kw)
