"""Baseline metrics against independent computations, and torch against NumPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from dctqa import baselines as B
from dctqa.errors import InputError


def rng_img(seed=0, h=64, w=80):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_img(seed=1, h=96, w=128):
    """A natural-ish frame: smoothed noise plus a few hard vertical and horizontal edges."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(128, 60, (h, w, 3)), sigma=(3, 3, 0))
    f[:, w // 3:] += 40
    f[h // 2:, :] -= 30
    return np.clip(f, 0, 255).astype(np.uint8)


def test_luma_weights():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, 1] = (0, 255, 0)
    img[1, 0] = (0, 0, 255)
    img[1, 1] = (10, 20, 30)
    assert np.allclose(B.luma(img), [[0.299 * 255, 0.587 * 255], [0.114 * 255, 2.99 + 11.74 + 3.42]])
    assert B.luma(img).dtype == np.float64


def test_psnr_known_case():
    a = np.full((16, 16), 100, np.uint8)
    b = a.copy()
    b[:8] = 110  # half the pixels off by 10 -> MSE 50
    assert B.mse_np(a, b) == pytest.approx(50.0)
    assert B.psnr_np(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 50))
    assert B.psnr_np(a, a) == 100.0
    # global PSNR is the PSNR of the mean MSE, not the mean PSNR
    assert B.global_psnr([50.0, 0.0]) == pytest.approx(10 * math.log10(255 ** 2 / 25))
    assert B.psnr_from_mse(1e-30) == 100.0  # capped


def test_ssim_equals_skimage():
    for seed in range(3):
        ref = smooth_img(seed)
        noisy = np.clip(ref + np.random.default_rng(seed).normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
        y1, y2 = B.luma(ref), B.luma(noisy)
        want = structural_similarity(y1, y2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
        assert B.ssim_np(ref, noisy) == pytest.approx(want, abs=1e-12)
        for dt in (torch.float64, torch.float32):
            got = B.ssim_torch(B.luma_torch(ref[None], dtype=dt), B.luma_torch(noisy[None], dtype=dt))
            assert float(got[0]) == pytest.approx(want, abs=1e-6)
    assert B.ssim_np(ref, ref) == pytest.approx(1.0)


def test_blockiness():
    rng = np.random.default_rng(3)
    smooth = rng.integers(0, 256, (128, 128)).astype(np.float64)
    assert B.blockiness_np(smooth) == pytest.approx(1.0, abs=0.05)
    # 8x8 block means of a smooth image: flat inside blocks, steps at the grid
    base = ndimage.gaussian_filter(rng.normal(128, 50, (128, 128)), 2)
    blocks = base.reshape(16, 8, 16, 8).mean(axis=(1, 3)).repeat(8, 0).repeat(8, 1)
    noisy_blocks = blocks + rng.normal(0, 0.5, blocks.shape)
    assert B.blockiness_np(noisy_blocks) > 3.0
    # independent count: columns 7, 15, ... against the rest, by explicit loops on a small case
    y = rng.normal(0, 1, (10, 17))
    on_h = [abs(y[i, j + 1] - y[i, j]) for i in range(10) for j in range(16) if j % 8 == 7]
    off_h = [abs(y[i, j + 1] - y[i, j]) for i in range(10) for j in range(16) if j % 8 != 7]
    on_v = [abs(y[i + 1, j] - y[i, j]) for i in range(9) for j in range(17) if i % 8 == 7]
    off_v = [abs(y[i + 1, j] - y[i, j]) for i in range(9) for j in range(17) if i % 8 != 7]
    want = 0.5 * (np.mean(on_h) / (np.mean(off_h) + 1e-6) + np.mean(on_v) / (np.mean(off_v) + 1e-6))
    assert B.blockiness_np(y) == pytest.approx(want)


def test_noise_estimates_sigma():
    rng = np.random.default_rng(4)
    flat = np.full((256, 256), 128.0)
    for sigma in (2.0, 5.0, 10.0):
        est = B.noise_np(flat + rng.normal(0, sigma, flat.shape))
        assert est == pytest.approx(sigma, rel=0.05)
    # a linear ramp has no second difference: no noise
    ramp = np.add.outer(np.arange(64.0), 2 * np.arange(80.0))
    assert B.noise_np(ramp) == pytest.approx(0.0, abs=1e-9)


def test_contrast():
    y = np.random.default_rng(5).normal(0, 1, (40, 50))
    assert B.contrast_np(y) == pytest.approx(math.sqrt(((y - y.mean()) ** 2).mean()))


def test_blur_edge_width():
    """A horizontal ramp of known width between two flat levels: every edge is that wide."""
    for width in (1, 4, 9):
        row = np.concatenate([np.zeros(20), np.linspace(0, 200, width + 1)[1:], np.full(20, 200.0)])
        img = np.tile(row, (12, 1))
        assert B.blur_np(img) == pytest.approx(width)
        assert float(B.blur_torch(torch.as_tensor(img)[None])[0]) == pytest.approx(width)
    # falling edges measure the same
    assert B.blur_np(img[:, ::-1]) == pytest.approx(9)
    # blurring a sharp frame widens its edges; a flat frame has no edge
    sharp = smooth_img(7)
    assert B.blur_np(ndimage.gaussian_filter(B.luma(sharp), 2.0)) > B.blur_np(sharp)
    assert math.isnan(B.blur_np(np.full((20, 20), 7.0)))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_torch_matches_numpy(dtype, tol):
    refs = np.stack([smooth_img(s) for s in range(3)] + [rng_img(9, 96, 128)])
    rng = np.random.default_rng(11)
    dists = np.clip(refs + rng.normal(0, 6, refs.shape), 0, 255).astype(np.uint8)
    dists[1] = refs[1]  # identical pair: PSNR cap
    got = B.compute_baselines(refs, dists, dtype=dtype)
    for name, m in B.BASELINES.items():
        want = np.array([m.numpy_fn(r, d) if m.info.kind == "FR" else m.numpy_fn(d) for r, d in zip(refs, dists)])
        assert got[name].shape == (4,)
        np.testing.assert_allclose(got[name], want, rtol=tol, atol=tol, err_msg=name)
    assert got["psnr"][1] == 100.0
    np.testing.assert_allclose(got["mse"], [B.mse_np(r, d) for r, d in zip(refs, dists)], rtol=tol)


def test_registry():
    assert B.baseline_names() == ["psnr", "ssim", "blockiness", "blur", "noise", "contrast"]
    psnr, blur = B.get_baseline("psnr").info, B.get_baseline("blur").info
    assert psnr.kind == "FR" and not psnr.lower_better and psnr.unit == "dB" and psnr.range == (0.0, 100.0)
    assert blur.kind == "NR" and blur.lower_better
    assert not B.get_baseline("contrast").info.lower_better
    with pytest.raises(InputError, match="unknown baseline"):
        B.get_baseline("vmaf")


def test_bad_inputs():
    with pytest.raises(InputError, match="differ"):
        B.psnr_np(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(InputError):
        B.ssim_np(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(InputError):
        B.compute_baselines(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(InputError):
        B.luma(np.zeros((4,)))


def test_filter_paths_agree():
    """The CPU (scipy) and device (shift-and-add) separable filters give the same valid output."""
    t = torch.rand(3, 30, 41, dtype=torch.float64) * 255
    k = B._gauss1d(1.5, 5, torch.float64, "cpu")
    a, b = B._filter_valid(t, k), B._filter_valid_torch(t, k)
    assert a.shape == b.shape == (3, 20, 31)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-9)
    # one output pixel by the definition: sum of k_i k_j t[y+i, x+j]
    want = sum(float(k[i]) * float(k[j]) * float(t[1, 4 + i, 7 + j]) for i in range(11) for j in range(11))
    assert float(a[1, 4, 7]) == pytest.approx(want, rel=1e-12)


def test_metric_registry_scorers():
    from dctqa import create_metric, list_metrics

    names = {m.name: m for m in list_metrics()}
    assert names["ssim"].kind == "FR" and not names["ssim"].lower_better
    assert names["noise"].kind == "NR" and names["noise"].lower_better
    ref = smooth_img(2)
    dist = np.clip(ref.astype(int) + 9, 0, 255).astype(np.uint8)
    psnr = create_metric("psnr")
    assert psnr.score(ref, dist)[0] == pytest.approx(B.psnr_np(ref, dist), abs=1e-9)
    assert create_metric("contrast").score(np.stack([ref, dist]))[1] == pytest.approx(B.contrast_np(dist))
    with pytest.raises(InputError):
        psnr.score(ref)
