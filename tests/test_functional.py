"""dctqa.functional.score (tensor in, tensor out) against Metric.score; the deferred (no host
sync) checks on the CPU; the no-sync property on a CUDA device (skips without one)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dctqa
from dctqa import functional as F
from dctqa.errors import InputError


def _pairs(seed: int = 0, n: int = 3, h: int = 20, w: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    return ref, dist


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def pixel() -> dctqa.Metric:
    return dctqa.Metric(domain="pixel")


def test_equals_metric_score_pixel(pixel) -> None:
    ref, dist = _pairs()
    want = pixel.score(ref, dist)
    for r, d, kw in ((_t(ref), _t(dist), {}), (_t(ref).float(), _t(dist).double(), {}),
                     (_t(ref).double() / 255, _t(dist).double() / 255, {"data_range": 1.0})):
        q = F.score(r, d, domain="pixel", **kw)
        assert q.dtype == torch.float64 and q.shape == (3,) and q.device == r.device
        np.testing.assert_allclose(q.numpy(), want, rtol=1e-6)
    q = F.score(_t(ref)[1], _t(dist)[1], metric=pixel)  # one [3, H, W] frame
    np.testing.assert_array_equal(q.numpy(), want[1:2])


@pytest.mark.parametrize("domain", ["spectral", "feature"])
def test_equals_metric_score_yolox(yolox_backbone, domain) -> None:
    ref, dist = _pairs(1, n=2, h=32, w=40)
    want = dctqa.Metric(yolox_backbone, domain).score(ref, dist)
    q = F.score(_t(ref), _t(dist), backbone=yolox_backbone, domain=domain)
    np.testing.assert_allclose(q.numpy(), want, rtol=1e-9)


def test_metric_cached_per_backbone_domain_device(monkeypatch) -> None:
    import dctqa.metric as M

    F.clear_cache()
    loads = []
    real = M.get_backbone
    monkeypatch.setattr(M, "get_backbone", lambda *a, **k: loads.append(a) or real(*a, **k))
    ref, dist = _pairs()
    a = F.score(_t(ref), _t(dist), backbone="pixel", domain="spectral")
    b = F.score(_t(ref), _t(dist), backbone="pixel", domain="spectral")
    assert torch.equal(a, b) and len(loads) == 1        # the second call reused the Metric
    assert F.metric_for("pixel", "spectral", "cpu") is F.metric_for("pixel", "spectral", torch.device("cpu"))
    F.clear_cache()
    F.score(_t(ref), _t(dist), backbone="pixel", domain="spectral")
    assert len(loads) == 2                              # rebuilt after clear_cache
    assert F.metric_for("pixel", "spectral") is not F.metric_for("pixel", "pixel")


def test_no_gradient_and_detached_inputs(pixel) -> None:
    ref, dist = _pairs()
    r = (_t(ref).double() / 255).requires_grad_()
    q = F.score(r, _t(dist).double() / 255, metric=pixel, data_range=1.0)
    assert not q.requires_grad and r.grad is None
    np.testing.assert_allclose(q.numpy(), pixel.score(ref, dist), rtol=1e-6)


def test_bad_arguments(pixel) -> None:
    ref, dist = _pairs()
    with pytest.raises(InputError, match="torch tensors"):
        F.score(ref, dist)
    with pytest.raises(InputError, match="either metric"):
        F.score(_t(ref), _t(dist), metric=pixel, domain="pixel")
    with pytest.raises(InputError, match="must be a dctqa.Metric"):
        F.score(_t(ref), _t(dist), metric=object())
    with pytest.raises(InputError, match="unknown domain"):
        F.score(_t(ref), _t(dist), domain="wavelet")
    with pytest.raises(InputError, match="data_range"):
        F.score(_t(ref), _t(dist), metric=pixel, data_range=0)
    with pytest.raises(InputError, match="sizes and counts"):
        F.score(_t(ref), _t(dist)[:2], metric=pixel)
    with pytest.raises(InputError, match="pass data_range=1.0"):  # CPU frames: value checks raise at once
        F.score(_t(ref).float() / 255, _t(dist).float() / 255, metric=pixel)


def test_deferred_checks_mark_only_bad_pairs_nan_on_cpu(pixel) -> None:
    """The CUDA path's logic (value checks on the device, NaN for a failing pair), run on the CPU."""
    ref, dist = _pairs(n=4)
    want = pixel.score(ref, dist)
    r, d = _t(ref).float(), _t(dist).float()
    r[1, 0, 0, 0] = float("nan")
    d[2, 1, 3, 3] = 300.0  # beyond 0..255 (and the overshoot allowed)
    q = pixel.score_tensor(r, d, defer_checks=True)
    assert torch.isnan(q[1]) and torch.isnan(q[2])
    np.testing.assert_allclose(q[[0, 3]].numpy(), want[[0, 3]], rtol=1e-6)
    with pytest.raises(InputError, match="NaN or infinity"):
        pixel.score_tensor(r, d, defer_checks=False)
    unit = pixel.score_tensor(_t(ref).float() / 255, _t(dist).float() / 255, defer_checks=True)
    assert torch.isnan(unit).all()                     # a 0..1 batch under data_range=255: every pair
    ok = pixel.score_tensor(_t(ref).float() / 255, _t(dist).float() / 255, defer_checks=True, data_range=1.0)
    np.testing.assert_allclose(ok.numpy(), want, rtol=1e-6)
    black = torch.zeros(2, 3, 8, 8)
    np.testing.assert_array_equal(pixel.score_tensor(black, black, defer_checks=True).numpy(), 1.0)
    u8 = pixel.score_tensor(_t(ref), _t(dist), defer_checks=True)  # uint8: nothing to check
    np.testing.assert_array_equal(u8.numpy(), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (no-host-sync check of the GPU path)")
@pytest.mark.parametrize("domain", ["pixel", "spectral"])
def test_cuda_path_does_no_host_sync(domain) -> None:
    ref, dist = _pairs(2, n=3, h=32, w=48)
    backbone = "pixel"
    want = dctqa.Metric(backbone, domain).score(ref, dist)
    r8, d8 = _t(ref).cuda(), _t(dist).cuda()
    rf, df = r8.float() / 255, d8.float() / 255
    F.score(r8, d8, backbone=backbone, domain=domain)   # builds the cached Metric (copies filters once)
    F.score(rf, df, backbone=backbone, domain=domain, data_range=1.0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        q8 = F.score(r8, d8, backbone=backbone, domain=domain)
        qf = F.score(rf, df, backbone=backbone, domain=domain, data_range=1.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert q8.is_cuda and q8.dtype == torch.float64 and q8.shape == (3,)
    np.testing.assert_allclose(q8.cpu().numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(qf.cpu().numpy(), want, rtol=1e-5)
