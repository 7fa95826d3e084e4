"""Whole path from uint8 RGB frames to Q (issue 2's benchmark and the fused ops' targets).

``dctqa.reference.score`` (literal, float64) against ``dctqa.Metric.score`` with the
compiled op and with the torch fallback (``DCTQA_DISABLE_OPS=1``), same run, same frames.
Backbone: YOLOX-Nano's first layer as its exact 6 x 6 filter (K = 16) from
``../shared/models/yolox_nano.onnx``; skipped, with the reason, when that file is absent.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.conftest import run_case, shared_dir
from dctqa import ops, reference

SIZES = {"384x288": (288, 384), "768x576": (576, 768)}


@pytest.fixture(scope="module")
def yolox() -> str:
    p = shared_dir() / "models" / "yolox_nano.onnx"
    if not p.is_file():
        pytest.skip(f"needs models/yolox_nano.onnx in the shared folder ({p} not found; set DCTQA_SHARED)")
    return f"onnx:{p}"


def _frames(h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real frames of vtest.avi at ``h x w`` when present (else random), and noisy copies."""
    p = shared_dir() / "videos" / "vtest.avi"
    g = np.random.default_rng(0)
    if p.is_file():
        from dctqa.io import iter_frames

        size = None if (h, w) == (576, 768) else (h, w)
        ref = np.stack(list(iter_frames(p, size=size, max_frames=n)))
    else:
        ref = g.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + g.integers(-12, 13, ref.shape), 0, 255).astype(np.uint8)
    return ref, dist


@pytest.mark.parametrize("size", list(SIZES))
def test_reference_score(benchmark, yolox: str, size: str) -> None:
    h, w = SIZES[size]
    ref, dist = _frames(h, w, 1)
    run_case(benchmark, lambda: reference.score(ref[0], dist[0], backbone=yolox), family="metric",
             h=h, w=w, k=16, batch=1, impl="reference", max_rounds=1)


@pytest.mark.parametrize("size,batch", [("384x288", 1), ("768x576", 1), ("768x576", 16)])
@pytest.mark.parametrize("impl", ["op", "torch"])
def test_metric_score(benchmark, monkeypatch, yolox: str, size: str, batch: int, impl: str) -> None:
    import dctqa

    if impl == "op" and not ops.available()["cpp"]:
        pytest.skip(f"C++ op not built: {ops.available()['extension_error']}")
    if impl == "torch":
        monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
    h, w = SIZES[size]
    ref, dist = _frames(h, w, batch)
    m = dctqa.Metric(backbone=yolox)
    name = ops.implementation_for("cpu", "spectral_qk")
    run_case(benchmark, lambda: m.score(ref, dist), family="metric", h=h, w=w, k=16, batch=batch,
             impl=name, max_rounds=10)


@pytest.mark.skipif(not (ops.available()["cuda"] and torch.cuda.is_available()),
                    reason="needs a CUDA device and the CUDA build of dctqa._C")
@pytest.mark.parametrize("size,batch", [("768x576", 16)])
def test_metric_score_cuda(benchmark, yolox: str, size: str, batch: int) -> None:
    """uint8 frames already on the device, ``N x 3 x H x W``."""
    import dctqa

    h, w = SIZES[size]
    ref, dist = _frames(h, w, batch)
    r = torch.from_numpy(ref).permute(0, 3, 1, 2).contiguous().cuda()
    d = torch.from_numpy(dist).permute(0, 3, 1, 2).contiguous().cuda()
    m = dctqa.Metric(backbone=yolox, device="cuda")
    run_case(benchmark, lambda: m.score(r, d), family="metric", h=h, w=w, k=16, batch=batch,
             impl="cuda-op", device="cuda", max_rounds=20)


# --- issue 20: a larger batch is never slower per pair ------------------------------------------

BATCH_DOMAINS = ("spectral", "feature", "pixel")
#: Interleaved repeats of the batch-1 / batch-8 comparison (one repeat = 8 pairs at each).
BATCH_REPEATS = 5


def _interleaved_ratio(m, ref: np.ndarray, dist: np.ndarray, repeats: int) -> list[float]:
    """Per repeat: pairs/s at batch ``len(ref)`` over pairs/s at batch 1, the two timed back
    to back in this process (so that load from elsewhere hits both alike)."""
    import time

    n, ratios = len(ref), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            m.score(ref[i:i + 1], dist[i:i + 1])
        t1 = time.perf_counter()
        m.score(ref, dist)
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return ratios


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("domain", BATCH_DOMAINS)
def test_batch_per_pair(benchmark, yolox: str, domain: str, batch: int) -> None:
    """Pairs/s of ``Metric.score`` at batch 1 and 8 for each domain (768x576 frames of
    vtest.avi, the implementation this build uses). The batch-8 case also times batch 1 and
    batch 8 interleaved (:data:`BATCH_REPEATS` times) and stores the speed ratio batch 8 /
    batch 1 per pair in ``extra_info`` (``batch8_over_batch1``: median; ``..._min`` /
    ``..._max``: the spread, i.e. the noise of this run). The target is a ratio >= 1."""
    import statistics

    import dctqa

    h, w = SIZES["768x576"]
    ref, dist = _frames(h, w, 8)
    m = dctqa.Metric(backbone=yolox, domain=domain, batch_size=8)
    m.score(ref, dist)  # warm-up at the largest batch (allocations, caches)
    r, d = ref[:batch], dist[:batch]
    run_case(benchmark, lambda: m.score(r, d), family=f"batch-{domain}", h=h, w=w,
             k=m.backbone.num_filters, batch=batch, impl=m.implementation, max_rounds=10)
    benchmark.extra_info["domain"] = domain
    if batch == 8:
        ratios = _interleaved_ratio(m, ref, dist, BATCH_REPEATS)
        benchmark.extra_info.update({"batch8_over_batch1": statistics.median(ratios),
                                     "batch8_over_batch1_min": min(ratios),
                                     "batch8_over_batch1_max": max(ratios),
                                     "chunk_pairs": m._step(h, w)})


@pytest.mark.parametrize("size", ["384x288", "768x576"])
def test_weighted_variant(benchmark, yolox: str, size: str) -> None:
    """``dctqa_weighted`` (issue 25's named variant; torch over the spectra), beside the
    ``op``/``torch`` rows of :func:`test_metric_score` (metric version 1) in the same table:
    its "x base" column is its speed relative to v1's torch path at the same size and batch."""
    import dctqa

    h, w = SIZES[size]
    ref, dist = _frames(h, w, 1)
    m = dctqa.Metric(backbone=yolox, normalise="weighted", batch_size=1)
    run_case(benchmark, lambda: m.score(ref, dist), family="metric", h=h, w=w, k=16, batch=1,
             impl="weighted", max_rounds=3)
