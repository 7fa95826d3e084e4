"""Per-frame 90 % intervals of the no-reference model (issue 22, part 3): the split conformal
quantile, its coverage on exchangeable data, the map to Q, calibration of a trained
checkpoint on half its held-out windows, coverage in eval-nr, the JSON/CSV log, old
checkpoints without a calibration, and agreement of the torch and ONNX backends."""
from __future__ import annotations

import csv
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from dctqa.cli import main
from dctqa.errors import InputError
from dctqa.nr.conformal import (ALPHA, conformal_quantile, interval, make_calibration, min_frames,
                                quantile_rank)
from dctqa.nr.model import CheckpointError, NRModel
from tests.test_nr import FRAMES, _content, _tiny_config, tiny_data  # noqa: F401  (tiny_data: a fixture)
from tests.test_nr_onnx import _checkpoint
from tests.test_nr_onnx import _frames as _onnx_frames


# ----------------------------------------------------------------------------- the arithmetic
@pytest.mark.parametrize("n, alpha", [(9, 0.1), (10, 0.1), (37, 0.1), (200, 0.1), (19, 0.05), (50, 0.2)])
def test_quantile_is_the_finite_sample_order_statistic(n, alpha) -> None:
    rng = np.random.default_rng(n)
    r = rng.normal(size=n)
    # the definition in exact arithmetic: k = ceil((n + 1)(1 - alpha)), the k-th smallest |r|
    k = math.ceil((n + 1) * (1 - Fraction(str(alpha))))
    assert quantile_rank(n, alpha) == k
    assert conformal_quantile(r, alpha) == np.sort(np.abs(r))[k - 1]
    cal = make_calibration(r, alpha, windows=["a:1"])
    assert (cal["rank"], cal["frames"], cal["level"]) == (k, n, k / n) and cal["windows"] == ["a:1"]


def test_too_few_or_bad_residuals_are_refused() -> None:
    assert min_frames(0.1) == 9 and min_frames(0.05) == 19
    with pytest.raises(InputError, match="at least 9 calibration frames, got 8"):
        conformal_quantile(np.ones(8))
    with pytest.raises(InputError, match="finite"):
        conformal_quantile([1.0] * 9 + [math.nan])
    with pytest.raises(InputError, match="alpha"):
        quantile_rank(10, 1.5)


def test_coverage_on_exchangeable_data_is_near_90_percent() -> None:
    """Seeded: 400 repetitions of calibrating on 100 residuals and covering 500 new ones from
    the same law (normal and heavy-tailed). Theory: mean coverage k / (n + 1) = 91/101 =
    0.901; tolerance 0.01 (the mean's standard error here is about 0.0015)."""
    rng = np.random.default_rng(2022)
    n, m, reps = 100, 500, 400
    expected = quantile_rank(n) / (n + 1)
    for draw in (lambda size: rng.normal(size=size), lambda size: rng.standard_t(2, size=size)):
        cover = [float(np.mean(np.abs(draw(m)) <= conformal_quantile(draw(n)))) for _ in range(reps)]
        assert abs(np.mean(cover) - expected) < 0.01, np.mean(cover)
        assert np.mean(cover) >= 1 - ALPHA - 0.01


def test_interval_maps_to_q_monotonically() -> None:
    rng = np.random.default_rng(3)
    mean, std = 0.4, 0.7
    z_pred, z_true = rng.normal(size=1000), rng.normal(size=1000)
    cal = make_calibration(rng.normal(size=50))
    q = np.exp(z_pred * std + mean)
    low, high = interval(q, cal, std)
    assert np.all(0 < low) and np.all(low <= q) and np.all(q <= high)
    qz = cal["quantile_z"]
    np.testing.assert_allclose(low, np.exp((z_pred - qz) * std + mean), rtol=1e-12)
    np.testing.assert_allclose(high, np.exp((z_pred + qz) * std + mean), rtol=1e-12)
    # coverage in Q is coverage in z: the map is monotone
    q_true = np.exp(z_true * std + mean)
    assert np.array_equal((low <= q_true) & (q_true <= high), np.abs(z_pred - z_true) <= qz)
    nan_low, nan_high = interval(q, None, std)
    assert np.isnan(nan_low).all() and np.isnan(nan_high).all()


# ----------------------------------------------------------------------------- a trained checkpoint
@pytest.fixture(scope="module")
def calibrated(tiny_data, tmp_path_factory):  # noqa: F811
    from dctqa.nr.calibrate import calibrate_checkpoint
    from dctqa.nr.train import train

    d = tmp_path_factory.mktemp("nrconf")
    train(tiny_data, d / "raw.pt", _tiny_config(epochs=1))
    messages: list[str] = []
    cal = calibrate_checkpoint(d / "raw.pt", tiny_data, d / "cal.pt", log=messages.append)
    return d / "raw.pt", d / "cal.pt", cal, messages


def test_calibration_uses_half_the_held_out_windows(calibrated) -> None:
    raw, path, cal, messages = calibrated
    assert cal["windows"] == ["alpha:3"] and cal["held_out_windows"] == ["beta:3"]
    assert cal["frames"] == 2 * 5 and cal["rank"] == 10  # 2 variants x frames 30..38 step 2; k = ceil(11 * 0.9)
    assert "calibrated" in messages[-1]
    ck = torch.load(path, weights_only=True)
    assert ck["calibration"] == cal and "calibration" not in torch.load(raw, weights_only=True)
    assert ck["train_config"] == torch.load(raw, weights_only=True)["train_config"]  # the rest kept
    model = NRModel.load(path)
    assert model.calibration == cal
    q, low, high = model.predict_interval(_content(5)[:4])
    assert np.all(low <= q) and np.all(q <= high) and np.all(low < high)
    np.testing.assert_allclose(np.log(high / q), cal["quantile_z"] * model.prov.target_std, rtol=1e-9)


def test_too_few_calibration_frames_leave_the_checkpoint_alone(calibrated, tiny_data, tmp_path) -> None:  # noqa: F811
    from dctqa.nr.calibrate import calibrate_checkpoint

    raw = calibrated[0]
    messages: list[str] = []
    assert calibrate_checkpoint(raw, tiny_data, tmp_path / "x.pt", frame_step=8, log=messages.append) is None
    assert not (tmp_path / "x.pt").exists() and "not calibrated" in messages[0]


def test_eval_reports_coverage_per_video_and_pooled(calibrated, tiny_data, tmp_path) -> None:  # noqa: F811
    from dctqa.nr.evaluate import evaluate

    raw, path, cal, _ = calibrated
    t = evaluate([path], tiny_data, tmp_path / "ev", frame_step=2, n_boot=20, ablations=False)
    rows = {(r["scope"], r["part"]): r for r in t["coverage"]}
    assert set(rows) == {("pooled", "held_out"), ("pooled", "calibration"), ("alpha", "calibration"),
                         ("beta", "held_out")}
    assert rows[("pooled", "held_out")]["frames"] == 10 and rows[("pooled", "held_out")]["nominal"] == 0.9
    # the held-out coverage recomputed from frames.csv's predictions
    frames = [r for r in t["frames"] if r["video"] == "beta"]
    std = NRModel.load(path).prov.target_std
    low, high = interval(np.array([r["dctqa_nr"] for r in frames]), cal, std)
    want = np.mean([lo <= r["q"] <= hi for r, lo, hi in zip(frames, low, high)])
    assert rows[("beta", "held_out")]["coverage"] == pytest.approx(want, abs=1e-4)
    written = list(csv.DictReader(open(tmp_path / "ev" / "coverage.csv")))
    assert len(written) == 4
    assert "## Coverage of the 90 % interval" in (tmp_path / "ev" / "nr_results.md").read_text()
    t = evaluate([raw], tiny_data, tmp_path / "ev2", frame_step=2, n_boot=20, ablations=False)
    assert {r["part"] for r in t["coverage"]} == {"uncalibrated"} and all(r["coverage"] is None for r in t["coverage"])


def test_the_log_carries_low_and_high_per_frame(calibrated, tiny_data, tmp_path) -> None:  # noqa: F811
    raw, path, cal, _ = calibrated
    video = str(tiny_data / "beta-crf48.mp4")
    assert main(["predict", video, "--model", str(path), "--json", str(tmp_path / "p.json"),
                 "--csv", str(tmp_path / "p.csv"), "--quiet"]) == 0
    log = json.loads((tmp_path / "p.json").read_text())
    assert len(log["frames"]) == FRAMES
    for f in log["frames"]:
        m = f["metrics"]
        assert 0 < m["dctqa_nr_low"] <= m["dctqa_nr"] <= m["dctqa_nr_high"]
    iv = log["params"]["interval"]
    assert iv["nominal"] == 0.9 and iv["quantile_z"] == cal["quantile_z"] and iv["calibration_frames"] == 10
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert {"dctqa_nr", "dctqa_nr_low", "dctqa_nr_high"} <= set(rows[0])
    assert float(rows[0]["dctqa_nr_low"]) <= float(rows[0]["dctqa_nr"]) <= float(rows[0]["dctqa_nr_high"])
    # a checkpoint without a calibration (one from before it existed): predicts, the interval null
    assert main(["predict", video, "--model", str(raw), "--json", str(tmp_path / "o.json"), "--quiet"]) == 0
    old = json.loads((tmp_path / "o.json").read_text())
    assert old["params"]["interval"] is None
    assert all(f["metrics"]["dctqa_nr"] > 0 and f["metrics"]["dctqa_nr_low"] is None
               and f["metrics"]["dctqa_nr_high"] is None for f in old["frames"])


def test_a_damaged_calibration_is_refused(calibrated, tmp_path) -> None:
    ck = torch.load(calibrated[1], weights_only=True)
    for bad, msg in (({"quantile_z": -1.0}, "must be >= 0"), ({"alpha": math.nan}, "alpha is nan"),
                     ({"rank": None, "level": "x"}, "level is 'x'")):
        torch.save(dict(ck, calibration={**ck["calibration"], **bad}), tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=msg):
            NRModel.load(tmp_path / "bad.pt")
    torch.save(dict(ck, calibration=[1, 2]), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not a mapping"):
        NRModel.load(tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- ONNX
def test_torch_and_onnx_agree_on_the_interval(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[nr]')")
    onnx = pytest.importorskip("onnx", reason="the export needs onnx")
    from dctqa.nr.export import export_onnx
    from dctqa.nr.onnx_model import OnnxNRModel

    model = NRModel.load(_checkpoint(tmp_path / "m.pt"))
    model.calibration = make_calibration(np.random.default_rng(4).normal(scale=0.5, size=30), windows=["v:0"])
    model.save(tmp_path / "c.pt")
    export_onnx(tmp_path / "c.pt", tmp_path / "c.onnx")
    torch_m, ort_m = NRModel.load(tmp_path / "c.pt"), OnnxNRModel.load(tmp_path / "c.onnx")
    assert ort_m.calibration == torch_m.calibration == model.calibration
    frames, _ = _onnx_frames()
    a, b = torch_m.predict_interval(frames), ort_m.predict_interval(frames)
    for x, y in zip(a, b):
        assert np.all(np.isfinite(x)) and np.max(np.abs(x - y)) < 1e-4
    assert np.all(b[1] <= b[0]) and np.all(b[0] <= b[2])
    # an uncalibrated checkpoint's export, and an export from before the key existed: no interval
    export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert OnnxNRModel.load(tmp_path / "m.onnx").calibration is None
    proto = onnx.load(str(tmp_path / "m.onnx"))
    keep = [p for p in proto.metadata_props if p.key != "calibration"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    old = OnnxNRModel.load(tmp_path / "old.onnx")
    assert old.calibration is None and np.isnan(old.predict_interval(frames[:1])[1]).all()
