"""The fused op ``dctqa::spectral_qk_frames`` (RGB frames to Q_k in one CPU op).

Against the literal float64 reference within METRIC.md's tolerance for every backbone
kind (YOLOX ONNX: BGR 0..255; a torchvision detector: ImageNet normalisation, weights
the test makes; pixel), odd and prime sizes, real H.264 frames; its torch fallback; the
cache of filter spectra (bounded, shared, counted); thread safety; bad input.
Skips, saying why, when the extension is not built (the fallback is then what runs,
and tests/test_metric.py covers it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dctqa
from dctqa import ops
from dctqa.ops import tuning
from dctqa import reference as R
from dctqa.backbones import get_backbone
from dctqa.errors import InputError

_AVAIL = ops.available()
needs_fused = pytest.mark.skipif(not _AVAIL["cpp_fused"],
                                 reason=f"fused op not built: {_AVAIL['extension_error']}")
TOL = 1e-4  # METRIC.md, relative, on Q
ROOT = Path(__file__).resolve().parents[1]


def _pair(rng, n, h, w, noise=20):
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + rng.integers(-noise, noise + 1, ref.shape), 0, 255).astype(np.uint8)
    return ref, dist


def _nchw(a: np.ndarray) -> torch.Tensor:
    """``N x H x W x 3`` array as the ``[N, 3, H, W]`` view the op takes (no copy)."""
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def _fused_q(ref, dist, bb, domain="spectral") -> np.ndarray:
    """Q per frame through the fused op (asserting that it is what runs)."""
    if domain == "pixel":
        bb = get_backbone("pixel")
    assert ops.implementation_for("cpu", ops.FUSED_OP) == "cpp-fused"
    f = torch.as_tensor(bb.filters, dtype=torch.float32)
    return ops.spectral_qk_frames(_nchw(ref), _nchw(dist), f, bb.preprocess, dctqa.EPSILON).mean(1).numpy()


def _assert_ref(q, ref, dist, bb, domain="spectral"):
    expected = np.array([R.score(r, d, bb, domain) for r, d in zip(ref, dist)])
    np.testing.assert_array_less(np.abs(q - expected), TOL * expected)


@needs_fused
@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 65), (31, 386)])
@pytest.mark.parametrize("domain", ["spectral", "pixel"])
def test_fused_equals_reference_yolox(yolox_backbone, domain, h, w, rng):
    bb = get_backbone(yolox_backbone)
    assert bb.preprocess.channel_order == "BGR" and bb.preprocess.scale == 1.0
    ref, dist = _pair(rng, 2, h, w)
    dist[0] = ref[0]
    q = _fused_q(ref, dist, bb, domain)
    assert q[0] == pytest.approx(1.0, abs=1e-6)
    _assert_ref(q, ref, dist, bb, domain)


@needs_fused
def test_fused_equals_reference_torchvision(tv_weights, rng):
    name, path = tv_weights
    bb = get_backbone(name, path)
    assert bb.preprocess.std != (1.0, 1.0, 1.0)  # ImageNet normalisation exercised
    ref, dist = _pair(rng, 2, 23, 41)
    _assert_ref(_fused_q(ref, dist, bb), ref, dist, bb)


@needs_fused
@pytest.mark.parametrize("domain", ["spectral", "pixel"])
def test_fused_equals_reference_real_frames(vtest_frames, yolox_backbone, domain):
    from tests.helpers import h264_roundtrip

    bb = get_backbone(yolox_backbone)
    ref = vtest_frames[:2, 180:277, 300:429]  # 97 x 129: odd sizes on real content
    dist = h264_roundtrip(ref, crf=41)
    q = _fused_q(ref, dist, bb, domain)
    assert (q > 1.0).all()
    _assert_ref(q, ref, dist, bb, domain)


@needs_fused
def test_fused_full_frames_match_unfused_path(vtest_frames, yolox_backbone):
    """Whole 768 x 576 frames: fused op = preprocessing + DCT in torch/SciPy + spectral op."""
    from tests.helpers import h264_roundtrip

    bb = get_backbone(yolox_backbone)
    ref = vtest_frames[:2]
    dist = h264_roundtrip(ref, crf=37)
    fused = dctqa.Metric(bb)
    assert fused.implementation == "cpp-fused" and fused.params()["implementation"] == "cpp-fused"
    q = fused.score(ref, dist, per_filter=True)
    from dctqa.ops.dct import dct2
    from dctqa.ops.preprocess import preprocess_torch

    r, d = _nchw(ref), _nchw(dist)
    f = torch.as_tensor(bb.filters, dtype=torch.float32)
    q_old = ops.spectral_qk(dct2(preprocess_torch(r, bb.preprocess, "cpu")),
                            dct2(preprocess_torch(d, bb.preprocess, "cpu")), f, dctqa.EPSILON).numpy()
    np.testing.assert_allclose(q, q_old, rtol=1e-5)


@needs_fused
def test_layouts_and_dtypes_agree(rng, yolox_backbone):
    """NHWC views, contiguous NCHW, float32 and float64 frames give the same Q_k."""
    bb = get_backbone(yolox_backbone)
    f = torch.as_tensor(bb.filters, dtype=torch.float32)
    ref, dist = _pair(rng, 3, 20, 27)
    forms = [(_nchw(ref), _nchw(dist)), (_nchw(ref).contiguous(), _nchw(dist).contiguous()),
             (_nchw(ref).float(), _nchw(dist).float()), (_nchw(ref).double(), _nchw(dist).double())]
    out = [ops.spectral_qk_frames(r, d, f, bb.preprocess, 0.01) for r, d in forms]
    for o in out[1:]:
        torch.testing.assert_close(o, out[0], rtol=1e-6, atol=0)


@needs_fused
def test_metric_uses_fused_op_and_fallback_agrees(rng, yolox_backbone, monkeypatch):
    ref, dist = _pair(rng, 3, 40, 57)
    for domain in ("spectral", "pixel"):
        m = dctqa.Metric(yolox_backbone, domain)
        assert m.implementation == "cpp-fused"
        assert dctqa.backends(m)["implementation"] == "cpp-fused"
        q = m.score(ref, dist)
        monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
        assert m.implementation == "torch"
        q_torch = m.score(ref, dist)
        bb = get_backbone("pixel" if domain == "pixel" else yolox_backbone)
        q_fallback = ops.spectral_qk_frames(_nchw(ref), _nchw(dist), torch.as_tensor(bb.filters).float(),
                                            bb.preprocess, dctqa.EPSILON).mean(1).numpy()
        monkeypatch.delenv("DCTQA_DISABLE_OPS")
        np.testing.assert_allclose(q, q_torch, rtol=1e-5)
        np.testing.assert_allclose(q, q_fallback, rtol=1e-5)


@needs_fused
def test_feature_domain_is_not_fused(yolox_backbone):
    assert dctqa.Metric(yolox_backbone, "feature").implementation == "cpp-op"


@needs_fused
def test_spectra_cache_hits_bound_and_eviction(rng):
    f1 = torch.from_numpy(rng.normal(size=(6, 3, 5, 5))).float()
    f2 = f1.clone()
    f2[0, 0, 0, 0] += 1.0  # one value differs: a different bank
    ref, dist = _pair(rng, 2, 30, 40)
    r, d = _nchw(ref), _nchw(dist)
    p = get_backbone("pixel").preprocess
    tuning.spectra_cache_clear()
    before = tuning.spectra_cache_info()
    assert before["entries"] == 0 and before["bytes"] == 0 and before["hits"] == 0
    try:
        q1 = ops.spectral_qk_frames(r, d, f1, p, 0.01)
        q1b = ops.spectral_qk_frames(r, d, f1, p, 0.01)
        info = tuning.spectra_cache_info()
        assert (info["entries"], info["misses"], info["hits"]) == (1, 1, 1)
        one = info["bytes"]
        # float32: factors K x 3 x kh x Wp complex (Wp = 48), phases, the bank itself, and
        # (small enough) the whole G, K x H x 3 x Wp complex
        assert one == 4 * (2 * 6 * 3 * 5 * 48 + 2 * 30 * 5 + 6 * 3 * 5 * 5 + 2 * 6 * 30 * 3 * 48)
        q2 = ops.spectral_qk_frames(r, d, f2, p, 0.01)
        assert not torch.equal(q1, q2)
        assert tuning.spectra_cache_info()["entries"] == 2
        ops.spectral_qk_frames(r[:, :, :20], d[:, :, :20], f1, p, 0.01)  # another size: another entry
        assert tuning.spectra_cache_info()["entries"] == 3
        tuning.spectra_cache_set_max_bytes(one + one // 2)  # room for one entry of this size
        info = tuning.spectra_cache_info()
        assert info["bytes"] <= info["max_bytes"] == one + one // 2 and info["entries"] == 1
        tuning.spectra_cache_set_max_bytes(0)  # nothing kept, results unchanged
        torch.testing.assert_close(ops.spectral_qk_frames(r, d, f1, p, 0.01), q1, rtol=0, atol=0)
        assert tuning.spectra_cache_info()["entries"] == 0
        torch.testing.assert_close(q1b, q1, rtol=0, atol=0)
    finally:
        tuning.spectra_cache_set_max_bytes(before["max_bytes"])
        tuning.spectra_cache_clear()
    with pytest.raises(InputError, match="max_bytes"):
        tuning.spectra_cache_set_max_bytes(-1)


@needs_fused
def test_fused_op_is_thread_safe(rng, yolox_backbone):
    """Several threads on one Metric, cache cold: same Q_k as sequential calls."""
    m = dctqa.Metric(yolox_backbone)
    pairs = [_pair(np.random.default_rng(s), 2, 37 + s % 2, 53) for s in range(6)]
    tuning.spectra_cache_clear()
    got: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(3):
            got[i] = m.score(*pairs[i], per_filter=True)

    from tests.helpers import run_in_threads

    errors = run_in_threads(work, 6)
    assert not errors
    for i, (r, d) in enumerate(pairs):
        np.testing.assert_array_equal(got[i], m.score(r, d, per_filter=True))
    info = tuning.spectra_cache_info()
    assert info["entries"] == 2 and info["hits"] > 0  # two heights, shared by all threads


@needs_fused
@pytest.mark.parametrize("env,size", [({"DCTQA_CPU_CHUNK_MB": "1"}, (300, 400)),
                                      ({"DCTQA_FULL_SPECTRA": "0"}, (200, 250))])
def test_chunking_and_spectra_rows_same_result(tmp_path, rng, yolox_backbone, env, size):
    """DCTQA_CPU_CHUNK_MB=1 makes the op transform one frame pair at a time (300 x 400: the
    streaming kernel), and DCTQA_FULL_SPECTRA=0 makes the plane kernel (200 x 250) rebuild
    G row by row instead of reading it: same Q_k."""
    ref, dist = _pair(rng, 3, *size)
    np.save(tmp_path / "r.npy", ref)
    np.save(tmp_path / "d.npy", dist)
    code = (
        "import numpy as np, torch\n"
        "import dctqa\n"
        f"p = {str(tmp_path)!r}\n"
        f"m = dctqa.Metric({yolox_backbone!r})\n"
        "assert m.implementation == 'cpp-fused'\n"
        "np.save(p + '/q.npy', m.score(np.load(p + '/r.npy'), np.load(p + '/d.npy'), per_filter=True))\n"
    )
    env = dict(os.environ, **env, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    q_default = dctqa.Metric(yolox_backbone).score(ref, dist, per_filter=True)
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), q_default, rtol=1e-12, atol=0)


@needs_fused
def test_opcheck_fused() -> None:
    g = torch.Generator().manual_seed(3)
    r = torch.randint(0, 256, (2, 3, 9, 11), dtype=torch.uint8, generator=g)
    d = torch.randint(0, 256, (2, 3, 9, 11), dtype=torch.uint8, generator=g)
    f = torch.randn(4, 3, 3, 3, generator=g)
    torch.library.opcheck(torch.ops.dctqa.spectral_qk_frames.default,
                          (r, d, f, [2, 1, 0], 1.0, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 0.01))


@needs_fused
@pytest.mark.parametrize("args,match", [
    (dict(channel_index=[0, 1, 3]), "channel_index"),
    (dict(channel_index=[0, 1]), "3 values"),
    (dict(std=[1.0, 0.0, 1.0]), "std"),
    (dict(scale=-1.0), "scale"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(dist=torch.zeros(1, 3, 5, 6, dtype=torch.uint8)), "same shape"),
    (dict(dist=torch.zeros(1, 3, 5, 5, dtype=torch.int32)), "uint8"),
    (dict(filters=torch.zeros(2, 1, 3, 3)), "filters"),
])
def test_op_rejects_bad_arguments(args, match) -> None:
    a = dict(ref=torch.zeros(1, 3, 5, 5, dtype=torch.uint8), dist=torch.zeros(1, 3, 5, 5, dtype=torch.uint8),
             filters=torch.zeros(2, 3, 3, 3), channel_index=[0, 1, 2], scale=1.0, mean=[0.0] * 3,
             std=[1.0] * 3, epsilon=0.01)
    a.update(args)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.dctqa.spectral_qk_frames(*a.values())


@pytest.mark.parametrize("ref,dist,filters,match", [
    (torch.zeros(1, 5, 5, 3, dtype=torch.uint8), None, None, r"\[N, 3, H, W\]"),
    (torch.zeros(1, 3, 5, 5, dtype=torch.int32), None, None, "uint8 or float"),
    (None, torch.zeros(1, 3, 5, 6, dtype=torch.uint8), None, "differ in shape"),
    (None, None, torch.zeros(2, 1, 3, 3), "filters"),
    (torch.zeros(1, 3, 0, 5, dtype=torch.uint8), torch.zeros(1, 3, 0, 5, dtype=torch.uint8), None, "empty"),
])
def test_wrapper_raises_input_error(ref, dist, filters, match) -> None:
    z = torch.zeros(1, 3, 5, 5, dtype=torch.uint8)
    with pytest.raises(InputError, match=match):
        ops.spectral_qk_frames(z if ref is None else ref, z if dist is None else dist,
                               torch.zeros(2, 3, 3, 3) if filters is None else filters,
                               get_backbone("pixel").preprocess, 0.01)


@needs_fused
def test_cache_does_not_grow_with_frames(rng, yolox_backbone):
    """Scoring 1 or 40 frame pairs of one size leaves one cache entry of one size."""
    m = dctqa.Metric(yolox_backbone, batch_size=64)
    tuning.spectra_cache_clear()
    ref, dist = _pair(rng, 40, 24, 35)
    m.score(ref[:1], dist[:1])
    one = tuning.spectra_cache_info()
    q = m.score(ref, dist)
    many = tuning.spectra_cache_info()
    assert (many["entries"], many["bytes"]) == (one["entries"], one["bytes"]) == (1, one["bytes"])
    assert many["hits"] == one["hits"] + 1 and q.shape == (40,) and np.isfinite(q).all()
