"""No-reference prediction speed (target: >= 20 frames/s at 768x576 with 2 patches on the
2-core CPU) and the sampling op's CPU kernel against its torch fallback (target >= 5x).

Predict cases time :meth:`dctqa.nr.NRModel.predict` on decoded uint8 frames (conv1 on the
whole frame, the sampler, the net on the patches), with freshly initialised nets of the
default width (0.25) and of the width the committed results used (0.125): speed does not
depend on the weights. ``predict_video`` adds decoding of a real clip (first 48 frames of
the shared vtest.avi, skipped when it is absent). Sampler cases: one frame's conv1 maps
(16 channels, 143 x 191 cells, sigma 8 cells), map + 2 draws. Backend cases (issue 22): the
same default-width net through torch and through its ``dctqa export-nr`` ONNX file in
onnxruntime, in the same run (``onnx_over_torch`` in the onnx case's extra_info).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.conftest import RESULTS, run_case, shared_dir
from dctqa import ops
from dctqa.constants import METRIC_VERSION
from dctqa.nr.model import NRConfig, NRModel, Provenance

H, W = 576, 768


def _model(width: float) -> NRModel:
    torch.manual_seed(0)
    return NRModel(NRConfig(width=width), Provenance(METRIC_VERSION, "bench", "0" * 64))


def _frames(n: int) -> np.ndarray:
    g = np.random.default_rng(0)
    base = g.integers(0, 256, size=(n, H // 8, W // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(base, 8, axis=1), 8, axis=2))


@pytest.mark.parametrize("width", [0.25, 0.125])
@pytest.mark.parametrize("sampling", ["activation", "grid"])
def test_predict(benchmark, width: float, sampling: str) -> None:
    model, frames = _model(width), _frames(4)
    run_case(benchmark, lambda: model.predict(frames, patches=2, sampling=sampling), family="nr_predict",
             h=H, w=W, k=2, batch=len(frames), impl=f"{sampling}-w{width}")


def test_predict_video(benchmark) -> None:
    from dctqa.nr.predict import predict_video

    clip = shared_dir() / "videos" / "vtest.avi"
    if not clip.is_file():
        pytest.skip(f"{clip} not found (shared data)")
    model = _model(0.25)
    run_case(benchmark, lambda: predict_video(model, clip, max_frames=48), family="nr_video", h=H, w=W, k=2,
             batch=48, impl="decode+predict", max_rounds=2)


@pytest.fixture(scope="module")
def backends(tmp_path_factory) -> dict:
    """The default-width (0.25) net behind both backends: the torch model and its ONNX export."""
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[study]')")
    from dctqa.nr.export import export_onnx
    from dctqa.nr.onnx_model import OnnxNRModel

    d = tmp_path_factory.mktemp("bench_onnx")
    _model(0.25).save(d / "m.pt")
    export_onnx(d / "m.pt", d / "m.onnx")
    return {"torch": NRModel.load(d / "m.pt"), "onnx": OnnxNRModel.load(d / "m.onnx")}


@pytest.mark.parametrize("impl", ["torch", "onnx"])  # torch first: the onnx case divides by it
def test_predict_backend(benchmark, backends, impl: str) -> None:
    """Frames/s of the same net through torch and through onnxruntime (patches from the op, both)."""
    model, frames = backends[impl], _frames(4)
    fps = run_case(benchmark, lambda: model.predict(frames, patches=2, sampling="activation"),
                   family="nr_backend", h=H, w=W, k=2, batch=len(frames), impl=impl)
    base = RESULTS.get(("nr_backend", f"{W}x{H}", 2, len(frames), "torch"))
    benchmark.extra_info["frames_per_s"] = fps
    if impl == "onnx" and base:
        benchmark.extra_info["onnx_over_torch"] = fps / base


@pytest.mark.parametrize("impl", [pytest.param("op", marks=pytest.mark.skipif(
    ops.implementation_for("cpu", "sample_patches") != "cpp-op", reason="dctqa._C has no sample_patches CPU kernel")), "torch"])
def test_sampler(benchmark, impl: str) -> None:
    act = torch.randn(1, 16, 143, 191, generator=torch.Generator().manual_seed(0))
    run_case(benchmark, lambda: ops.sample_patches(act, H, W, stride=4, offset=3, patch=224, num=2, seed=0,
                                                 sigma=8.0, impl=impl),
             family="sample_patches", h=H, w=W, k=16, batch=1, impl="cpp-op" if impl == "op" else "torch")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    """The shipped default model (dctqa/nr/models) through both backends, with its record's
    recommended patches and placement."""
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'dctqa[nr]')")
    from dctqa.nr import default
    from dctqa.nr.export import export_onnx
    from dctqa.nr.onnx_model import OnnxNRModel

    path, info = default.check_default()
    d = tmp_path_factory.mktemp("bench_default")
    export_onnx(path, d / "default.onnx", patches=info["patches"], sampling=info["sampling"])
    return {"torch": default.load_default(), "onnx": OnnxNRModel.load(d / "default.onnx"),
            "options": default.default_options()}


@pytest.mark.parametrize("impl", ["torch", "onnx"])  # torch first: the onnx case divides by it
def test_default_model(benchmark, shipped, impl: str) -> None:
    """Frames/s at 768x576 of the shipped model as `dctqa predict` runs it (its recommended
    patches and placement), torch and onnxruntime in the same run (issue 22's target: >= 25)."""
    model, frames, opts = shipped[impl], _frames(4), shipped["options"]
    fps = run_case(benchmark, lambda: model.predict(frames, **opts), family="nr_default", h=H, w=W,
                   k=opts["patches"], batch=len(frames), impl=f"{impl}-{opts['sampling']}")
    base = RESULTS.get(("nr_default", f"{W}x{H}", opts["patches"], len(frames), f"torch-{opts['sampling']}"))
    benchmark.extra_info.update(frames_per_s=fps, **opts)
    if impl == "onnx" and base:
        benchmark.extra_info["onnx_over_torch"] = fps / base
