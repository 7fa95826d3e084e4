"""The hand-written x86 paths of the CPU kernels against their portable versions.

``tuning.set_cpu_intrinsics("avx2")`` makes the kernels take the code of a CPU with AVX2 + FMA
but no AVX-512 (DCT lines in AVX2 vectors, 12-bit estimates, the portable bracket pass), and
``"none"`` the code of a CPU without either (DCT lines in SSE2 vectors, true square roots and
divisions), so every side of each hand-made dispatch is checked on a machine that has them
all: against each other, and against the literal reference where it is fast enough.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dctqa
from dctqa import ops, reference
from dctqa.ops import tuning

_AVAIL = ops.available()
pytestmark = pytest.mark.skipif(not _AVAIL["cpp_fused"], reason=f"compiled ops not built: {_AVAIL['extension_error']}")


@pytest.fixture
def intrinsics():
    """``tuning.set_cpu_intrinsics`` for one test; back on afterwards."""
    yield tuning.set_cpu_intrinsics
    tuning.set_cpu_intrinsics(True)


def _needs_vector_paths() -> None:
    info = tuning.cpu_kernel_info()
    if not (info["avx512"] or info["avx2_fma"]):
        pytest.skip("this CPU has neither AVX-512F nor AVX2+FMA: only the portable paths exist here "
                    "(they are what every other test runs)")


def _levels(m: dctqa.Metric, ref, dist, intrinsics) -> dict[str, np.ndarray]:
    out = {}
    for level in ("all", "avx2", "none"):
        intrinsics(level)
        out[level] = m.score(ref, dist, per_filter=True)
    return out


def test_switch_is_reported(intrinsics):
    intrinsics(True)
    has = tuning.cpu_kernel_info()  # what this CPU has
    assert has["intrinsics"] == "all"
    intrinsics("avx2")
    info = tuning.cpu_kernel_info()
    assert info["intrinsics"] == "avx2" and info["avx512"] is False and info["avx2_fma"] is has["avx2_fma"]
    intrinsics(False)
    info = tuning.cpu_kernel_info()
    assert info["intrinsics"] == "none" and info["avx512"] is False and info["avx2_fma"] is False
    for bad in (1, "avx512", None):
        with pytest.raises(dctqa.InputError, match="True, False or one of none, avx2, all"):
            tuning.set_cpu_intrinsics(bad)


@pytest.mark.parametrize("backbone", ["yolox", "pixel"])
def test_real_frames_agree(vtest_frames, yolox_backbone, intrinsics, backbone):
    """768 x 576 vtest frames through H.264 (the streaming kernel): every level gives every
    Q_k to 1e-5 of the others."""
    from tests.helpers import h264_roundtrip

    _needs_vector_paths()
    ref = vtest_frames[:2]
    dist = h264_roundtrip(ref, crf=41)
    m = dctqa.Metric(yolox_backbone if backbone == "yolox" else "pixel")
    assert m.implementation == "cpp-fused"
    q = _levels(m, ref, dist, intrinsics)
    np.testing.assert_allclose(q["avx2"], q["all"], rtol=1e-5, atol=0)
    np.testing.assert_allclose(q["none"], q["all"], rtol=1e-5, atol=0)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 65), (13, 386)])
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "float"])
def test_odd_sizes_match_the_reference(rng, yolox_backbone, intrinsics, h, w, layout):
    """Sizes that are no multiple of any vector width (partial line groups and column tails
    of the DCT), in every input layout: every level within METRIC.md's 1e-4 of the reference."""
    _needs_vector_paths()
    ref = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + rng.integers(-25, 26, ref.shape), 0, 255).astype(np.uint8)
    expect = np.array([reference.score_filters(ref[i], dist[i], backbone=yolox_backbone) for i in range(2)])
    if layout == "nchw":  # a torch tensor [N, 3, H, W] (channels first: stride 1 along x)
        ref, dist = (torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))) for a in (ref, dist))
    elif layout == "float":
        ref, dist = ref.astype(np.float32), dist.astype(np.float32)
    m = dctqa.Metric(yolox_backbone)
    q = _levels(m, ref, dist, intrinsics)
    for level, got in q.items():
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=0, err_msg=level)
        np.testing.assert_allclose(got, q["all"], rtol=1e-5, atol=0, err_msg=level)


def test_black_frames_stay_finite(yolox_backbone, intrinsics):
    """All-zero magnitudes (the reciprocal square root of 0 is infinite): Q is 1 at every level."""
    _needs_vector_paths()
    ref = np.zeros((1, 480, 640, 3), np.uint8)
    m = dctqa.Metric(yolox_backbone)
    for level, got in _levels(m, ref, ref.copy(), intrinsics).items():
        np.testing.assert_array_equal(got, np.ones_like(got), err_msg=level)
