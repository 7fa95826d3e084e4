"""The model that holds nothing out (issue 22, the shipped default): ``train-nr --split all``
and its 90 % interval from leave-one-video-out fold models (``dctqa calibrate-nr MODEL --data
DATA --from-folds FOLD.pt ...``): the quantile recomputed by hand from the folds' own
predictions, in log Q (the folds standardise differently: here the two videos' labels
differ, so pooling z would give another number), the refusals, and the ONNX export carrying
the calibration.

Tiny synthetic data (tests/test_nr.py's two videos), one training epoch per model."""
from __future__ import annotations

import csv
import hashlib
import math
import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch

from dctqa.cli import main
from dctqa.errors import InputError
from dctqa.nr.model import CheckpointError, NRModel
from tests.test_nr import _tiny_config, tiny_data  # noqa: F401  (tiny_data: a fixture)


@pytest.fixture(scope="module")
def skewed(tiny_data, tmp_path_factory):  # noqa: F811
    """tiny_data with beta's log Q stretched by 1.6, so the two folds' target_std differ."""
    d = tmp_path_factory.mktemp("skewed")
    shutil.copy(tiny_data / "dataset.json", d / "dataset.json")
    with open(tiny_data / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["video"] == "beta":
            r["log_q"] = repr(1.6 * float(r["log_q"]))
            r["q"] = repr(math.exp(float(r["log_q"])))
    with open(d / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return d


@pytest.fixture(scope="module")
def models(skewed, tmp_path_factory):
    """``{"all": path, "alpha": fold path, "beta": fold path}``, one epoch each."""
    from dctqa.nr.train import train

    d = tmp_path_factory.mktemp("folds")
    out = {"all": d / "all.pt", "alpha": d / "fold-alpha.pt", "beta": d / "fold-beta.pt"}
    train(skewed, out["all"], _tiny_config(split="all", epochs=1))
    for v in ("alpha", "beta"):
        train(skewed, out[v], _tiny_config(split="unseen", fold=v, epochs=1))
    return out


def _by_hand(path, rows, step: int = 1) -> np.ndarray:
    """|log q_pred - log q_true| of fold ``path`` on its held-out video's frames (multiples of
    ``step``), each frame decoded and predicted on its own: 2 activation patches, seed = frame."""
    from dctqa.io import iter_frames

    model = NRModel.load(path)
    fold = torch.load(path, weights_only=True)["train_config"]["fold"]
    decoded: dict[str, list] = {}
    out = []
    for r in rows:
        if r["video"] != fold or r["frame"] % step:
            continue
        frames = decoded.setdefault(r["path"], list(iter_frames(r["path"])))
        q = model.predict(frames[r["frame"]], patches=2, sampling="activation", seed=r["frame"])[0]
        out.append(abs(math.log(q) - r["log_q"]))
    return np.array(out)


def test_split_all_trains_on_everything_and_holds_nothing_out(models, skewed) -> None:
    from dctqa.nr.data import load_dataset
    from dctqa.nr.train import TrainConfig, train_rows

    rows, _ = load_dataset(skewed)
    ck = torch.load(models["all"], weights_only=True)
    split = ck["provenance"]["split"]
    assert split["split"] == "all" and split["test_frames"] == 0 and split["test_windows"] == []
    assert split["train_frames"] == len(rows) == 80  # every labelled frame of both videos
    y = np.array([r["log_q"] for r in rows])
    assert ck["provenance"]["target_std"] == pytest.approx(float(y.std()), rel=1e-12)
    # the training-only extras train too (they always did); nothing is ever held out
    extra = [dict(rows[0], video="skimage-x", train_only=True)]
    train, test = train_rows(rows + extra, TrainConfig(split="all", frame_step=4))
    assert test == [] and extra[0] in train and len(train) == 41
    with pytest.raises(InputError, match="holds no video out"):
        TrainConfig(split="all", fold="alpha")


def test_a_split_all_model_cannot_calibrate_or_evaluate_on_itself(models, skewed, tmp_path, capsys) -> None:
    from dctqa.nr.calibrate import calibrate_checkpoint

    with pytest.raises(InputError, match="holds no frames out.*calibrate-nr"):
        calibrate_checkpoint(models["all"], skewed, tmp_path / "x.pt")
    assert main(["eval-nr", str(models["all"]), "--data", str(skewed), "--out", str(tmp_path / "ev"),
                 "--no-ablations", "--quiet"]) == 2
    assert "--split all" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


def test_train_nr_split_all_skips_the_own_window_calibration(models, skewed, tmp_path, monkeypatch, capsys) -> None:
    import dctqa.nr.calibrate as calibrate
    import dctqa.nr.train as train_mod

    seen = {}

    def fake_train(data, out, cfg, **kw):
        seen["cfg"] = cfg
        return NRModel.load(models["all"])

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(calibrate, "calibrate_checkpoint", lambda *a, **k: pytest.fail("calibrated on itself"))
    assert main(["train-nr", str(skewed), "--split", "all", "--out", str(tmp_path / "m.pt"), "--quiet"]) == 0
    assert seen["cfg"].split == "all" and seen["cfg"].fold is None
    assert "calibrate-nr" in capsys.readouterr().err


def test_quantile_from_folds_by_hand(models, skewed, tmp_path) -> None:
    from dctqa.nr.calibrate import calibrate_from_folds
    from dctqa.nr.data import load_dataset

    rows, _ = load_dataset(skewed)
    before = models["all"].read_bytes()
    out = tmp_path / "cal.pt"
    cal = calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], out, frame_step=4)
    assert models["all"].read_bytes() == before  # --out given: the model itself untouched
    res = {v: _by_hand(models[v], rows, step=4) for v in ("alpha", "beta")}
    pooled = np.sort(np.concatenate([res["alpha"], res["beta"]]))
    n = len(pooled)
    k = math.ceil((n + 1) * Fraction(9, 10))
    # frames 0, 4, ..., 36 of 2 variants of each held-out video
    assert (n, k) == (40, 37) and (cal["frames"], cal["rank"]) == (n, k)
    assert cal["quantile_log_q"] == pytest.approx(pooled[k - 1], rel=1e-9)
    std_all = NRModel.load(models["all"]).prov.target_std
    assert cal["quantile_z"] == pytest.approx(pooled[k - 1] / std_all, rel=1e-9)
    # the folds' own units differ: pooling z would not give this quantile
    stds = {v: NRModel.load(models[v]).prov.target_std for v in ("alpha", "beta")}
    assert abs(stds["alpha"] / stds["beta"] - 1) > 0.2
    z_pooled = np.sort(np.concatenate([res[v] / stds[v] for v in ("alpha", "beta")]))
    assert abs(z_pooled[k - 1] * std_all - pooled[k - 1]) > 1e-3
    # the source is recorded: each fold's file, video, frames and own quantile
    assert cal["source"] == "folds" and cal["videos"] == ["alpha", "beta"]
    for f, v in zip(cal["folds"], ("alpha", "beta")):
        kv = math.ceil((len(res[v]) + 1) * Fraction(9, 10))
        assert f["video"] == v and f["frames"] == 20 and f["path"] == str(models[v])
        assert f["sha256"] == hashlib.sha256(models[v].read_bytes()).hexdigest()
        assert f["quantile_log_q"] == pytest.approx(np.sort(res[v])[kv - 1], rel=1e-9)
    # the calibrated checkpoint: the rest kept, the interval's half-width in log Q is the quantile
    a, b = torch.load(models["all"], weights_only=True), torch.load(out, weights_only=True)
    assert b["calibration"] == cal and b["train_config"] == a["train_config"]
    assert all(torch.equal(a["state_dict"][key], b["state_dict"][key]) for key in a["state_dict"])
    model = NRModel.load(out)
    from tests.test_nr import _content

    q, low, high = model.predict_interval(_content(7)[:3])
    np.testing.assert_allclose(np.log(high / q), cal["quantile_log_q"], rtol=1e-9)
    assert np.all(low < q) and np.all(q < high)


def test_the_command_and_a_frame_step(models, skewed, tmp_path, capsys) -> None:
    out = tmp_path / "c.pt"
    assert main(["calibrate-nr", str(models["all"]), "--data", str(skewed), "--from-folds", str(models["alpha"]),
                 str(models["beta"]), "--frame-step", "8", "--out", str(out)]) == 0
    cal = torch.load(out, weights_only=True)["calibration"]
    # frames 0, 8, 16, 24, 32 of 2 variants per video
    assert cal["frames"] == 20 and [f["frames"] for f in cal["folds"]] == [10, 10]
    assert [f["frame_step"] for f in cal["folds"]] == [8, 8]
    assert "interval from 2 folds" in capsys.readouterr().out
    # in place (no --out): replaced atomically, still loadable
    inplace = tmp_path / "in.pt"
    shutil.copy(models["all"], inplace)
    assert main(["calibrate-nr", str(inplace), "--data", str(skewed), "--from-folds", str(models["alpha"]),
                 str(models["beta"]), "--frame-step", "8"]) == 0
    assert NRModel.load(inplace).calibration["quantile_z"] == cal["quantile_z"]


def _altered(src, dst, **changes):
    ck = torch.load(src, weights_only=True)
    for where, values in changes.items():
        ck[where] = {**ck[where], **values}
    torch.save(ck, dst)
    return dst


@pytest.mark.parametrize("where, change, message", [
    ("config", {"width": 0.25}, "width"),
    ("config", {"sigma": 3.0}, "sigma"),
    ("config", {"patch": 72}, "patch"),
    ("provenance", {"metric_version": "0"}, "metric_version"),
    ("provenance", {"backbone_sha256": "cd" * 32}, "backbone_sha256"),
    ("provenance", {"target": "dctqa_spectral_other"}, "target"),
    ("train_config", {"split": "seen", "fold": None}, "leave-one-video-out"),
])
def test_a_fold_of_another_configuration_is_refused(models, skewed, tmp_path, where, change, message) -> None:
    from dctqa.nr.calibrate import calibrate_from_folds

    bad = _altered(models["beta"], tmp_path / "bad.pt", **{where: change})
    with pytest.raises(CheckpointError, match=message):
        calibrate_from_folds(models["all"], skewed, [models["alpha"], bad], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_other_refusals(models, skewed, tmp_path, capsys) -> None:
    from dctqa.nr.calibrate import calibrate_from_folds

    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="split is 'all'"):  # the model itself is no fold
        calibrate_from_folds(models["all"], skewed, [models["all"]], out)
    with pytest.raises(InputError, match="more than one fold holds out"):
        calibrate_from_folds(models["all"], skewed, [models["alpha"], models["alpha"]], out)
    with pytest.raises(InputError, match="needs 9"):  # frames 0 and 32 of 2 variants x 2 videos
        calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], out, frame_step=32)
    with pytest.raises(InputError, match="at least one fold"):
        calibrate_from_folds(models["all"], skewed, [], out)
    before = models["all"].read_bytes()
    argv = ["calibrate-nr", str(models["all"]), "--data", str(skewed), "--from-folds"]
    assert main(argv + [str(models["alpha"]), str(tmp_path / "missing.pt")]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse's own refusal
        main(argv + [str(models["alpha"]), "--frame-step", "0"])
    assert exc.value.code == 2
    assert main(argv + [str(models["all"])]) == 2
    assert "error:" in capsys.readouterr().err
    assert models["all"].read_bytes() == before and not out.exists()


def test_the_onnx_export_carries_the_fold_calibration(models, skewed, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[nr]')")
    pytest.importorskip("onnx", reason="the export needs onnx")
    from dctqa.nr.calibrate import calibrate_from_folds
    from dctqa.nr.export import export_onnx
    from dctqa.nr.onnx_model import OnnxNRModel
    from tests.test_nr import _content

    cal = calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], tmp_path / "c.pt",
                               frame_step=4)
    export_onnx(tmp_path / "c.pt", tmp_path / "c.onnx")
    ort = OnnxNRModel.load(tmp_path / "c.onnx")
    assert ort.calibration == cal and ort.calibration["folds"][1]["video"] == "beta"
    frames = _content(3)[:2]
    q, low, high = ort.predict_interval(frames)
    tq, tlow, thigh = NRModel.load(tmp_path / "c.pt").predict_interval(frames)
    assert np.max(np.abs(low - tlow)) < 1e-4 and np.max(np.abs(high - thigh)) < 1e-4
    np.testing.assert_allclose(np.log(high / q), cal["quantile_log_q"], rtol=1e-9)


def test_leave_one_fold_out_coverage_and_the_placement(models, skewed, tmp_path) -> None:
    """Each fold's coverage by the quantile of the *other* folds' residuals, by hand; the
    residuals are predicted with the placement asked for, and both are recorded."""
    from dctqa.nr.calibrate import calibrate_from_folds, fold_residuals, leave_one_fold_out
    from dctqa.nr.conformal import conformal_quantile
    from dctqa.nr.data import load_dataset

    rows, _ = load_dataset(skewed)
    cal = calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], tmp_path / "g.pt",
                               frame_step=4, patches=3, sampling="grid")
    assert (cal["patches"], cal["sampling"]) == (3, "grid")
    model = NRModel.load(models["all"])
    pred = {"patches": 3, "sampling": "grid", "seed": 0}
    parts = [fold_residuals(models[v], model, rows, 4, prediction=pred) for v in ("alpha", "beta")]
    pooled = np.concatenate([r for r, _ in parts])
    assert cal["quantile_log_q"] == pytest.approx(conformal_quantile(pooled, 0.1), rel=1e-12)
    act = calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], tmp_path / "a.pt",
                               frame_step=4)
    assert act["quantile_log_q"] != cal["quantile_log_q"]  # another placement, other residuals
    lofo = cal["leave_one_fold_out"]
    assert lofo == leave_one_fold_out(parts)
    for i, f in enumerate(lofo):
        mine, other = parts[i][0], parts[1 - i][0]
        q = conformal_quantile(other, 0.1)
        assert f["video"] == ("alpha", "beta")[i] and f["quantile_log_q"] == q
        assert f["coverage"] == pytest.approx(float(np.mean(mine <= q)))
    # one fold alone: nothing to calibrate the held-out video's interval from
    assert leave_one_fold_out(parts[:1])[0]["coverage"] is None


def test_install_refuses_a_recommendation_the_interval_was_not_calibrated_for(models, skewed, tmp_path,
                                                                             monkeypatch) -> None:
    from dctqa.nr import calibrate, default

    monkeypatch.setattr(default, "MODELS_DIR", tmp_path / "models")
    ck = tmp_path / "grid.pt"
    calibrate.calibrate_from_folds(models["all"], skewed, [models["alpha"], models["beta"]], ck, frame_step=4,
                                   patches=3, sampling="grid")
    with pytest.raises(CheckpointError, match="calibrated on 3 grid.*recommend 2 activation"):
        default.install(ck, patches=2, sampling="activation")
    assert not (tmp_path / "models" / "nr-default.pt").exists()
    assert default.install(ck, patches=3, sampling="grid").is_file()
    assert default.read_default_info()["calibration"]["sampling"] == "grid"
