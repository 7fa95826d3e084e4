"""The hand-written x86 paths of the CPU kernels against their portable versions.

``ops.set_cpu_intrinsics(False)`` makes the kernels take the code a CPU without AVX2 or
AVX-512 takes (the DCT lines in SSE2 vectors, true square roots and divisions, the scalar
bracket pass), so both sides of each hand-made dispatch are checked on this machine: against
each other, and against the literal reference where it is fast enough.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dctqa
from dctqa import ops, reference

_AVAIL = ops.available()
pytestmark = pytest.mark.skipif(not _AVAIL["cpp_fused"], reason=f"compiled ops not built: {_AVAIL['extension_error']}")


@pytest.fixture
def intrinsics():
    """``ops.set_cpu_intrinsics`` for one test; back on afterwards."""
    yield ops.set_cpu_intrinsics
    ops.set_cpu_intrinsics(True)


def _needs_vector_paths() -> None:
    info = ops.cpu_kernel_info()
    if not (info["avx512"] or info["avx2_fma"]):
        pytest.skip("this CPU has neither AVX-512F nor AVX2+FMA: only the portable paths exist here "
                    "(they are what every other test runs)")


def _both(m: dctqa.Metric, ref, dist, intrinsics) -> tuple[np.ndarray, np.ndarray]:
    intrinsics(True)
    on = m.score(ref, dist, per_filter=True)
    intrinsics(False)
    off = m.score(ref, dist, per_filter=True)
    return on, off


def test_switch_is_reported(intrinsics):
    intrinsics(False)
    info = ops.cpu_kernel_info()
    assert info["intrinsics"] is False and info["avx512"] is False and info["avx2_fma"] is False
    intrinsics(True)
    assert ops.cpu_kernel_info()["intrinsics"] is True
    with pytest.raises(dctqa.InputError, match="True or False"):
        ops.set_cpu_intrinsics(1)


@pytest.mark.parametrize("backbone", ["yolox", "pixel"])
def test_real_frames_agree(vtest_frames, yolox_backbone, intrinsics, backbone):
    """768 x 576 vtest frames through H.264 (the streaming kernel, AVX2 DCT lines, AVX-512
    square roots and ratios on this CPU): both paths give every Q_k to 1e-5."""
    from tests.helpers import h264_roundtrip

    _needs_vector_paths()
    ref = vtest_frames[:2]
    dist = h264_roundtrip(ref, crf=41)
    m = dctqa.Metric(yolox_backbone if backbone == "yolox" else "pixel")
    assert m.implementation == "cpp-fused"
    on, off = _both(m, ref, dist, intrinsics)
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=0)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 65), (13, 386)])
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "float"])
def test_odd_sizes_match_the_reference(rng, yolox_backbone, intrinsics, h, w, layout):
    """Sizes that are no multiple of any vector width (partial line groups and column tails
    of the DCT), in every input layout: both paths within METRIC.md's 1e-4 of the reference."""
    _needs_vector_paths()
    ref = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + rng.integers(-25, 26, ref.shape), 0, 255).astype(np.uint8)
    expect = np.array([reference.score_filters(ref[i], dist[i], backbone=yolox_backbone) for i in range(2)])
    if layout == "nchw":  # a torch tensor [N, 3, H, W] (channels first: stride 1 along x)
        ref, dist = (torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))) for a in (ref, dist))
    elif layout == "float":
        ref, dist = ref.astype(np.float32), dist.astype(np.float32)
    m = dctqa.Metric(yolox_backbone)
    on, off = _both(m, ref, dist, intrinsics)
    np.testing.assert_allclose(on, expect, rtol=1e-4, atol=0)
    np.testing.assert_allclose(off, expect, rtol=1e-4, atol=0)
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=0)


def test_black_frames_stay_finite(yolox_backbone, intrinsics):
    """All-zero magnitudes (the reciprocal square root of 0 is infinite): Q is 1 on both paths."""
    _needs_vector_paths()
    ref = np.zeros((1, 480, 640, 3), np.uint8)
    m = dctqa.Metric(yolox_backbone)
    on, off = _both(m, ref, ref.copy(), intrinsics)
    np.testing.assert_array_equal(on, np.ones_like(on))
    np.testing.assert_array_equal(off, np.ones_like(off))
