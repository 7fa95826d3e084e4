"""The ONNX server path of the no-reference model (issue 22, part 4): ``dctqa export-nr``, the
onnxruntime backend of ``predict`` / ``create_metric("dctqa_nr")`` / ``StreamScorer``, its
agreement with the torch path (within 1e-4 in Q) and its refusals.

The checkpoint has random weights (seeded), its last layer scaled up so that predictions
differ clearly between frames (agreement of near-constant outputs would prove little).
Frames: the first ones of the shared vtest.avi when present, else a synthetic textured clip.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[nr]')")
onnx = pytest.importorskip("onnx", reason="the export needs onnx")

from dctqa.cli import main  # noqa: E402
from dctqa.constants import METRIC_VERSION  # noqa: E402
from dctqa.errors import InputError  # noqa: E402
from dctqa.nr.model import CheckpointError, NRConfig, NRModel, Provenance  # noqa: E402
from dctqa.settings import shared_dir  # noqa: E402
from tests.helpers import make_video  # noqa: E402

PATCH = 96
TOL = 1e-4


def _frames() -> tuple[np.ndarray, str]:
    """Six frames (real when the shared vtest.avi is there) and where they came from."""
    clip = shared_dir() / "videos" / "vtest.avi"
    if clip.is_file():
        from dctqa.io import iter_frames

        return np.stack(list(iter_frames(clip, stride=25, max_frames=150))), str(clip)
    g = np.random.default_rng(1)
    base = g.integers(0, 256, (6, 40, 52, 3), dtype=np.uint8)
    return np.kron(base, np.ones((4, 4, 1), np.uint8)), "synthetic"


def _checkpoint(path, *, patch: int = PATCH, seed: int = 0):
    torch.manual_seed(seed)
    cfg = NRConfig(width=0.125, fc=(32, 16, 8), dropout=0.0, patch=patch, sigma=2.0)
    prov = Provenance(metric_version=METRIC_VERSION, backbone="onnx:test.onnx", backbone_sha256="ab" * 32,
                      target="dctqa_spectral_test", target_mean=0.3, target_std=0.5)
    model = NRModel(cfg, prov)
    with torch.no_grad():  # spread the outputs: a random net predicts nearly the same for every crop
        for layer in [m for m in model.net.head if isinstance(m, torch.nn.Linear)]:
            layer.weight.mul_(4.0)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from dctqa.nr.export import export_onnx

    d = tmp_path_factory.mktemp("nronnx")
    ck = _checkpoint(d / "m.pt")
    export_onnx(ck, d / "m.onnx")
    return ck, d / "m.onnx"


def test_export_is_a_checked_graph_with_provenance(exported) -> None:
    ck, path = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    from dctqa import __version__

    assert meta["dctqa_kind"] == "dctqa_nr_onnx" and meta["dctqa_version"] == __version__
    assert meta["metric_version"] == str(METRIC_VERSION) and meta["backbone"] == "onnx:test.onnx"
    assert meta["target"] == "dctqa_spectral_test" and meta["patch"] == str(PATCH)
    assert meta["patches"] == "2" and meta["sampling"] == "activation"
    from dctqa.fileio import file_sha256

    assert meta["source_sha256"] == file_sha256(ck)
    crops = next(i for i in proto.graph.input if i.name == "crops").type.tensor_type.shape.dim
    assert crops[0].dim_param and not crops[0].HasField("dim_value")  # dynamic batch
    assert [d.dim_value for d in crops[1:]] == [3, PATCH, PATCH]


@pytest.mark.parametrize("sampling", ["activation", "uniform", "grid"])
@pytest.mark.parametrize("patches", [1, 2, 4])
def test_onnx_predictions_agree_with_torch(exported, sampling, patches) -> None:
    from dctqa.nr.onnx_model import OnnxNRModel

    ck, path = exported
    frames, _ = _frames()
    want = NRModel.load(ck).predict(frames, patches=patches, sampling=sampling, seed=3, batch_size=4)
    got = OnnxNRModel.load(path).predict(frames, patches=patches, sampling=sampling, seed=3, batch_size=4)
    assert got.shape == want.shape == (len(frames),) and np.isfinite(got).all()
    assert np.ptp(want) > 100 * TOL, "the test net's predictions barely vary: the agreement would prove little"
    assert np.abs(got - want).max() <= TOL


def test_predict_command_takes_the_onnx_file(exported, tmp_path) -> None:
    ck, path = exported
    frames, _ = _frames()
    video = tmp_path / "v.mkv"
    make_video(video, frames, codec="ffv1")
    logs = {}
    for name, model in (("torch", ck), ("onnx", path)):
        assert main(["predict", str(video), "--model", str(model), "--json", str(tmp_path / f"{name}.json"),
                     "--quiet"]) == 0
        logs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    q = {k: np.array([f["metrics"]["dctqa_nr"] for f in v["frames"]]) for k, v in logs.items()}
    assert len(q["onnx"]) == len(frames) and np.abs(q["onnx"] - q["torch"]).max() <= TOL


def test_registry_and_stream_scorer_use_onnxruntime(exported) -> None:
    from dctqa.nr.onnx_model import OnnxNRModel
    from dctqa.registry import create_metric
    from dctqa.serve import StreamScorer

    ck, path = exported
    frames, _ = _frames()
    metric = create_metric("dctqa_nr", model=str(path))
    assert isinstance(metric, OnnxNRModel) and metric.kind == "NR"
    torch_model = create_metric("dctqa_nr", model=str(ck))
    assert isinstance(torch_model, NRModel)
    assert abs(metric.score(frames[0]) - torch_model.score(frames[0])) <= TOL
    served = {}
    for name, scorer in (("onnx", metric), ("torch", torch_model)):
        # the registry's NR objects (kind "NR") are served through predict(frames), no reference
        with StreamScorer(scorer, max_batch=1) as s:  # one frame per call: the same patch seed for each
            served[name] = np.array([s.submit("cam", None, f).result(timeout=60) for f in frames])
    single = np.array([torch_model.score(f) for f in frames])
    assert np.abs(served["onnx"] - single).max() <= TOL and np.abs(served["torch"] - single).max() <= 1e-9


def test_export_command_and_its_refusals(exported, tmp_path, capsys) -> None:
    ck, _ = exported
    out = tmp_path / "cli.onnx"
    assert main(["export-nr", str(ck), "--onnx", str(out)]) == 0 and out.is_file()
    before = out.read_bytes()
    assert main(["export-nr", str(ck), "--onnx", str(ck)]) == 2  # the output would replace its input
    assert main(["export-nr", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists() and out.read_bytes() == before
    assert "error:" in capsys.readouterr().err


def _without_metadata(src, dst) -> None:
    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    onnx.save(proto, str(dst))


def _other_patch(src, dst) -> None:
    """The export with its metadata's patch size (and config) changed to 64."""
    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == "patch":
            p.value = "64"
        if p.key == "config":
            p.value = json.dumps({**json.loads(p.value), "patch": 64})
    onnx.save(proto, str(dst))


@pytest.mark.parametrize("make,match", [
    (lambda src, dst: dst.write_bytes(b"\x08\x07 not a protobuf" * 10), "not a readable ONNX"),
    (lambda src, dst: dst.write_bytes(bytes(range(256))), "not a readable ONNX"),
    (_without_metadata, "not one written by `dctqa export-nr`"),
    (_other_patch, "patches"),
])
def test_bad_onnx_files_are_refused(exported, tmp_path, capsys, make, match) -> None:
    from dctqa.nr.onnx_model import OnnxNRModel

    _, path = exported
    bad = tmp_path / "bad.onnx"
    make(path, bad)
    with pytest.raises(CheckpointError, match=match):
        OnnxNRModel.load(bad)
    frames, _ = _frames()
    video = tmp_path / "v.mkv"
    make_video(video, frames[:2], codec="ffv1")
    assert main(["predict", str(video), "--model", str(bad), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err


def test_frames_smaller_than_the_patch_and_other_devices_are_refused(exported) -> None:
    from dctqa.nr.onnx_model import OnnxNRModel

    _, path = exported
    model = OnnxNRModel.load(path)
    with pytest.raises(InputError, match="at least 96x96"):
        model.predict(np.zeros((1, 64, 200, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        model.predict(np.zeros((1, 128, 128, 3), np.float32))
    with pytest.raises(InputError):
        OnnxNRModel.load(path, device="cuda")
    with pytest.raises(CheckpointError, match="metric version"):
        OnnxNRModel.load(path, metric_version="0-other")
