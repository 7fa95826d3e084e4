"""The compiled ops (torch.ops.dctqa.*) against the literal float64 reference.

METRIC.md's tolerance: ``|Q_fast - Q_ref| <= 1e-4 * Q_ref`` (Q = mean_k Q_k per frame).
CPU-op tests skip, saying why, when the extension is not built; CUDA tests skip
without a GPU or without a CUDA build of the extension.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dctqa import ops, reference
from dctqa.constants import EPSILON
from dctqa.ops.dct import dct2


_AVAIL = ops.available()
needs_cpp = pytest.mark.skipif(not _AVAIL["cpp"], reason=f"dctqa._C CPU kernels not built: {_AVAIL['extension_error']}")
needs_cuda = pytest.mark.skipif(
    not (_AVAIL["cuda"] and _AVAIL["cuda_device"]),
    reason=("no CUDA device" if not _AVAIL["cuda_device"] else "dctqa._C built without CUDA kernels"),
)
TOL = 1e-4  # METRIC.md, relative, on Q


# ---------------------------------------------------------------- helpers
def _filters(k: int, size: int, seed: int) -> np.ndarray:
    """Random ``k x 3 x size x size`` filter bank with some smooth, some edge-like filters."""
    g = np.random.default_rng(seed)
    f = g.normal(size=(k, 3, size, size))
    f[::2] = np.cumsum(f[::2], axis=-1) / size  # low-pass-ish half
    return f


def _blur(x: np.ndarray, passes: int = 3) -> np.ndarray:
    """Separable [1, 2, 1]/4 box blur with edge replication, ``3 x H x W``."""
    for _ in range(passes):
        p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4
        x = (x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]) / 4
    return x


def _mixed_batch(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three pairs (``3 x 3 x H x W`` float64 each): identical, noisy, heavily blurred.

    Content: a smooth random field plus texture, scaled like an ImageNet-normalised frame.
    """
    g = np.random.default_rng(seed)
    base = g.normal(size=(3, 3, h, w))
    ref = np.stack([_blur(b, 1) * 2.0 + 0.3 * g.normal(size=(3, h, w)) for b in base])
    dist = ref.copy()
    dist[1] = ref[1] + 0.2 * g.normal(size=(3, h, w))
    dist[2] = _blur(ref[2], 6)
    return ref, dist


def _ref_qk(xo: np.ndarray, xc: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """``[N, K]`` Q_k by the literal reference (float64) for preprocessed frames ``N x 3 x H x W``."""
    return np.stack([reference.ratio_reduce(reference.spectral_magnitudes(o, filters),
                                            reference.spectral_magnitudes(c, filters), EPSILON)
                     for o, c in zip(xo, xc)])


def _op_qk(xo: np.ndarray, xc: np.ndarray, filters: np.ndarray, device: str = "cpu") -> torch.Tensor:
    co = dct2(torch.from_numpy(xo).float().to(device))
    cc = dct2(torch.from_numpy(xc).float().to(device))
    f = torch.from_numpy(filters).float().to(device)
    return torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON)


def _assert_q_close(q_fast: np.ndarray, q_ref: np.ndarray, tol: float = TOL) -> None:
    q_fast, q_ref = np.asarray(q_fast, np.float64), np.asarray(q_ref, np.float64)
    err = np.abs(q_fast - q_ref) / q_ref
    assert np.all(err <= tol), f"relative Q error {err.max():.3g} > {tol}: fast {q_fast}, ref {q_ref}"


# ---------------------------------------------------------------- spectral op, CPU
@needs_cpp
@pytest.mark.parametrize("h,w,k,ks", [(1, 1, 16, 6), (7, 5, 16, 6), (33, 65, 16, 6), (64, 64, 16, 6),
                                      (7, 5, 64, 7), (33, 65, 64, 7), (64, 64, 64, 7)])
def test_spectral_op_matches_reference(h: int, w: int, k: int, ks: int) -> None:
    xo, xc = _mixed_batch(h, w, seed=h * 1000 + w + k)
    filters = _filters(k, ks, seed=k + ks)
    q_ref = _ref_qk(xo, xc, filters)
    q_op = _op_qk(xo, xc, filters)
    assert q_op.dtype == torch.float64 and q_op.shape == (3, k)
    _assert_q_close(q_op.mean(1).numpy(), q_ref.mean(1))
    # Per-filter values agree too (looser: a single filter's mean is not averaged over K).
    np.testing.assert_allclose(q_op.numpy(), q_ref, rtol=1e-3)
    # Identical pair: A^o and A^c are the same floats, so every ratio is exactly 1.
    assert abs(float(q_op[0].mean()) - 1.0) <= 1e-6
    if h * w > 1:
        assert float(q_op[2].mean()) > 1.0 + 1e-3  # blur removes high frequencies


@needs_cpp
def test_spectral_op_filters_larger_than_frame_wrap_around() -> None:
    """kh > 2H: the filter wraps around the 2H x 2W torus (METRIC.md's formula)."""
    xo, xc = _mixed_batch(3, 2, seed=7)
    filters = _filters(4, 9, seed=3)[:, :, :, :5]  # 9 x 5 taps on a 6 x 4 torus
    _assert_q_close(_op_qk(xo, xc, filters).mean(1).numpy(), _ref_qk(xo, xc, filters).mean(1))


def _vtest_pairs(vtest_path, crop: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Two real frames of vtest.avi and degraded versions (libx264 CRF 45; 8x8 block-DCT quantiser).

    Returns ``ref, dist`` as ``N x 3 x H x W`` float64, ImageNet-normalised RGB.
    """
    import scipy.fft

    from dctqa.io import read_frames

    from .helpers import h264_roundtrip

    frames = read_frames(vtest_path, max_frames=12)[[0, 11]]
    if crop is not None:
        frames = np.ascontiguousarray(frames[:, 100:100 + crop[0], 200:200 + crop[1]])
    x264 = h264_roundtrip(frames, crf=45)
    # JPEG-like: 8x8 orthonormal block DCT, uniform quantiser with step 40.
    n, h, w, _ = frames.shape
    blocks = frames[:, : h // 8 * 8, : w // 8 * 8].astype(np.float64).reshape(n, h // 8, 8, w // 8, 8, 3)
    coef = scipy.fft.dctn(blocks, axes=(2, 4), norm="ortho")
    quant = scipy.fft.idctn(np.round(coef / 40) * 40, axes=(2, 4), norm="ortho")
    jpeg = frames.copy()
    jpeg[:, : h // 8 * 8, : w // 8 * 8] = np.clip(np.round(quant), 0, 255).reshape(n, h // 8 * 8, w // 8 * 8, 3)
    ref = np.concatenate([frames, frames])
    dist = np.concatenate([x264, jpeg])
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    pre = lambda f: (f.transpose(0, 3, 1, 2) / 255.0 - mean) / std  # noqa: E731
    return pre(ref), pre(dist)


@needs_cpp
def test_spectral_op_matches_reference_on_real_frames(vtest_path) -> None:
    ref, dist = _vtest_pairs(vtest_path, crop=(96, 128))
    filters = _filters(16, 6, seed=11)
    q_ref = _ref_qk(ref, dist, filters).mean(1)
    q_op = _op_qk(ref, dist, filters).mean(1).numpy()
    _assert_q_close(q_op, q_ref)
    assert np.all(q_ref > 1.0)


@needs_cpp
def test_spectral_op_matches_torch_path_full_frame(vtest_path) -> None:
    """576 x 768, K = 64 (7 x 7): the op against the float64 torch fallback of the same identity."""
    from dctqa.ops.spectral_torch import spectral_qk_torch

    ref, dist = _vtest_pairs(vtest_path, crop=None)
    ref, dist = ref[:2], dist[[0, 3]]  # one H.264 pair, one block-quantised pair
    filters = _filters(64, 7, seed=5)
    co, cc = dct2(torch.from_numpy(ref)), dct2(torch.from_numpy(dist))  # float64 DCTs
    q_t = spectral_qk_torch(co, cc, torch.from_numpy(filters), EPSILON).mean(1).numpy()
    q_op = torch.ops.dctqa.spectral_qk(co.float(), cc.float(), torch.from_numpy(filters).float(),
                                       EPSILON).mean(1).numpy()
    _assert_q_close(q_op, q_t, tol=2e-5)


@needs_cpp
def test_spectral_op_batch_independent_of_chunking(monkeypatch) -> None:
    """Frames scored in one batch equal the same frames scored one at a time."""
    xo, xc = _mixed_batch(20, 24, seed=9)
    f = _filters(5, 3, seed=1)
    full = _op_qk(xo, xc, f)
    single = torch.cat([_op_qk(xo[i:i + 1], xc[i:i + 1], f) for i in range(3)])
    torch.testing.assert_close(full, single, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- ratio op, CPU
def _ref_ratio(ao: np.ndarray, ac: np.ndarray) -> np.ndarray:
    return np.stack([reference.ratio_reduce(a, c, EPSILON) for a, c in zip(ao.astype(np.float64), ac.astype(np.float64))])


@needs_cpp
@pytest.mark.parametrize("m", [1, 2, 5, 8192, 8193, 100_000])
@pytest.mark.parametrize("kind", ["random", "sorted", "ties", "constant", "heavy_tail", "gap"])
def test_ratio_op_exact_lower_median(m: int, kind: str) -> None:
    _check_ratio_median(m, kind)


@needs_cpp
@pytest.mark.parametrize("kind", ["random", "heavy_tail", "gap"])
def test_ratio_op_exact_lower_median_large_plane(kind: str) -> None:
    """Planes large enough that the bracketed values are bracketed again."""
    _check_ratio_median(1_500_001, kind)


def _check_ratio_median(m: int, kind: str) -> None:
    """``ac = 0`` makes Q_k = 1 + mean(ao) / eps_k, so a wrong median rank shows at once."""
    g = np.random.default_rng(m + len(kind))
    n, k = 2, 3
    if kind == "random":
        ao = g.random((n, k, m))
    elif kind == "sorted":  # adversarial for the sample-bracket selection
        ao = np.sort(g.random((n, k, m)), axis=-1) ** 8
    elif kind == "ties":
        ao = g.integers(0, 4, (n, k, m)).astype(np.float64)
    elif kind == "constant":
        ao = np.full((n, k, m), 2.5)
    elif kind == "gap":  # rank r is 1.0, ranks below are <= 0.5, ranks above >= 2: an off-by-one shows
        r = (m - 1) // 2
        ao = np.concatenate([0.5 * g.random((n, k, r)), np.ones((n, k, 1)), 2 + g.random((n, k, m - r - 1))], -1)
        ao = g.permuted(ao, axis=-1)
    else:
        ao = g.pareto(0.7, (n, k, m))
    ao = ao.astype(np.float32)
    ac = np.zeros_like(ao)
    got = torch.ops.dctqa.ratio_qk(torch.from_numpy(ao), torch.from_numpy(ac), EPSILON).numpy()
    want = _ref_ratio(ao, ac)
    np.testing.assert_allclose(got, want, rtol=2e-6)


@needs_cpp
def test_ratio_op_matches_reference_and_torch() -> None:
    from dctqa.ops.ratio_torch import ratio_qk_torch

    g = np.random.default_rng(0)
    ao = (g.gamma(0.5, 10.0, (4, 16, 3000))).astype(np.float32)
    ac = (ao * g.uniform(0.2, 1.5, ao.shape)).astype(np.float32)
    ac[0] = ao[0]
    got = ops.ratio_qk(torch.from_numpy(ao), torch.from_numpy(ac), EPSILON)
    assert ops.implementation_for("cpu", "ratio_qk") == "cpp-op"
    np.testing.assert_allclose(got.numpy(), _ref_ratio(ao, ac), rtol=1e-6)
    np.testing.assert_allclose(got.numpy(), ratio_qk_torch(torch.from_numpy(ao), torch.from_numpy(ac), EPSILON).numpy(),
                               rtol=1e-6)
    assert np.all(got.numpy()[0] == 1.0)
    # Trailing frequency dims are flattened: [N, K, H, W] == [N, K, H*W].
    got4 = ops.ratio_qk(torch.from_numpy(ao).reshape(4, 16, 50, 60), torch.from_numpy(ac).reshape(4, 16, 50, 60), EPSILON)
    torch.testing.assert_close(got4, got, rtol=0, atol=0)


# ---------------------------------------------------------------- dispatch layer
def test_available_report_shape() -> None:
    a = ops.available()
    assert set(a) == {"reference", "torch", "cpp", "cpp_fused", "cuda", "cuda_device", "extension_error"}
    assert a["reference"] is True and a["torch"] is True
    assert isinstance(a["cpp"], bool) and isinstance(a["cuda"], bool) and isinstance(a["cpp_fused"], bool)
    assert ops.implementation_for("cpu", ops.FUSED_OP) == ("cpp-fused" if a["cpp_fused"] else "torch")
    assert a["cuda_device"] == torch.cuda.is_available()
    assert (a["extension_error"] is None) == (a["cpp"] or a["cuda"])
    assert ops.implementation_for("cpu") == ("cpp-op" if a["cpp"] else "torch")


def test_disable_env_forces_torch_path(monkeypatch) -> None:
    xo, xc = _mixed_batch(9, 11, seed=2)
    f = _filters(4, 5, seed=2)
    co, cc = dct2(torch.from_numpy(xo).float()), dct2(torch.from_numpy(xc).float())
    ft = torch.from_numpy(f).float()
    fast = ops.spectral_qk(co, cc, ft, EPSILON)
    monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
    assert ops.implementation_for("cpu") == "torch"
    assert ops.implementation_for("cuda", "ratio_qk") == "torch"
    slow = ops.spectral_qk(co, cc, ft, EPSILON)
    assert slow.dtype == torch.float64 and slow.shape == (3, 4)
    _assert_q_close(fast.mean(1).numpy(), slow.mean(1).numpy(), tol=1e-5)


def test_bad_input_raises_input_error() -> None:
    from dctqa.errors import InputError

    x = torch.zeros(1, 3, 4, 4)
    f = torch.zeros(2, 3, 3, 3)
    with pytest.raises(InputError, match="same shape|differ in shape"):
        ops.spectral_qk(x, torch.zeros(1, 3, 4, 5), f, EPSILON)
    with pytest.raises(InputError, match="input channels"):
        ops.spectral_qk(x, x, torch.zeros(2, 1, 3, 3), EPSILON)
    with pytest.raises(InputError, match="4 dimensions"):
        ops.spectral_qk(x[0], x[0], f, EPSILON)
    with pytest.raises(InputError, match="differ in shape"):
        ops.ratio_qk(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), EPSILON)
    with pytest.raises(InputError, match="unknown op"):
        ops.implementation_for("cpu", "nope")


@needs_cpp
def test_op_rejects_bad_dtype_directly() -> None:
    x = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.dctqa.spectral_qk(x, x, torch.zeros(2, 3, 3, 3), EPSILON)


def test_metric_uses_op_and_matches_torch_path(monkeypatch) -> None:
    """dctqa.Metric (pixel backbone, spectral and pixel domains) with and without the ops."""
    import dctqa

    g = np.random.default_rng(4)
    ref = g.integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + g.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    for domain in ("spectral", "pixel"):
        m = dctqa.Metric(backbone="pixel", domain=domain)
        fast = m.score(ref, dist)
        monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
        slow = m.score(ref, dist)
        monkeypatch.delenv("DCTQA_DISABLE_OPS")
        _assert_q_close(fast, slow, tol=1e-5)
        _assert_q_close(fast, [reference.score(r, d, backbone="pixel", domain=domain) for r, d in zip(ref, dist)])


# ---------------------------------------------------------------- fake kernels / torch.compile
@needs_cpp
def test_opcheck_spectral_and_ratio() -> None:
    xo, xc = _mixed_batch(6, 8, seed=1)
    co, cc = dct2(torch.from_numpy(xo).float()), dct2(torch.from_numpy(xc).float())
    f = torch.from_numpy(_filters(3, 3, seed=1)).float()
    torch.library.opcheck(torch.ops.dctqa.spectral_qk.default, (co, cc, f, EPSILON))
    ao, ac = torch.rand(2, 3, 17), torch.rand(2, 3, 17)
    torch.library.opcheck(torch.ops.dctqa.ratio_qk.default, (ao, ac, EPSILON))


@needs_cpp
def test_ops_under_torch_compile() -> None:
    def q(co, cc, f, ao, ac):
        return torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON).mean(1) + torch.ops.dctqa.ratio_qk(ao, ac, EPSILON).sum(1)

    xo, xc = _mixed_batch(6, 8, seed=3)
    args = (dct2(torch.from_numpy(xo).float()), dct2(torch.from_numpy(xc).float()),
            torch.from_numpy(_filters(3, 3, seed=3)).float(), torch.rand(3, 2, 9), torch.rand(3, 2, 9))
    compiled = torch.compile(q, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(*args), q(*args))


# ---------------------------------------------------------------- CUDA
@needs_cuda
@pytest.mark.parametrize("h,w,k,ks", [(1, 1, 16, 6), (7, 5, 16, 6), (33, 65, 64, 7), (64, 64, 64, 7)])
def test_cuda_spectral_matches_reference(h: int, w: int, k: int, ks: int) -> None:
    xo, xc = _mixed_batch(h, w, seed=h + w + k)
    filters = _filters(k, ks, seed=k)
    q = _op_qk(xo, xc, filters, device="cuda")
    assert q.is_cuda and q.dtype == torch.float64
    _assert_q_close(q.mean(1).cpu().numpy(), _ref_qk(xo, xc, filters).mean(1))
    assert abs(float(q[0].mean()) - 1.0) <= 1e-6


@needs_cuda
def test_cuda_spectral_matches_cpu_op_full_frame(vtest_path) -> None:
    ref, dist = _vtest_pairs(vtest_path, crop=None)
    f = _filters(64, 7, seed=8)
    q_cpu = _op_qk(ref, dist, f).mean(1).numpy()
    q_gpu = _op_qk(ref, dist, f, device="cuda").mean(1).cpu().numpy()
    _assert_q_close(q_gpu, q_cpu, tol=1e-5)


@needs_cuda
def test_cuda_ratio_matches_cpu_op() -> None:
    g = np.random.default_rng(1)
    for m in (1, 2, 7, 8193, 300_000):
        ao = g.gamma(0.5, 10.0, (3, 5, m)).astype(np.float32)
        ac = (ao * g.uniform(0.2, 1.5, ao.shape)).astype(np.float32)
        a, c = torch.from_numpy(ao), torch.from_numpy(ac)
        got = torch.ops.dctqa.ratio_qk(a.cuda(), c.cuda(), EPSILON).cpu()
        torch.testing.assert_close(got, torch.ops.dctqa.ratio_qk(a, c, EPSILON), rtol=1e-6, atol=0)
        assert ops.implementation_for("cuda", "ratio_qk") == "cuda-op"


@needs_cuda
def test_cuda_memory_bounded_in_batch() -> None:
    """Peak extra memory of the spectral op is bounded by its workspace budget, not by N."""
    h, w, k = 288, 384, 64
    f = torch.randn(k, 3, 7, 7, device="cuda")
    peaks = []
    for n in (2, 16):
        co = torch.randn(n, 3, h, w, device="cuda")
        cc = torch.randn(n, 3, h, w, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
    # A^o of the whole batch would be 16 x 64 x 288 x 384 floats = 453 MB; the op keeps at
    # most its default 256 MiB budget of them (plus small per-block partial sums).
    assert peaks[1] <= (256 << 20) + (32 << 20)
    assert peaks[1] < 16 * k * h * w * 4


@needs_cuda
def test_cuda_ops_under_torch_compile() -> None:
    xo, xc = _mixed_batch(6, 8, seed=3)
    co, cc = dct2(torch.from_numpy(xo).float().cuda()), dct2(torch.from_numpy(xc).float().cuda())
    f = torch.from_numpy(_filters(3, 3, seed=3)).float().cuda()
    fn = torch.compile(lambda a, b, c: torch.ops.dctqa.spectral_qk(a, b, c, EPSILON), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(fn(co, cc, f), torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON))


# ---------------------------------------------------------------- without the extension / other chunkings
def _run_py(code: str, env_extra: dict[str, str]) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, **env_extra)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_package_works_without_extension() -> None:
    """With dctqa._C unimportable, available() says why and the torch fallback answers."""
    code = (
        "import sys; sys.modules['dctqa._C'] = None\n"
        "import torch, json\n"
        "from dctqa import ops\n"
        "from dctqa.ops.dct import dct2\n"
        "a = ops.available()\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(2, 3, 9, 12, generator=g); y = x + 0.1 * torch.randn(2, 3, 9, 12, generator=g)\n"
        "f = torch.randn(4, 3, 3, 3, generator=g)\n"
        "q = ops.spectral_qk(dct2(x), dct2(y), f, 0.01)\n"
        "r = ops.ratio_qk(x.abs(), y.abs(), 0.01)\n"
        "from dctqa.backbones.base import IMAGENET\n"
        "u8 = torch.randint(0, 256, (2, 3, 9, 12), dtype=torch.uint8, generator=g)\n"
        "u8d = torch.randint(0, 256, (2, 3, 9, 12), dtype=torch.uint8, generator=g)\n"
        "fq = ops.spectral_qk_frames(u8, u8d, f, IMAGENET, 0.01)\n"
        "print(json.dumps({'a': a, 'impl': ops.implementation_for('cpu'), 'q': q.tolist(), 'r': r.tolist(),\n"
        "                  'fimpl': ops.implementation_for('cpu', 'spectral_qk_frames'), 'fq': fq.tolist()}))\n"
    )
    import json

    out = json.loads(_run_py(code, {}).strip().splitlines()[-1])
    assert out["a"]["cpp"] is False and out["a"]["cuda"] is False
    assert "ImportError" in out["a"]["extension_error"] or "ModuleNotFoundError" in out["a"]["extension_error"]
    assert out["impl"] == "torch" and out["fimpl"] == "torch" and out["a"]["cpp_fused"] is False
    q = np.array(out["q"])
    assert q.shape == (2, 4) and np.all(np.isfinite(q)) and np.all(q > 0)
    if _AVAIL["cpp"]:  # same numbers as the op
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 9, 12, generator=g)
        y = x + 0.1 * torch.randn(2, 3, 9, 12, generator=g)
        f = torch.randn(4, 3, 3, 3, generator=g)
        _assert_q_close(q.mean(1), ops.spectral_qk(dct2(x), dct2(y), f, EPSILON).mean(1).numpy(), tol=1e-5)
        if _AVAIL["cpp_fused"]:  # the fused op's fallback gives the op's numbers (same generator)
            from dctqa.backbones.base import IMAGENET

            u8 = torch.randint(0, 256, (2, 3, 9, 12), dtype=torch.uint8, generator=g)
            u8d = torch.randint(0, 256, (2, 3, 9, 12), dtype=torch.uint8, generator=g)
            fused = ops.spectral_qk_frames(u8, u8d, f, IMAGENET, EPSILON)
            _assert_q_close(np.array(out["fq"]).mean(1), fused.mean(1).numpy(), tol=1e-5)


@needs_cpp
def test_spectral_op_small_chunk_budget_same_result(tmp_path) -> None:
    """DCTQA_CPU_CHUNK_MB=1 forces one frame and one filter per work item: same Q_k."""
    xo, xc = _mixed_batch(300, 400, seed=21)
    f = _filters(5, 6, seed=21)
    np.save(tmp_path / "xo.npy", xo)
    np.save(tmp_path / "xc.npy", xc)
    np.save(tmp_path / "f.npy", f)
    code = (
        "import numpy as np, torch, sys\n"
        "from dctqa import ops\n"
        "from dctqa.ops.dct import dct2\n"
        f"p = {str(tmp_path)!r}\n"
        "xo, xc, f = (torch.from_numpy(np.load(p + '/' + n + '.npy')).float() for n in ('xo', 'xc', 'f'))\n"
        "assert ops.implementation_for('cpu') == 'cpp-op'\n"
        "np.save(p + '/q.npy', ops.spectral_qk(dct2(xo), dct2(xc), f, 0.01).numpy())\n"
    )
    _run_py(code, {"DCTQA_CPU_CHUNK_MB": "1"})
    q_small = np.load(tmp_path / "q.npy")
    q_default = _op_qk(xo, xc, f).numpy()
    np.testing.assert_allclose(q_small, q_default, rtol=1e-12, atol=0)


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_non_finite_inputs_raise_instead_of_a_nan_score(monkeypatch, impl) -> None:
    """NaN or infinity in the inputs, or responses beyond float32, would give a NaN Q_k:
    every public entry point raises InputError instead, on the compiled op and on the torch path."""
    from dctqa.backbones.base import IMAGENET
    from dctqa.errors import InputError

    if impl == "op" and not _AVAIL["cpp_fused"]:
        pytest.skip(f"compiled ops not built: {_AVAIL['extension_error']}")
    if impl == "torch":
        monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
    g = torch.Generator().manual_seed(3)
    co = torch.randn(1, 3, 96, 80, generator=g)
    cc = co + 0.1 * torch.randn(1, 3, 96, 80, generator=g)
    f = torch.randn(4, 3, 6, 6, generator=g)
    assert torch.isfinite(ops.spectral_qk(co, cc, f, EPSILON)).all()
    for bad in (float("nan"), float("inf")):
        x = co.clone()
        x[0, 1, 5, 7] = bad
        with pytest.raises(InputError, match="spectral_qk: a Q_k came out NaN or infinite"):
            ops.spectral_qk(x, cc, f, EPSILON)
    if impl == "op":  # |response| ~ 1e25: squared in float32 by the op (torch takes complex abs: finite)
        with pytest.raises(InputError, match="within float32"):
            ops.spectral_qk(co * 1e24, cc * 1e24, f, EPSILON)
    else:
        assert torch.isfinite(ops.spectral_qk(co * 1e24, cc * 1e24, f, EPSILON)).all()
    ao = torch.rand(2, 3, 50, generator=g)
    ao[1, 2, 7] = float("nan")
    with pytest.raises(InputError, match="ratio_qk: a Q_k came out NaN"):
        ops.ratio_qk(ao, torch.rand(2, 3, 50, generator=g), EPSILON)
    frames = torch.rand(1, 3, 64, 64, generator=g) * 255
    bad_frames = frames.clone()
    bad_frames[0, 0, 1, 1] = float("nan")
    with pytest.raises(InputError, match="spectral_qk_frames|spectral_qk:"):
        ops.spectral_qk_frames(bad_frames, frames, f, IMAGENET, EPSILON)


_FALLBACK_LOG = """
import logging, sys, torch
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelname, record.getMessage()))
logging.getLogger("dctqa").addHandler(Keep())
logging.getLogger("dctqa").setLevel(logging.DEBUG)
if {broken}:
    sys.modules["dctqa._C"] = None  # the extension cannot be imported (as when it is not built)
from dctqa import ops
co = torch.rand(1, 3, 16, 16)
for _ in range(3):
    ops.available()
    q = ops.spectral_qk(co, co, torch.rand(2, 3, 3, 3), 0.01)
print("IMPL", ops.implementation_for("cpu"), "Q", q.tolist())
for r in records:
    print("LOG", *r, sep="|")
"""


def test_extension_load_failure_warns_once_with_the_reason():
    """A failed load of dctqa._C is said once per process on the "dctqa.ops" logger, with its
    reason, and every op then takes the torch path (simulated in a subprocess)."""
    out = _run_py(_FALLBACK_LOG.format(broken=True), {"DCTQA_DISABLE_OPS": "0"})
    logs = [line.split("|")[1:] for line in out.splitlines() if line.startswith("LOG")]
    assert len(logs) == 1, out
    name, level, message = logs[0]
    assert name == "dctqa.ops" and level == "WARNING"
    assert message.startswith("dctqa: the C++ extension did not load (ModuleNotFoundError: ")
    assert "dctqa._C" in message and message.endswith("); using the slow torch fallback")
    assert "IMPL torch Q [[1.0, 1.0]]" in out


def test_no_warning_when_the_extension_loads():
    if not ops.available()["cpp"]:
        pytest.skip("the compiled extension is not built here (the warning is then expected)")
    out = _run_py(_FALLBACK_LOG.format(broken=False), {"DCTQA_DISABLE_OPS": "0"})
    assert "LOG" not in out and "IMPL cpp-op Q [[1.0, 1.0]]" in out


def test_availability_is_reported_by_the_extension():
    """dispatch asks the extension which kernels it holds (dctqa._C.kernels()), not torch."""
    if not ops.available()["cpp"]:
        pytest.skip("the compiled extension is not built here")
    import dctqa._C as ext

    kernels = ext.kernels()
    assert set(kernels) == {"spectral_qk", "ratio_qk", "spectral_qk_frames", "sample_patches"}
    assert all("CPU" in keys for keys in kernels.values())
    av = ops.available()
    assert av["cuda"] == ("CUDA" in kernels["spectral_qk"] and "CUDA" in kernels["ratio_qk"])
    import inspect

    from dctqa.ops import dispatch

    assert "_dispatch_has_kernel" not in inspect.getsource(dispatch)
