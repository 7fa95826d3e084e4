"""The literal reference against independent formulations of METRIC.md."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from dctqa import reference as R
from dctqa.backbones import get_backbone
from dctqa.errors import InputError


def test_symmetric_extension_is_half_sample_mirror(rng):
    x = rng.normal(size=(3, 4, 5))
    e = R.symmetric_extension(x)
    assert e.shape == (3, 8, 10)
    np.testing.assert_array_equal(e[:, :4, :5], x)
    np.testing.assert_array_equal(e[:, 7, 9], x[:, 0, 0])  # 2N-1-n maps the last row to the first
    np.testing.assert_array_equal(e[:, 4:, :5], x[:, ::-1, :])


def test_spectral_magnitudes_match_dct_identity(rng):
    """A_k = 4 |sum_c C_c conj(G_kc)| with C from SciPy's DCT and G from NumPy's FFT of the padded filter."""
    h, w, k = 9, 6, 5
    x = rng.normal(size=(3, h, w))
    filters = rng.normal(size=(k, 3, 7, 7))  # taller than 2H? no: 7 < 18, but wider than W
    c = scipy.fft.dctn(x, type=2, axes=(1, 2)) / 4.0
    padded = np.zeros((k, 3, 2 * h, 2 * w))
    for i in range(7):
        for j in range(7):
            padded[:, :, i % (2 * h), j % (2 * w)] += filters[:, :, i, j]
    g = np.fft.fft2(padded)[:, :, :h, :w]
    expected = 4.0 * np.abs((c[None] * np.conj(g)).sum(axis=1))
    np.testing.assert_allclose(R.spectral_magnitudes(x, filters), expected, rtol=1e-10, atol=1e-9)


def test_filter_larger_than_torus_wraps(rng):
    """A 7x7 filter on a 1x1 frame (2x2 torus) wraps around several times, as the definition says."""
    x = rng.normal(size=(3, 1, 1))
    filters = rng.normal(size=(2, 3, 7, 7))
    # the extension of a 1x1 image is constant, so y = x . sum(h) everywhere and the DFT is 4 y at (0, 0)
    expected = np.abs(4.0 * np.einsum("c,kc->k", x[:, 0, 0], filters.sum(axis=(2, 3))))
    np.testing.assert_allclose(R.spectral_magnitudes(x, filters)[:, 0, 0], expected, rtol=1e-12)


def test_ratio_reduce_by_hand():
    ao = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    ac = np.array([[1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    eps0 = 0.01 * 2.0 + 1e-12  # lower median of 1,2,3,4 is 2 (rank floor(3/2) = 1)
    q = R.ratio_reduce(ao, ac)
    assert q[0] == pytest.approx(np.mean((ao[0] + eps0) / (1.0 + eps0)), rel=1e-15)
    assert q[1] == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("domain", ["spectral", "feature", "pixel"])
def test_identical_frames_give_exactly_one(domain, yolox_backbone, rng):
    a = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    assert R.score(a, a, yolox_backbone, domain) == 1.0


def test_pixel_domain_tiny_case_by_hand():
    """1x1 frames: A_c = 4 |x_c| and the median of one value is itself."""
    ref = np.array([[[255, 128, 0]]], dtype=np.uint8)
    dist = np.array([[[200, 128, 10]]], dtype=np.uint8)
    q = R.score_filters(ref, dist, "pixel", "pixel")
    for c in range(3):
        ao, ac = 4.0 * float(ref[0, 0, c]) / 255.0, 4.0 * float(dist[0, 0, c]) / 255.0
        eps = 0.01 * ao + 1e-12
        assert q[c] == pytest.approx((ao + eps) / (ac + eps), rel=1e-12)


def test_feature_first_layer_matches_torch_conv(yolox_backbone, rng):
    import torch
    import torch.nn.functional as F

    bb = get_backbone(yolox_backbone)
    x = rng.normal(size=(3, 10, 14))
    st = bb.stem
    z = F.conv2d(torch.tensor(x[None]), torch.tensor(st.weight), stride=st.stride, padding=2)
    z = F.silu(z + torch.tensor(st.shift)[:, None, None])
    np.testing.assert_allclose(R.first_layer(x, bb), z[0].numpy(), rtol=1e-10, atol=1e-10)


def test_reference_rejects_bad_frames():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="sizes must match"):
        R.score(a, np.zeros((4, 5, 3), dtype=np.uint8), "pixel")
    with pytest.raises(InputError, match="H x W x 3"):
        R.score(a[..., 0], a[..., 0], "pixel")
    with pytest.raises(InputError, match="NaN"):
        R.score(a.astype(float), np.full((4, 4, 3), np.nan), "pixel")
