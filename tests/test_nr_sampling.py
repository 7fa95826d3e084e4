"""dctqa::sample_patches (CPU and CUDA kernels) against its torch fallback, and the
statistics of its draws; the uniform and grid samplers.

CPU-kernel tests skip, saying why, when the extension is not built; CUDA tests skip
without a GPU or a CUDA build (benchmarks/gpu_check.sh runs them on a GPU machine).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dctqa import ops
from dctqa.errors import InputError
from dctqa.nr import sampling as S

_CPU_OP = ops.implementation_for("cpu", "sample_patches") == "cpp-op"
needs_cpp = pytest.mark.skipif(not _CPU_OP, reason="dctqa._C has no sample_patches CPU kernel "
                               f"({ops.available()['extension_error'] or 'op disabled or not built'})")
needs_cuda = pytest.mark.skipif(not (torch.cuda.is_available() and ops.implementation_for("cuda", "sample_patches") == "cuda-op"),
                                reason="no CUDA device or dctqa._C built without CUDA kernels")
IMPLS = ["torch", pytest.param("op", marks=needs_cpp)]


def _act(seed: int, n: int = 2, c: int = 6, h: int = 40, w: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, c, h, w, generator=g)
    a[:, :, 10:18, 30:40] *= 6.0
    return a


@needs_cpp
@pytest.mark.parametrize("sigma", [0.0, 2.5, 9.0])
@pytest.mark.parametrize("geom", [(160, 224, 4, 2, 64), (50, 70, 1, 0, 50), (30, 300, 8, 3, 30)])
def test_cpu_op_matches_fallback(sigma: float, geom: tuple) -> None:
    height, width, stride, offset, patch = geom
    a = _act(1, h=max(4, height // stride), w=max(4, width // stride))
    p_op, c_op = ops.sample_patches(a, height, width, stride=stride, offset=offset, patch=patch, num=300,
                                  seed=5, sigma=sigma, impl="op")
    p_t, c_t = ops.sample_patches(a, height, width, stride=stride, offset=offset, patch=patch, num=300,
                                seed=5, sigma=sigma, impl="torch")
    assert p_op.dtype == torch.float32 and c_op.dtype == torch.int64
    torch.testing.assert_close(p_op, p_t, rtol=1e-5, atol=1e-9)
    assert torch.allclose(p_op.sum(dim=(1, 2)), torch.ones(2))
    assert (c_op == c_t).float().mean() > 0.99  # float rounding may move a draw across a cell edge


@needs_cpp
@pytest.mark.parametrize("cells", [(143, 191), (150, 203)])
def test_cpu_op_matches_fallback_conv1_maps(cells: tuple) -> None:
    """Frame-sized conv1 maps (16 channels, sigma 8: the blocked loops, their ragged ends and
    the border taps of the CPU kernel) against the fallback."""
    h, w = cells
    a = torch.randn(1, 16, h, w, generator=torch.Generator().manual_seed(8))
    a[:, :, 60:80, 90:120] *= 4.0
    kw = dict(stride=4, offset=3, patch=224, num=500, seed=4, sigma=8.0)
    p_op, c_op = ops.sample_patches(a, 4 * h + 4, 4 * w + 4, impl="op", **kw)
    p_t, c_t = ops.sample_patches(a, 4 * h + 4, 4 * w + 4, impl="torch", **kw)
    torch.testing.assert_close(p_op, p_t, rtol=1e-5, atol=1e-9)
    assert (c_op == c_t).float().mean() > 0.99


@needs_cpp
def test_cpu_op_threads_do_not_change_results() -> None:
    """A map large enough for the kernel's parallel passes gives the same bits on 1 and 2 threads."""
    a = torch.randn(2, 16, 300, 400, generator=torch.Generator().manual_seed(9))
    kw = dict(stride=2, offset=1, patch=224, num=200, seed=6, sigma=8.0, impl="op")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.sample_patches(a, 600, 800, **kw)
        torch.set_num_threads(2)
        two = ops.sample_patches(a, 600, 800, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


@pytest.mark.parametrize("impl", IMPLS)
def test_draws_follow_the_map(impl: str) -> None:
    """Chi-square goodness of fit of 40 000 draws to the returned map (fixed seed)."""
    g = torch.Generator().manual_seed(3)
    m = torch.rand(1, 1, 6, 8, generator=g) ** 2  # C = 1: the map itself; every cell a valid centre
    prob, corners = ops.sample_patches(m, 6, 8, stride=1, offset=0, patch=1, num=40_000, seed=11, sigma=0.0,
                                     impl=impl)
    torch.testing.assert_close(prob[0], (m[0, 0] / m.sum()).float(), rtol=1e-5, atol=1e-8)
    counts = np.zeros((6, 8))
    np.add.at(counts, (corners[0, :, 0].numpy(), corners[0, :, 1].numpy()), 1)
    expected = prob[0].double().numpy().ravel() * 40_000
    keep = expected > 5
    obs = counts.ravel()[keep]
    exp = expected[keep] * obs.sum() / expected[keep].sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    assert counts.ravel()[~keep].sum() <= 0.01 * 40_000


@pytest.mark.parametrize("impl", IMPLS)
def test_hot_spot_gets_the_centres(impl: str) -> None:
    """A bright 12 x 12-cell square (stride 4) draws >= 90 % of the patch centres."""
    g = torch.Generator().manual_seed(0)
    a = 0.003 * torch.randn(1, 4, 144, 192, generator=g)  # background: 1/1000 of the spot
    a[:, :, 80:92, 100:112] += 3.0
    _, corners = ops.sample_patches(a, 576, 768, stride=4, offset=2, patch=224, num=2000, seed=1, sigma=2.0,
                                  impl=impl)
    cy = corners[0, :, 0] + 112
    cx = corners[0, :, 1] + 112
    inside = (cy >= 80 * 4 - 16) & (cy < 92 * 4 + 16) & (cx >= 100 * 4 - 16) & (cx < 112 * 4 + 16)
    assert inside.float().mean() >= 0.90


@pytest.mark.parametrize("impl", IMPLS)
def test_patches_always_inside(impl: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        height, width = int(rng.integers(20, 300)), int(rng.integers(20, 300))
        patch = int(rng.integers(1, min(height, width) + 1))
        stride, offset = int(rng.integers(1, 9)), int(rng.integers(0, 40))
        h, w = max(1, height // stride + int(rng.integers(-2, 3))), max(1, width // stride + int(rng.integers(-2, 3)))
        a = torch.randn(1, 2, h, w)
        prob, c = ops.sample_patches(a, height, width, stride=stride, offset=offset, patch=patch, num=50,
                                   seed=int(rng.integers(1 << 30)), sigma=float(rng.uniform(0, 5)), impl=impl)
        assert bool(torch.isfinite(prob).all()) and abs(float(prob.sum()) - 1) < 1e-4
        assert int(c[..., 0].min()) >= 0 and int(c[..., 0].max()) <= height - patch
        assert int(c[..., 1].min()) >= 0 and int(c[..., 1].max()) <= width - patch
        for mode in ("uniform", "grid"):
            c = S.patch_corners(mode, height, width, patch, 5, seed=3)
            assert int(c.min()) >= 0 and int(c[..., 0].max()) <= height - patch
            assert int(c[..., 1].max()) <= width - patch


@pytest.mark.parametrize("impl", IMPLS)
def test_same_seed_same_patches(impl: str) -> None:
    a = _act(2)
    kw = dict(stride=4, offset=2, patch=64, num=20, sigma=3.0, impl=impl)
    c1 = ops.sample_patches(a, 160, 224, seed=9, **kw)[1]
    c2 = ops.sample_patches(a, 160, 224, seed=9, **kw)[1]
    c3 = ops.sample_patches(a, 160, 224, seed=10, **kw)[1]
    assert torch.equal(c1, c2) and not torch.equal(c1, c3)
    assert torch.equal(S.uniform_corners(2, 160, 224, 64, 4, 1), S.uniform_corners(2, 160, 224, 64, 4, 1))


def test_zero_map_is_uniform_over_valid_cells() -> None:
    prob, _ = ops.sample_patches(torch.zeros(1, 3, 10, 12), 10, 12, patch=4, num=3, sigma=1.0, impl="torch")
    valid = prob[0] > 0
    assert valid.sum() == 7 * 9 and torch.allclose(prob[0][valid], torch.full((63,), 1 / 63))


def test_grid_and_bad_input() -> None:
    g = S.grid_corners(1, 576, 768, 224, 4)[0].tolist()
    assert g == [[0, 0], [0, 544], [352, 0], [352, 544]]
    assert S.grid_corners(1, 576, 768, 224, 1)[0].tolist() == [[176, 272]]
    with pytest.raises(InputError, match="does not fit"):
        ops.sample_patches(torch.zeros(1, 1, 4, 4), 100, 100, patch=224)
    with pytest.raises(InputError, match="NaN"):
        ops.sample_patches(torch.full((1, 1, 4, 4), float("nan")), 10, 10, patch=2)
    with pytest.raises(InputError, match="unknown sampling"):
        S.patch_corners("random", 10, 10, 2, 1)
    with pytest.raises(InputError, match="activation maps"):
        S.patch_corners("activation", 10, 10, 2, 1)


@needs_cpp
def test_opcheck_cpu() -> None:
    ops.implementation_for("cpu", "sample_patches")  # registers the fake kernel
    a = _act(4, n=1, h=12, w=16)
    torch.library.opcheck(torch.ops.dctqa.sample_patches.default, (a, 48, 64, 4, 2, 20, 3, 1, 1.5),
                          test_utils=("test_schema", "test_faketensor"))


@needs_cuda
@pytest.mark.parametrize("sigma", [0.0, 4.0])
def test_cuda_op_matches_cpu(sigma: float) -> None:
    a = _act(5, n=3, h=144, w=192)
    p_cpu, c_cpu = ops.sample_patches(a, 576, 768, stride=4, offset=2, patch=224, num=500, seed=2, sigma=sigma)
    p_gpu, c_gpu = ops.sample_patches(a.cuda(), 576, 768, stride=4, offset=2, patch=224, num=500, seed=2,
                                    sigma=sigma, impl="op")
    torch.testing.assert_close(p_gpu.cpu(), p_cpu, rtol=1e-6, atol=1e-10)
    assert (c_gpu.cpu() == c_cpu).float().mean() > 0.99
