"""The default no-reference model that ships as package data (issue 22): installing a
checkpoint (``dctqa.nr.default.install``), loading it with its record checked (size,
sha256, provenance, weights only), the refusals, and the defaults of ``dctqa predict``,
``create_metric("dctqa_nr")``, ``StreamScorer`` and ``score-many --no-reference`` with
``--model`` overriding them.

Every test but one installs a tiny test-made checkpoint into a temporary folder
(``MODELS_DIR`` monkeypatched). :func:`test_shipped_default_model` checks the real shipped
file and fails until the trained model is installed into ``dctqa/nr/models/``."""
from __future__ import annotations

import hashlib
import json
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch

import dctqa.nr.default as default
from dctqa.cli import main
from dctqa.constants import METRIC_VERSION
from dctqa.errors import InputError
from dctqa.nr.conformal import make_calibration
from dctqa.nr.model import CheckpointError, NRConfig, NRModel, Provenance
from tests.helpers import make_video
from tests.test_nr import _content

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(path: Path, *, calibrated: bool = True, **extra) -> Path:
    """A tiny random-weight checkpoint (patch 64), calibrated unless told otherwise."""
    torch.manual_seed(0)
    cfg = NRConfig(width=0.125, fc=(32, 16, 8), dropout=0.0, patch=64, sigma=2.0)
    prov = Provenance(metric_version=METRIC_VERSION, backbone="onnx:test.onnx", backbone_sha256="ab" * 32,
                      target="dctqa_spectral_test", target_mean=0.3, target_std=0.5, split={"split": "all"})
    model = NRModel(cfg, prov)
    with torch.no_grad():  # spread the outputs, so that frames get different predictions
        for layer in [m for m in model.net.head if isinstance(m, torch.nn.Linear)]:
            layer.weight.mul_(4.0)
    if calibrated:
        model.calibration = make_calibration(np.random.default_rng(1).normal(scale=0.4, size=30), source="test")
    model.save(path, train_config={"split": "all"}, **extra)
    return path


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    """An empty package-data folder for the default model."""
    d = tmp_path / "models"
    monkeypatch.setattr(default, "MODELS_DIR", d)
    return d


@pytest.fixture
def installed(models_dir, tmp_path) -> tuple[Path, Path]:
    """``(source checkpoint, installed file)``: recommended 3 grid patches."""
    ck = _checkpoint(tmp_path / "trained.pt", optimizer={"state": {}, "param_groups": []}, epoch=3)
    return ck, default.install(ck, patches=3, sampling="grid", created="2026-12-04T20:00:00Z")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nrdefvideo") / "clip.mp4"
    make_video(path, _content(4)[:6])
    return path


def _record(models_dir: Path) -> dict:
    return json.loads((models_dir / "nr-default.json").read_text())


def _rewrite_record(models_dir: Path, **changes) -> None:
    (models_dir / "nr-default.json").write_text(json.dumps({**_record(models_dir), **changes}))


# ----------------------------------------------------------------------------- install and load
def test_install_writes_the_model_and_its_record(installed, models_dir) -> None:
    src, path = installed
    assert path == models_dir / "nr-default.pt" == default.default_model_path()
    info = _record(models_dir)
    data = path.read_bytes()
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data) <= default.MAX_BYTES
    assert (info["file"], info["format"], info["created"]) == ("nr-default.pt", 1, "2026-12-04T20:00:00Z")
    assert (info["metric_version"], info["backbone"], info["backbone_sha256"], info["target"]) == \
        (METRIC_VERSION, "onnx:test.onnx", "ab" * 32, "dctqa_spectral_test")
    assert info["model_card"] == "docs/models/nr-default.md"
    assert (info["patches"], info["sampling"], info["split"], info["epochs"]) == (3, "grid", "all", 3)
    assert info["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    # weights only: the optimiser state is left behind, the weights and calibration kept
    a, b = torch.load(src, weights_only=True), torch.load(path, weights_only=True)
    assert "optimizer" in a and "optimizer" not in b and b["calibration"] == a["calibration"]
    assert info["calibration"]["quantile_z"] == a["calibration"]["quantile_z"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    model = default.load_default(device="cpu")
    assert model.recommended == {"patches": 3, "sampling": "grid"} == default.default_options()
    assert model.source == {"model": "default", "model_path": str(path), "model_sha256": info["sha256"]}
    frame = _content(4)[0]
    assert model.predict(frame)[0] == NRModel.load(src).predict(frame, patches=3, sampling="grid")[0]


def test_install_refusals_write_nothing(models_dir, tmp_path, monkeypatch) -> None:
    with pytest.raises(CheckpointError, match="no calibrated 90 % interval.*calibrate-nr"):
        default.install(_checkpoint(tmp_path / "raw.pt", calibrated=False))
    ck = _checkpoint(tmp_path / "c.pt")
    with pytest.raises(InputError, match="patches"):
        default.install(ck, patches=0)
    monkeypatch.setattr(default, "MAX_BYTES", 1000)
    with pytest.raises(CheckpointError, match="at most 1000"):
        default.install(ck)
    with pytest.raises(CheckpointError, match="does not exist"):
        default.install(tmp_path / "missing.pt")
    assert not models_dir.exists() or not any(models_dir.iterdir())


def test_missing_default_says_how_to_pass_a_model(models_dir, installed) -> None:
    (models_dir / "nr-default.pt").unlink()
    with pytest.raises(CheckpointError, match=r"nr-default\.pt.*does not exist.*--model"):
        default.load_default()
    (models_dir / "nr-default.json").unlink()
    with pytest.raises(CheckpointError, match=r"no default no-reference model is installed.*nr-default\.json.*--model"):
        default.load_default()


def test_an_altered_or_oversized_default_is_refused(models_dir, installed, monkeypatch) -> None:
    path = models_dir / "nr-default.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256.*altered.*--model"):
        default.load_default()
    path.write_bytes(bytes(data) + b"\0")
    with pytest.raises(CheckpointError, match="bytes; its record says"):
        default.load_default()
    data[len(data) // 2] ^= 0xFF  # the installed bytes again
    path.write_bytes(bytes(data))
    default.load_default()
    monkeypatch.setattr(default, "MAX_BYTES", len(data) - 1)
    with pytest.raises(CheckpointError, match=f"at most {len(data) - 1}"):
        default.load_default()


def test_a_record_that_does_not_fit_is_refused(models_dir, installed) -> None:
    good = _record(models_dir)
    for change, message in (({"target": "other"}, r"disagree on \['target'\]"),
                            ({"patches": 0}, "patches/sampling cannot be used"),
                            ({"format": 9}, "format 1"),
                            ({"file": "x.pt"}, "describes 'x.pt'")):
        _rewrite_record(models_dir, **{**good, **change})
        with pytest.raises(CheckpointError, match=message):
            default.load_default()
    (models_dir / "nr-default.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="record is unusable"):
        default.load_default()


class _Boom:
    """Unpickling it would create the file ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.target),)


def test_default_is_loaded_weights_only(models_dir, installed, tmp_path) -> None:
    """A checkpoint holding an arbitrary object, with a record that matches its bytes, is
    refused without the object ever being unpickled."""
    path = models_dir / "nr-default.pt"
    ck = torch.load(path, weights_only=True)
    marker = tmp_path / "unpickled"
    torch.save({**ck, "extra": _Boom(marker)}, path)
    data = path.read_bytes()
    _rewrite_record(models_dir, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    with pytest.raises(CheckpointError, match="not a readable dctqa_nr checkpoint"):
        default.load_default()
    assert not marker.exists()


def test_module_command_installs_and_checks(models_dir, tmp_path, capsys) -> None:
    ck = _checkpoint(tmp_path / "c.pt")
    assert default.main(["--install", str(ck), "--patches", "1", "--sampling", "uniform"]) == 0
    assert "patches 1, uniform" in capsys.readouterr().out
    assert default.main(["--check"]) == 0
    (models_dir / "nr-default.pt").write_bytes(b"junk")
    assert default.main(["--check"]) == 2 and "error:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the defaults
def _predict_log(argv: list[str], out: Path) -> dict:
    assert main(["predict", *argv, "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def _q(log: dict) -> np.ndarray:
    return np.array([f["metrics"]["dctqa_nr"] for f in log["frames"]])


def test_predict_uses_the_default_and_model_overrides(installed, video, tmp_path) -> None:
    src, path = installed
    log = _predict_log([str(video)], tmp_path / "d.json")
    p = log["params"]
    sha = _record(path.parent)["sha256"]
    assert (p["model"], p["model_sha256"], p["patches"], p["sampling"]) == ("default", sha, 3, "grid")
    assert p["interval"]["quantile_z"] > 0 and np.all(np.isfinite(_q(log))) and len(log["frames"]) == 6
    same = _predict_log([str(video), "--model", str(src), "--patches", "3", "--sampling", "grid"], tmp_path / "s.json")
    np.testing.assert_array_equal(_q(log), _q(same))
    # an explicit checkpoint records no recommendation: today's defaults, 2 activation patches
    explicit = _predict_log([str(video), "--model", str(src)], tmp_path / "e.json")
    e = explicit["params"]
    assert (e["model"], e["patches"], e["sampling"]) == (str(src), 2, "activation")
    assert e["model_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    one = _predict_log([str(video), "--patches", "1"], tmp_path / "o.json")["params"]
    assert (one["model"], one["patches"], one["sampling"]) == ("default", 1, "grid")


def test_an_onnx_export_predicts_with_its_recorded_options(video, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[nr]')")
    pytest.importorskip("onnx", reason="the export needs onnx")
    from dctqa.nr.export import export_onnx

    ck = _checkpoint(tmp_path / "c.pt")
    export_onnx(ck, tmp_path / "c.onnx", patches=3, sampling="uniform")
    p = _predict_log([str(video), "--model", str(tmp_path / "c.onnx")], tmp_path / "x.json")["params"]
    assert (p["model"], p["patches"], p["sampling"]) == (str(tmp_path / "c.onnx"), 3, "uniform")
    assert p["model_sha256"] == hashlib.sha256((tmp_path / "c.onnx").read_bytes()).hexdigest()
    p = _predict_log([str(video), "--model", str(tmp_path / "c.onnx"), "--sampling", "grid"], tmp_path / "y.json")
    assert (p["params"]["patches"], p["params"]["sampling"]) == (3, "grid")


def test_predict_without_a_default_model(models_dir, video, tmp_path, capsys) -> None:
    assert main(["predict", str(video), "--json", str(tmp_path / "x.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no default no-reference model is installed" in err and "--model CHECKPOINT" in err
    assert not (tmp_path / "x.json").exists()
    from dctqa.registry import create_metric

    with pytest.raises(CheckpointError, match="model=CHECKPOINT"):
        create_metric("dctqa_nr")


def test_create_metric_and_stream_scorer_use_the_default(installed) -> None:
    from dctqa.registry import create_metric
    from dctqa.serve import StreamScorer

    src, _ = installed
    metric = create_metric("dctqa_nr")
    assert isinstance(metric, NRModel) and metric.kind == "NR" and metric.source["model"] == "default"
    frames = _content(5)[:3]
    want = np.array([metric.score(f) for f in frames])
    assert np.all(np.isfinite(want)) and len(set(want.tolist())) == 3
    np.testing.assert_array_equal(want, [NRModel.load(src).predict(f, patches=3, sampling="grid")[0] for f in frames])
    with StreamScorer(create_metric("dctqa_nr"), max_batch=1) as s:  # served no-reference, one frame a call
        served = np.array([s.submit("cam", None, f).result(timeout=60) for f in frames])
    np.testing.assert_allclose(served, want, rtol=1e-9, atol=0)
    explicit = create_metric("dctqa_nr", model=str(src))
    assert explicit.source["model"] == str(src) and explicit.recommended == {"patches": 2, "sampling": "activation"}


def test_score_many_no_reference_uses_the_default(installed, video, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="score-many writes frames.parquet with pyarrow ([ray] extra)")
    src, _ = installed
    glob = str(video.parent / "*.mp4")
    common = ["--engine", "local", "--max-frames", "4", "--quiet"]
    assert main(["score-many", "--no-reference", glob, "--out", str(tmp_path / "d"), *common]) == 0
    assert main(["score-many", "--no-reference", glob, "--model", str(src), "--out", str(tmp_path / "m"),
                 *common]) == 0
    got = {k: pq.read_table(tmp_path / k / "frames.parquet").column("dctqa_nr").to_numpy() for k in ("d", "m")}
    want_default = _q(_predict_log([str(video), "--max-frames", "4"], tmp_path / "pd.json"))
    want_model = _q(_predict_log([str(video), "--model", str(src), "--max-frames", "4"], tmp_path / "pm.json"))
    np.testing.assert_allclose(got["d"], want_default, rtol=1e-9, atol=0)
    np.testing.assert_allclose(got["m"], want_model, rtol=1e-9, atol=0)
    assert not np.allclose(got["d"], got["m"])  # 3 grid patches vs 2 activation patches


# ----------------------------------------------------------------------------- the shipped file
def test_shipped_default_model() -> None:
    """The real shipped model (fails until `python -m dctqa.nr.default --install CHECKPOINT`
    has put the trained model into dctqa/nr/models/ and the model card exists)."""
    path, info = default.check_default()  # exists, <= 5 MB, size and sha256 as recorded
    assert path.stat().st_size <= default.MAX_BYTES == 5_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert (ROOT / info["model_card"]).is_file(), f"the model card {info['model_card']} is missing"
    model = default.load_default()
    assert model.calibration is not None and model.calibration["quantile_z"] > 0
    from dctqa.settings import shared_dir

    clip = shared_dir() / "videos" / "vtest.avi"
    if clip.is_file():
        from dctqa.io import iter_frames

        frame = next(iter(iter_frames(clip, max_frames=1)))
    else:
        frame = np.kron(np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8),
                        np.ones((4, 4, 1), np.uint8))
    q, low, high = model.predict_interval(frame)
    assert np.all(np.isfinite(q)) and np.all(q > 0) and np.all(low <= q) and np.all(q <= high)


def test_stream_scorer_serves_the_shipped_models_interval() -> None:
    """``StreamScorer(..., interval=True)`` with the shipped (calibrated) model: every future is
    a Scored whose q, low and high equal the model's own predict_interval; refused for a scorer
    without an interval, an uncalibrated model, and a non-boolean."""
    from dctqa.metric import Metric
    from dctqa.serve import Scored, StreamScorer

    model = default.load_default()
    g = np.random.default_rng(3)
    frames = [np.kron(g.integers(0, 256, (60, 64, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
              for _ in range(3)]
    with StreamScorer(model, max_batch=1, interval=True) as s:  # one frame a call: the same patch seeds
        got = [s.submit("cam", None, f).result(timeout=60) for f in frames]
    for f, r in zip(frames, got):
        q, low, high = model.predict_interval(f)
        assert isinstance(r, Scored) and r.low < r.q < r.high
        assert (r.q, r.low, r.high) == pytest.approx((q[0], low[0], high[0]), rel=1e-12)
    with pytest.raises(InputError, match=r"interval\(q\)"):
        StreamScorer(Metric(backbone="pixel"), interval=True)
    bare = NRModel(model.cfg, model.prov)  # the same network, never calibrated
    with pytest.raises(InputError, match="no calibrated interval"):
        StreamScorer(bare, interval=True)
    with pytest.raises(InputError, match="interval must be True or False"):
        StreamScorer(model, interval="yes")
