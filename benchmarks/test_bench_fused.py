"""Whole path from uint8 RGB frames to Q with the fused op (issue 14), same run, same frames:

* ``cpp-fused``: ``dctqa.Metric.score`` with ``dctqa::spectral_qk_frames`` (preprocessing,
  DCTs, filter spectra from the cache, magnitudes, median, ratio in one C++ op);
* ``cpp-op``: the same call with ``DCTQA_DISABLE_FUSED=1``, i.e. the whole path before
  the fused op (torch preprocessing, SciPy pocketfft DCTs, then ``dctqa::spectral_qk``);
* ``reference``: ``dctqa.reference.score`` (literal, float64), one small case only;
* at batch 1 also ``fused-planes`` (the fused op with the plane kernel), ``fused-avx2`` and
  ``fused-portable`` (the fused op with the hand-written x86 paths limited to AVX2 + FMA, or
  off: ``tuning.set_cpu_intrinsics("avx2" / "none")``, the paths a CPU without AVX-512, or
  without either, takes; the compiler's own per-ISA clones still use AVX-512 here) and ``issue-path`` (the unfused path with the plane
  kernel and no spectra cache: the whole path as it was when issue 14 was filed, as closely
  as one process can run it); the summary's ``x issue`` column divides by the latter.

K = 16: YOLOX-Nano's first layer (6 x 6, BGR 0..255) from ``../shared/models/yolox_nano.onnx``
(skipped, with the reason, when absent). K = 64: a 64 x 3 x 7 x 7 bank this file makes
(random, seeded: the shape of Faster R-CNN ResNet-50's conv1) with ImageNet normalisation.
Frames: vtest.avi scaled to each size when present (else random), distorted with noise.
``DCTQA_BENCH_FUSED_QUICK=1`` keeps batch 1 only (a quick look).
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import run_case, shared_dir
from dctqa import ops, reference
from dctqa.ops import tuning
from dctqa.settings import env_flag

SIZES = {"384x288": (288, 384), "386x290": (290, 386), "768x576": (576, 768), "1920x1080": (1080, 1920)}
QUICK = env_flag("DCTQA_BENCH_FUSED_QUICK")
CASES = [(s, k, b) for s in ("384x288", "768x576", "1920x1080") for k in (16, 64) for b in (1, 16)]
CASES += [("386x290", k, 1) for k in (16, 64)]
if QUICK:
    CASES = [c for c in CASES if c[2] == 1]

_FRAMES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _backbone(k: int):
    from dctqa.backbones import Backbone, get_backbone
    from dctqa.backbones.base import IMAGENET

    if k == 16:
        p = shared_dir() / "models" / "yolox_nano.onnx"
        if not p.is_file():
            pytest.skip(f"needs models/yolox_nano.onnx in the shared folder ({p} not found; set DCTQA_SHARED)")
        return get_backbone(f"onnx:{p}")
    f = np.random.default_rng(64).normal(0.0, 0.05, (64, 3, 7, 7))
    return Backbone(name="bench_random64_7x7", filters=f, preprocess=IMAGENET, stem=None, source="benchmark")


def _frames(h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames at ``h x w`` (vtest.avi scaled when present, else random) and noisy copies."""
    have = _FRAMES.get((h, w))
    if have is None or have[0].shape[0] < n:
        p = shared_dir() / "videos" / "vtest.avi"
        g = np.random.default_rng(0)
        if p.is_file():
            from dctqa.io import iter_frames

            ref = np.stack(list(iter_frames(p, size=(h, w), max_frames=n)))
        else:
            ref = g.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        dist = np.clip(ref.astype(np.int16) + g.integers(-12, 13, ref.shape), 0, 255).astype(np.uint8)
        _FRAMES[(h, w)] = have = (ref, dist)
    return have[0][:n], have[1][:n]


def test_reference_fused_family(benchmark) -> None:
    """The literal reference at the smallest case (384 x 288, K = 16, one pair)."""
    bb = _backbone(16)
    ref, dist = _frames(288, 384, 1)
    run_case(benchmark, lambda: reference.score(ref[0], dist[0], backbone=bb), family="fused",
             h=288, w=384, k=16, batch=1, impl="reference", max_rounds=1)


@pytest.mark.parametrize("size,k,batch", CASES)
@pytest.mark.parametrize("impl", ["cpp-fused", "cpp-op"])
def test_whole_path(benchmark, monkeypatch, size: str, k: int, batch: int, impl: str) -> None:
    _whole_path(benchmark, monkeypatch, size, k, batch, impl)


@pytest.mark.parametrize("size,k", [(s, k) for s in ("384x288", "768x576", "1920x1080") for k in (16, 64)])
@pytest.mark.parametrize("impl", ["fused-planes", "fused-avx2", "fused-portable", "issue-path"])
def test_whole_path_kernels(benchmark, monkeypatch, size: str, k: int, impl: str) -> None:
    """Batch 1 with other kernels: ``fused-planes`` = the fused op with
    ``set_cpu_kernel_mode("planes")`` (the kernel before the streaming one);
    ``fused-avx2`` / ``fused-portable`` = the fused op with ``set_cpu_intrinsics("avx2" /
    "none")``; ``issue-path`` =
    the unfused path with the plane kernel and no spectra cache (filter spectra rebuilt on
    every call), the closest in-process stand-in for the whole path when issue 14 was filed."""
    _whole_path(benchmark, monkeypatch, size, k, 1, impl)


def _whole_path(benchmark, monkeypatch, size: str, k: int, batch: int, impl: str) -> None:
    import dctqa

    avail = ops.available()
    if not (avail["cpp_fused"] and avail["cpp"]):
        pytest.skip(f"compiled ops not built: {avail['extension_error']}")
    if impl in ("cpp-op", "issue-path"):
        monkeypatch.setenv("DCTQA_DISABLE_FUSED", "1")
    h, w = SIZES[size]
    ref, dist = _frames(h, w, batch)
    m = dctqa.Metric(_backbone(k), batch_size=16)
    assert m.implementation == {"fused-planes": "cpp-fused", "fused-avx2": "cpp-fused",
                                "fused-portable": "cpp-fused", "issue-path": "cpp-op"}.get(impl, impl)
    heavy = h * w * k * batch > 1920 * 1080 * 64 * 2
    cache = tuning.spectra_cache_info()["max_bytes"]
    try:
        if impl in ("fused-planes", "issue-path"):
            tuning.set_cpu_kernel_mode("planes")
        if impl in ("fused-avx2", "fused-portable"):
            tuning.set_cpu_intrinsics("avx2" if impl == "fused-avx2" else "none")
        if impl == "issue-path":
            tuning.spectra_cache_set_max_bytes(0)
        run_case(benchmark, lambda: m.score(ref, dist), family="fused", h=h, w=w, k=k, batch=batch,
                 impl=impl, max_rounds=1 if heavy else 10)
    finally:
        tuning.set_cpu_kernel_mode("auto")
        tuning.set_cpu_intrinsics(True)
        tuning.spectra_cache_set_max_bytes(cache)
