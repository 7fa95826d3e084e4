"""The streaming CPU kernel of the spectral ops (csrc/spectral_qk/cpu/spectral_stream.cpp).

It keeps no magnitude plane: the median is bracketed from a sample of rows and the ratio is
summed with a trial floor, then corrected to the exact floor by a short series. These tests
hold it to the plane kernel (``set_cpu_kernel_mode("planes")``), check that its exact
fallback is taken and exact when the sample misleads it, and that it needs no whole G.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dctqa
from dctqa import ops
from dctqa.ops import tuning
from dctqa.backbones import get_backbone
from dctqa.errors import InputError

_AVAIL = ops.available()
pytestmark = pytest.mark.skipif(not _AVAIL["cpp_fused"], reason=f"compiled ops not built: {_AVAIL['extension_error']}")


@pytest.fixture
def kernel_mode():
    """Set the CPU kernel mode for one test; back to "auto" afterwards."""
    yield tuning.set_cpu_kernel_mode
    tuning.set_cpu_kernel_mode("auto")


def _counts() -> tuple[int, int, int]:
    info = tuning.cpu_kernel_info()
    return info["streamed"], info["fallbacks"], info["missed"]


def _score(m: dctqa.Metric, ref, dist) -> np.ndarray:
    return m.score(ref, dist, per_filter=True)


def _planes_then(mode: str, kernel_mode, run):
    """``run()`` with the plane kernel, then with ``mode``: both results and the change of
    the (streamed, fallbacks, missed) counters during the second."""
    kernel_mode("planes")
    q_planes = run()
    kernel_mode(mode)
    before = _counts()
    q = run()
    return q_planes, q, tuple(b - a for a, b in zip(before, _counts()))


@pytest.mark.parametrize("backbone", ["yolox", "pixel"])
def test_stream_equals_planes_on_real_frames(vtest_frames, yolox_backbone, kernel_mode, backbone):
    """Whole 768 x 576 vtest frames through H.264: every Q_k as the plane kernel gives it."""
    from tests.helpers import h264_roundtrip

    bb = yolox_backbone if backbone == "yolox" else "pixel"
    ref = vtest_frames[:2]
    dist = h264_roundtrip(ref, crf=41)
    m = dctqa.Metric(bb)
    q_planes, q_stream, (streamed, fallbacks, _) = _planes_then("auto", kernel_mode, lambda: _score(m, ref, dist))
    assert streamed == q_stream.size and fallbacks == 0  # streamed, no fallback on real frames
    # float rounding plus the series' remainder (< 3.6e-6 of sum |r - 1|; METRIC.md allows 1e-4)
    np.testing.assert_allclose(q_stream, q_planes, rtol=5e-6, atol=0)
    assert np.abs(q_stream.mean(1) - q_planes.mean(1)).max() <= 1e-6 * q_planes.mean(1).min()


@pytest.mark.parametrize("h,w", [(9, 17), (36, 29), (64, 80), (121, 96)])
def test_stream_check_mode_is_the_plane_kernel(rng, yolox_backbone, kernel_mode, h, w):
    """"stream-check" finishes every result by the exact fallback: bit for bit the plane
    kernel's Q_k; "stream" on the same small frames agrees to float rounding."""
    ref = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8)
    m = dctqa.Metric(yolox_backbone)
    q_planes, q_check, (streamed, fallbacks, _) = _planes_then("stream-check", kernel_mode,
                                                               lambda: _score(m, ref, dist))
    assert fallbacks == q_check.size and streamed == 0
    np.testing.assert_array_equal(q_check, q_planes)
    kernel_mode("stream")
    np.testing.assert_allclose(_score(m, ref, dist), q_planes, rtol=1e-5, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_misleading_sample_falls_back_exactly(rng, kernel_mode, channels):
    """DCT planes whose sampled rows (odd rows at this size) are all large and whose other
    rows are all small: the sample's bracket cannot hold the median, so every result must
    come from the exact fallback and equal the plane kernel's. With 1 x 1 filters the
    magnitudes are the DCT values themselves (times the filter's gain)."""
    n, h, w = 2, 64, 80
    co = rng.uniform(0.5, 1.0, (n, channels, h, w)).astype(np.float32)
    co[:, :, 1::2, :] *= 1000.0  # the stream samples row pairs u = 1, 3, 5, ... and H - u
    cc = (co * rng.uniform(0.8, 1.2, co.shape)).astype(np.float32)
    filters = torch.from_numpy(rng.uniform(0.5, 1.5, (3, channels, 1, 1)).astype(np.float32))
    co_t, cc_t = torch.from_numpy(co), torch.from_numpy(cc)
    q_planes, q_stream, (_, fallbacks, missed) = _planes_then(
        "stream", kernel_mode, lambda: ops.spectral_qk(co_t, cc_t, filters, 0.01))
    assert fallbacks == missed == q_stream.numel()
    torch.testing.assert_close(q_stream, q_planes, rtol=0, atol=0)


def test_stream_keeps_no_whole_filter_spectrum(rng, yolox_backbone):
    """At 384 x 288 (streamed) the cache holds only G's separable factors (K x 3 x kh x Wp
    complex, row phases, the bank), not the whole G (K x H x 3 x Wp complex, 42 MB here)."""
    bb = get_backbone(yolox_backbone)
    ref = rng.integers(0, 256, (1, 288, 384, 3), dtype=np.uint8)
    tuning.spectra_cache_clear()
    try:
        dctqa.Metric(bb).score(ref, ref)
        k, _, kh, kw = np.asarray(bb.filters).shape
        wp = 384  # the padded width (a multiple of 16)
        assert tuning.spectra_cache_info()["bytes"] == 4 * (2 * k * 3 * kh * wp + 2 * 288 * kh + k * 3 * kh * kw)
    finally:
        tuning.spectra_cache_clear()


def test_identical_frames_stream_to_one(vtest_frames, yolox_backbone):
    q = dctqa.Metric(yolox_backbone).score(vtest_frames[:1], vtest_frames[:1], per_filter=True)
    np.testing.assert_allclose(q, 1.0, rtol=1e-6)


def test_kernel_mode_rejects_unknown_names():
    with pytest.raises(InputError, match="stream-check"):
        tuning.set_cpu_kernel_mode("fast")
    assert tuning.cpu_kernel_info()["mode"] == "auto"


def test_far_trial_floor_falls_back_exactly(rng, kernel_mode):
    """Sampled rows (the odd ones here) hold two clusters, 0.9 and 1.2; the other rows hold
    0.5 and 2.0. The lower median is the top of the 0.9 cluster: inside the bracket the
    sample gives ([0.9, 1.2]), but the trial floor from the bracket's middle (about 1.05) is
    14 % off, beyond the accepted 8 %: every result must come from the exact fallback, with
    no bracket miss."""
    n, h, w = 2, 64, 80
    half = rng.random((n, 1, h // 2, w)) < 0.5
    co = np.empty((n, 1, h, w), np.float32)
    co[:, :, 1::2, :] = np.where(half, 0.9, 1.2)
    co[:, :, 0::2, :] = np.where(rng.random((n, 1, h // 2, w)) < 0.5, 0.5, 2.0)
    co *= rng.uniform(1.0, 1.0 + 1e-4, co.shape).astype(np.float32)  # distinct values
    cc = (co * rng.uniform(0.8, 1.2, co.shape)).astype(np.float32)
    filters = torch.ones((1, 1, 1, 1))
    co_t, cc_t = torch.from_numpy(co), torch.from_numpy(cc)
    q_planes, q_stream, (_, fallbacks, missed) = _planes_then(
        "stream", kernel_mode, lambda: ops.spectral_qk(co_t, cc_t, filters, 0.01))
    assert fallbacks == q_stream.numel() and missed == 0
    torch.testing.assert_close(q_stream, q_planes, rtol=0, atol=0)


@pytest.mark.parametrize("level", ["all", "avx2", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_gather_overflow_falls_back_exactly(rng, kernel_mode, level, channels):
    """A^o the same everywhere (constant DCT planes, 1 x 1 filters): the bracket is one
    value wide and every value falls inside, so the gather buffer overflows on every bracket
    pass (AVX-512, AVX2 and portable forms; for 3 channels also the one-pass squared form)
    and every result must come from the exact fallback, equal to the plane kernel's."""
    n, h, w = 2, 64, 80
    co = np.full((n, channels, h, w), 0.75, np.float32)
    cc = (co * rng.uniform(0.8, 1.2, co.shape)).astype(np.float32)
    filters = torch.from_numpy(rng.uniform(0.5, 1.5, (3, channels, 1, 1)).astype(np.float32))
    co_t, cc_t = torch.from_numpy(co), torch.from_numpy(cc)
    tuning.set_cpu_intrinsics(level)
    try:
        q_planes, q_stream, (_, fallbacks, missed) = _planes_then(
            "stream", kernel_mode, lambda: ops.spectral_qk(co_t, cc_t, filters, 0.01))
    finally:
        tuning.set_cpu_intrinsics("all")
    assert fallbacks == missed == q_stream.numel()
    torch.testing.assert_close(q_stream, q_planes, rtol=0, atol=0)
