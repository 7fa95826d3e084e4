"""dctqa.Metric (fast torch path) against the float64 reference, and its contract."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import dctqa
from dctqa import reference as R
from dctqa.errors import BackboneError, InputError

TOL = 1e-4  # METRIC.md: |Q_fast - Q_ref| <= 1e-4 * Q_ref


def _pairs(rng, h, w, n=3):
    """Mixed batch: identical, mildly noisy, strongly noisy."""
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = ref.copy()
    dist[1] = np.clip(ref[1] + rng.normal(0, 6, ref[1].shape), 0, 255)
    if n > 2:
        dist[2] = np.clip(ref[2] + rng.normal(0, 40, ref[2].shape), 0, 255)
    return ref, dist


def _check_against_reference(metric, backbone, domain, ref, dist):
    q = metric.score(ref, dist)
    expected = np.array([R.score(r, d, backbone, domain) for r, d in zip(ref, dist)])
    np.testing.assert_array_less(np.abs(q - expected), TOL * expected)
    return q, expected


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 65), (64, 64)])
@pytest.mark.parametrize("domain", ["spectral", "pixel", "feature"])
def test_fast_equals_reference_yolox_random(yolox_backbone, domain, h, w, rng):
    ref, dist = _pairs(rng, h, w)
    q, _ = _check_against_reference(dctqa.Metric(yolox_backbone, domain), yolox_backbone, domain, ref, dist)
    assert q[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("domain", ["spectral", "feature"])
def test_fast_equals_reference_torchvision(tv_weights, domain, rng):
    name, path = tv_weights
    bb = dctqa.backbones.get_backbone(name, path)
    ref, dist = _pairs(rng, 24, 31)
    _check_against_reference(dctqa.Metric(bb, domain), bb, domain, ref, dist)


@pytest.mark.parametrize("domain", ["spectral", "pixel", "feature"])
def test_fast_equals_reference_real_frames(vtest_frames, yolox_backbone, domain):
    """Real frames (a crop keeps the literal reference fast), distorted by real H.264 at CRF 41."""
    from tests.helpers import h264_roundtrip

    ref = vtest_frames[:3, 200:296, 300:428]
    dist = h264_roundtrip(ref, crf=41)
    q, _ = _check_against_reference(dctqa.Metric(yolox_backbone, domain), yolox_backbone, domain, ref, dist)
    assert (q > 1.0).all()


def test_identical_frames_score_one(vtest_frames, yolox_backbone):
    for domain in ("spectral", "feature", "pixel"):
        q = dctqa.Metric(yolox_backbone, domain).score(vtest_frames[:2], vtest_frames[:2])
        np.testing.assert_allclose(q, 1.0, atol=1e-6)


def test_q_increases_with_crf_on_vtest(vtest_frames, yolox_backbone):
    """Mean Q over 30 real frames strictly increases with CRF 23 -> 35 -> 47."""
    from tests.helpers import h264_roundtrip

    dists = {crf: h264_roundtrip(vtest_frames, crf=crf) for crf in (23, 35, 47)}
    for backbone in (yolox_backbone, "pixel"):
        m = dctqa.Metric(backbone, "spectral")
        means = [m.score(vtest_frames, dists[crf]).mean() for crf in (23, 35, 47)]
        assert means[0] > 1.0
        assert means[0] < means[1] < means[2], (backbone, means)


def test_input_forms_agree(rng, yolox_backbone):
    ref, dist = _pairs(rng, 16, 20)
    m = dctqa.Metric(yolox_backbone)
    q = m.score(ref, dist)
    as_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    np.testing.assert_allclose(m.score(as_t(ref), as_t(dist)), q, rtol=1e-6)
    np.testing.assert_allclose(m.score(as_t(ref).float(), as_t(dist).double()), q, rtol=1e-6)
    np.testing.assert_allclose(m.score(list(ref), list(dist)), q, rtol=1e-6)
    np.testing.assert_allclose(m.score(ref[1], dist[1]), q[1:2], rtol=1e-6)
    qk = m.score(ref, dist, per_filter=True)
    assert qk.shape == (3, 16)
    np.testing.assert_allclose(qk.mean(axis=1), q, rtol=1e-12)


def test_batch_size_does_not_change_scores(rng):
    ref, dist = _pairs(rng, 12, 12, n=5)
    a = dctqa.Metric("pixel", batch_size=1).score(ref, dist)
    b = dctqa.Metric("pixel", batch_size=4).score(ref, dist)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_metric_is_thread_safe(rng, yolox_backbone):
    ref, dist = _pairs(rng, 40, 48, n=3)
    m = dctqa.Metric(yolox_backbone)
    expected = m.score(ref, dist)
    results = [None] * 6

    def work(i):
        results[i] = m.score(ref, dist)

    from tests.helpers import run_in_threads

    errors = run_in_threads(work, 6)
    assert not errors
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-6)


@pytest.mark.parametrize("ref,dist,match", [
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), "sizes and counts must match"),
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "grayscale"),
    (np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8, 1), np.uint8), "grayscale"),
    (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8), "RGBA"),
    (np.zeros((8, 8, 3), np.int16), np.zeros((8, 8, 3), np.int16), "uint8 or float"),
    (np.zeros((8, 8, 3)), np.full((8, 8, 3), np.nan), "NaN or infinity"),
    (np.zeros((8, 8, 3)), np.full((8, 8, 3), np.inf), "NaN or infinity"),
    (np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 8, 8, 3), np.uint8), "empty"),
    ("a.png", "b.png", "NumPy array or torch tensor"),
])
def test_bad_frames_raise_specific_errors(ref, dist, match):
    with pytest.raises(InputError, match=match):
        dctqa.Metric("pixel").score(ref, dist)


def test_bad_construction():
    with pytest.raises(BackboneError, match="unknown backbone 'resnet9000'"):
        dctqa.Metric("resnet9000")
    with pytest.raises(InputError, match="unknown domain"):
        dctqa.Metric("pixel", domain="wavelet")
    with pytest.raises(InputError, match="feature domain needs"):
        dctqa.Metric("pixel", domain="feature")
    with pytest.raises(BackboneError, match="does not exist"):
        dctqa.Metric("onnx:/nonexistent/model.onnx")
    with pytest.raises(InputError, match="epsilon"):
        dctqa.Metric("pixel", epsilon=float("nan"))


def test_all_zero_frames_stay_finite():
    z = np.zeros((2, 9, 7, 3), np.uint8)
    q = dctqa.Metric("pixel").score(z, z)
    np.testing.assert_array_equal(q, 1.0)


def test_backends_and_registry():
    info = dctqa.backends(dctqa.Metric("pixel"))
    assert info["torch"] is True and info["implementation"] in ("torch", "cpp-op", "cuda-op", "cpp-fused")
    assert (info["implementation"] == "cpp-fused") == info["cpp_fused"]
    sc = info["spectra_cache"]
    assert sc is None or (set(sc) == {"bytes", "entries", "hits", "misses", "max_bytes"} and sc["bytes"] <= sc["max_bytes"])
    m = dctqa.create_metric("dctqa_pixel")
    assert m.lower_better is True and m.domain_name == "pixel"
    with pytest.raises(InputError, match="unknown metric"):
        dctqa.create_metric("vmaf")


def test_float_frames_in_0_1_refused_unless_data_range_1(rng):
    ref, dist = _pairs(rng, 12, 16)
    m = dctqa.Metric("pixel")
    want = m.score(ref, dist)
    as_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    for r, d in ((ref / 255.0, dist / 255.0), (as_t(ref).float() / 255, as_t(dist).float() / 255)):
        with pytest.raises(InputError, match="float frames in 0..1 .*pass data_range=1.0"):
            m.score(r, d)
    unit = dctqa.Metric("pixel", data_range=1.0)
    np.testing.assert_allclose(unit.score(ref / 255.0, dist / 255.0), want, rtol=1e-9)
    np.testing.assert_allclose(unit.score(as_t(ref).float() / 255, as_t(dist).float() / 255), want, rtol=1e-5)
    np.testing.assert_array_equal(unit.score(ref, dist), want)   # uint8 ignores data_range
    with pytest.raises(InputError, match=r"expected values in 0..1 \(data_range=1;"):
        unit.score(ref.astype(np.float32), dist.astype(np.float32))  # 0..255 floats under data_range=1
    np.testing.assert_allclose(m.score(ref.astype(np.float64), dist.astype(np.float64)), want, rtol=1e-9)


def test_black_and_nearly_black_float_frames():
    """All-zero floats are black in both ranges (accepted); a float batch whose largest pixel is
    in (0, 1] is ambiguous and refused, with the way out (uint8) in the message."""
    z = np.zeros((2, 8, 8, 3))
    m = dctqa.Metric("pixel")
    np.testing.assert_array_equal(m.score(z, z), 1.0)
    dark = z.copy()
    dark[:, 0, 0, 0] = 1.0
    with pytest.raises(InputError, match="pass it as uint8"):
        m.score(dark, dark)
    np.testing.assert_array_equal(m.score(dark.astype(np.uint8), dark.astype(np.uint8)), 1.0)
    bright = z.copy()
    bright[:, 0, 0, 0] = 1.5                            # above 1: plainly 0..255
    np.testing.assert_array_equal(m.score(bright, bright), 1.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1", None])
def test_bad_data_range(bad):
    with pytest.raises(InputError, match="data_range must be a finite number > 0"):
        dctqa.Metric("pixel", data_range=bad)


def test_frames_requiring_grad_are_detached(rng):
    ref, dist = _pairs(rng, 10, 12)
    r = (torch.from_numpy(ref).permute(0, 3, 1, 2).double()).requires_grad_()
    m = dctqa.Metric("pixel")
    np.testing.assert_allclose(m.score(r, dist), m.score(ref, dist), rtol=1e-9)
    q = m.score_tensor(r, torch.from_numpy(dist).permute(0, 3, 1, 2))
    assert not q.requires_grad and r.grad is None
