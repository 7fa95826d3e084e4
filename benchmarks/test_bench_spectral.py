"""Spectral-domain Q_k from channel DCTs: literal reference, torch path, C++ op, CUDA op.

Inputs are the unnormalised DCT-II coefficients of random frames (the DCTs are timed
in test_bench_metric.py, which measures the whole path from uint8 frames); filters
are random ``K x 3 x k x k`` banks with the sizes of YOLOX (K=16, 6x6) and ResNet conv1
(K=64, 7x7). Sizes are W x H.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.conftest import run_case
from dctqa import ops, reference
from dctqa.constants import EPSILON
from dctqa.ops.dct import dct2

AV = ops.available()
SIZES = {"384x288": (288, 384), "768x576": (576, 768), "1920x1080": (1080, 1920)}
KS = {16: 6, 64: 7}


def _inputs(h: int, w: int, k: int, n: int, device: str):
    g = torch.Generator().manual_seed(h * w + k + n)
    xo = torch.randn(n, 3, h, w, generator=g)
    xc = xo + 0.3 * torch.randn(n, 3, h, w, generator=g)
    f = torch.randn(k, 3, KS[k], KS[k], generator=g)
    return dct2(xo).to(device), dct2(xc).to(device), f.to(device), xo, xc, f


# (size, K, batch): the C++ op runs every combination except 1080p x 16 frames (CPU time).
CPP_CASES = [(s, k, b) for s in ("384x288", "768x576") for k in (16, 64) for b in (1, 16)] + \
            [("1920x1080", 64, 1), ("1920x1080", 64, 4), ("1920x1080", 16, 1)]
TORCH_CASES = [("384x288", 16, 1), ("768x576", 16, 1), ("768x576", 16, 16), ("768x576", 64, 1),
               ("1920x1080", 64, 1)]
CUDA_CASES = [(s, k, b) for s in SIZES for k in (16, 64) for b in (1, 16)]


@pytest.mark.skipif(not AV["cpp"], reason=f"C++ op not built: {AV['extension_error']}")
@pytest.mark.parametrize("size,k,batch", CPP_CASES)
def test_cpp_op(benchmark, size: str, k: int, batch: int) -> None:
    h, w = SIZES[size]
    co, cc, f, *_ = _inputs(h, w, k, batch, "cpu")
    run_case(benchmark, lambda: torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON), family="spectral",
             h=h, w=w, k=k, batch=batch, impl="cpp-op", max_rounds=1 if size == "1920x1080" else 10)


@pytest.mark.parametrize("size,k,batch", TORCH_CASES)
def test_torch_path(benchmark, size: str, k: int, batch: int) -> None:
    from dctqa.ops.spectral_torch import spectral_qk_torch

    h, w = SIZES[size]
    co, cc, f, *_ = _inputs(h, w, k, batch, "cpu")
    run_case(benchmark, lambda: spectral_qk_torch(co, cc, f, EPSILON), family="spectral", h=h, w=w, k=k,
             batch=batch, impl="torch", max_rounds=1 if size == "1920x1080" else 5)


@pytest.mark.parametrize("size,k", [("384x288", 16), ("768x576", 16)])
def test_reference(benchmark, size: str, k: int) -> None:
    """The literal float64 reference, one pair, one round (it is slow on purpose)."""
    h, w = SIZES[size]
    _, _, f, xo, xc, _ = _inputs(h, w, k, 1, "cpu")
    xo, xc, fn = xo[0].double().numpy(), xc[0].double().numpy(), f.double().numpy()

    def once() -> np.ndarray:
        return reference.ratio_reduce(reference.spectral_magnitudes(xo, fn), reference.spectral_magnitudes(xc, fn), EPSILON)

    run_case(benchmark, once, family="spectral", h=h, w=w, k=k, batch=1, impl="reference", max_rounds=1)


@pytest.mark.skipif(not (AV["cuda"] and AV["cuda_device"]), reason="needs a CUDA device and the CUDA build of dctqa._C")
@pytest.mark.parametrize("size,k,batch", CUDA_CASES)
def test_cuda_op(benchmark, size: str, k: int, batch: int) -> None:
    h, w = SIZES[size]
    co, cc, f, *_ = _inputs(h, w, k, batch, "cuda")
    run_case(benchmark, lambda: torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON), family="spectral", h=h, w=w,
             k=k, batch=batch, impl="cuda-op", device="cuda", max_rounds=20)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("size,k,batch", [("1920x1080", 64, 1), ("768x576", 16, 16)])
def test_cuda_torch_path(benchmark, size: str, k: int, batch: int) -> None:
    from dctqa.ops.spectral_torch import spectral_qk_torch

    h, w = SIZES[size]
    co, cc, f, *_ = _inputs(h, w, k, batch, "cuda")
    run_case(benchmark, lambda: spectral_qk_torch(co, cc, f, EPSILON), family="spectral", h=h, w=w, k=k,
             batch=batch, impl="cuda-torch", device="cuda", max_rounds=10)
