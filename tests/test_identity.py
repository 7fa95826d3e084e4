"""Exact identity: ``score(x, x) == 1.0`` (not 0.9999999986) on every implementation.

METRIC.md: "Q = 1 exactly for identical frames". Every implementation sums ``r - 1 =
(A^o - A^c) / (A^c + eps)`` rather than ``r`` and adds 1 at the end, so each term is exactly
0 when the two frames are the same, whatever the rounding of its division (the streaming CPU
kernel's reciprocal estimates, CUDA's fast-math division) or of the mean. Checked for the
literal reference, the torch path, the unfused C++ op, the fused C++ op in every kernel mode
and at every level of its x86 paths, and the CUDA op (where a GPU is present), on random,
flat and real frames of several sizes, for the pixel backbone and YOLOX-Nano, in every domain.
"""
from __future__ import annotations

import numpy as np
import pytest

import dctqa
from dctqa import ops
from dctqa import reference as R
from dctqa.ops import tuning

_AV = ops.available()
_NO_CPP = f"compiled ops not built: {_AV['extension_error']}"


def _frames(kind: str, h: int, w: int, vtest: np.ndarray | None = None) -> np.ndarray:
    """Two frames ``2 x h x w x 3`` uint8 of one kind (random, flat, real)."""
    rng = np.random.default_rng(h * 1000 + w)
    if kind == "random":
        return rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    if kind == "flat":
        return np.stack([np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 200, np.uint8)])
    assert vtest is not None
    return np.ascontiguousarray(vtest[[0, 17], 100:100 + h, 200:200 + w])


CASES = [("random", 8, 8), ("random", 37, 53), ("random", 48, 64), ("random", 96, 128),
         ("flat", 48, 64), ("real", 120, 160), ("real", 576, 768)]


def _backbone(name: str, yolox_backbone: str) -> str:
    return "pixel" if name == "pixel" else yolox_backbone


def _assert_identity(m: dctqa.Metric, x: np.ndarray) -> None:
    q = m.score(x, x.copy(), per_filter=True)
    assert q.dtype == np.float64
    assert (q == 1.0).all(), f"{m}: Q_k - 1 = {np.unique(q - 1.0)}"
    assert (m.score(x, x) == 1.0).all()


@pytest.fixture
def frames(request):
    kind, h, w = request.param
    return _frames(kind, h, w, request.getfixturevalue("vtest_frames") if kind == "real" else None)


@pytest.fixture
def cpu_tuning():
    yield tuning
    tuning.set_cpu_kernel_mode("auto")
    tuning.set_cpu_intrinsics(True)


@pytest.mark.skipif(not _AV["cpp_fused"], reason=_NO_CPP)
@pytest.mark.parametrize("frames", CASES, indirect=True, ids=[f"{k}-{h}x{w}" for k, h, w in CASES])
@pytest.mark.parametrize("backbone", ["pixel", "yolox"])
@pytest.mark.parametrize("mode", ["auto", "planes", "stream", "stream-check"])
def test_fused_cpu_op_every_mode(frames, backbone, mode, yolox_backbone, cpu_tuning):
    cpu_tuning.set_cpu_kernel_mode(mode)
    m = dctqa.Metric(_backbone(backbone, yolox_backbone), domain="pixel" if backbone == "pixel" else "spectral")
    assert m.implementation == "cpp-fused"
    _assert_identity(m, frames)


@pytest.mark.skipif(not _AV["cpp_fused"], reason=_NO_CPP)
@pytest.mark.parametrize("frames", [("random", 96, 128), ("real", 576, 768)], indirect=True, ids=["random", "real"])
@pytest.mark.parametrize("backbone", ["pixel", "yolox"])
@pytest.mark.parametrize("level", ["all", "avx2", "none"])
def test_fused_cpu_op_every_intrinsics_level(frames, backbone, level, yolox_backbone, cpu_tuning):
    """The reciprocal (square-root) estimates of the x86 paths were the cause: check each level."""
    cpu_tuning.set_cpu_intrinsics(level)
    m = dctqa.Metric(_backbone(backbone, yolox_backbone), domain="pixel" if backbone == "pixel" else "spectral")
    _assert_identity(m, frames)


@pytest.mark.parametrize("frames", CASES[:-1], indirect=True, ids=[f"{k}-{h}x{w}" for k, h, w in CASES[:-1]])
@pytest.mark.parametrize("backbone,domain", [("pixel", "pixel"), ("yolox", "spectral"), ("yolox", "feature")])
@pytest.mark.parametrize("impl", ["torch", "cpp-op"])
def test_unfused_cpu_paths(frames, backbone, domain, impl, yolox_backbone, monkeypatch):
    """The torch path (DCTQA_DISABLE_OPS=1) and the unfused C++ ops (DCTQA_DISABLE_FUSED=1)."""
    if impl == "cpp-op" and not _AV["cpp"]:
        pytest.skip(_NO_CPP)
    monkeypatch.setenv("DCTQA_DISABLE_OPS" if impl == "torch" else "DCTQA_DISABLE_FUSED", "1")
    m = dctqa.Metric(_backbone(backbone, yolox_backbone), domain=domain)
    assert m.implementation == impl
    _assert_identity(m, frames)


@pytest.mark.parametrize("frames", [("random", 8, 8), ("random", 24, 20), ("flat", 16, 16), ("real", 32, 40)],
                         indirect=True, ids=["random-8", "random-24x20", "flat", "real"])
@pytest.mark.parametrize("backbone,domain", [("pixel", "pixel"), ("yolox", "spectral"), ("yolox", "feature")])
def test_reference(frames, backbone, domain, yolox_backbone):
    """The literal float64 reference (small frames: it is slow on purpose)."""
    for x in frames:
        q = R.score_filters(x, x.copy(), _backbone(backbone, yolox_backbone), domain)
        assert (q == 1.0).all(), f"reference {domain}: Q_k - 1 = {np.unique(q - 1.0)}"


@pytest.mark.skipif(not (_AV["cuda"] and _AV["cuda_device"]),
                    reason="needs a CUDA device and the CUDA build of dctqa._C (none here)")
@pytest.mark.parametrize("frames", [("random", 48, 64), ("flat", 48, 64), ("real", 576, 768)], indirect=True,
                         ids=["random", "flat", "real"])
@pytest.mark.parametrize("backbone,domain", [("pixel", "pixel"), ("yolox", "spectral"), ("yolox", "feature")])
def test_cuda_op(frames, backbone, domain, yolox_backbone):
    m = dctqa.Metric(_backbone(backbone, yolox_backbone), domain=domain, device="cuda")
    assert m.implementation == "cuda-op"
    _assert_identity(m, frames)


def test_different_frames_are_not_one(yolox_backbone):
    """The check above can fail: one changed pixel moves Q off 1 on the fused op and the torch path."""
    x = _frames("random", 48, 64)
    y = x.copy()
    y[0, 10, 10] ^= 0x40
    q = dctqa.Metric(yolox_backbone).score(x, y)
    assert q[0] != 1.0 and q[1] == 1.0
