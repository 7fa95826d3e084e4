"""GPU benchmark without pytest-benchmark (the GPU machine may lack it): prints one table.

For each size (W x H), K and batch: the CUDA op on channel DCTs already on the device,
the torch path on the same device, and the whole path from uint8 frames on the device
(ImageNet normalisation, the torch DCT-II of dctqa.ops.dct, then the op). Frame pairs per
second are medians over timed rounds (each round synchronised). Usage:
    python benchmarks/gpu_bench.py [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dctqa import ops  # noqa: E402
from dctqa.constants import EPSILON  # noqa: E402
from dctqa.ops.dct import dct2  # noqa: E402

SIZES = {"384x288": (288, 384), "768x576": (576, 768), "1920x1080": (1080, 1920)}
KS = {16: 6, 64: 7}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def timeit(fn, budget_s: float = 1.5, max_rounds: int = 50) -> float:
    """Median seconds per call (one warm-up call, synchronised rounds)."""
    fn()
    torch.cuda.synchronize()
    times: list[float] = []
    t_end = time.perf_counter() + budget_s
    while len(times) < max_rounds and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    av = ops.available()
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, ops: {av}")
    if not av["cuda"]:
        print("the CUDA kernels of dctqa._C are not built")
        return 2
    dev = torch.device("cuda")
    rows = []
    cases = [(s, k, b) for s in SIZES for k in (16, 64) for b in (1, 16)]
    if args.quick:
        cases = [("768x576", 16, 16), ("1920x1080", 64, 1), ("1920x1080", 64, 8), ("1920x1080", 64, 16)]
    from dctqa.ops.spectral_torch import spectral_qk_torch

    for size, k, b in cases:
        h, w = SIZES[size]
        g = torch.Generator(device=dev).manual_seed(0)
        ref = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, device=dev, generator=g)
        dist = (ref.int() + torch.randint(-12, 13, ref.shape, device=dev, generator=g)).clamp(0, 255).to(torch.uint8)
        f = torch.randn(k, 3, KS[k], KS[k], device=dev, generator=g)
        mean, std = MEAN.to(dev), STD.to(dev)

        def pre(x):
            return (x.float() / 255.0 - mean) / std

        co, cc = dct2(pre(ref)), dct2(pre(dist))
        t_op = timeit(lambda: torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON))
        t_whole = timeit(lambda: torch.ops.dctqa.spectral_qk(dct2(pre(ref)), dct2(pre(dist)), f, EPSILON))
        try:
            t_torch = timeit(lambda: spectral_qk_torch(co, cc, f, EPSILON), budget_s=1.0, max_rounds=5)
        except torch.cuda.OutOfMemoryError:
            t_torch = float("nan")
        torch.cuda.empty_cache()
        # Agreement of op and torch path on this case (Q per frame).
        q_op = torch.ops.dctqa.spectral_qk(co, cc, f, EPSILON).mean(1)
        q_t = spectral_qk_torch(co, cc, f, EPSILON).mean(1)
        rel = float(((q_op - q_t).abs() / q_t).max())
        torch.cuda.empty_cache()
        row = {"size": size, "K": k, "batch": b, "op_pairs_s": b / t_op, "whole_pairs_s": b / t_whole,
               "torch_pairs_s": b / t_torch, "op_vs_torch": t_torch / t_op, "max_rel_q_diff": rel}
        rows.append(row)
        print(f"{size:>10} K={k:<3} b={b:<3} op {row['op_pairs_s']:9.1f} pairs/s | uint8->Q {row['whole_pairs_s']:9.1f}"
              f" | torch path {row['torch_pairs_s']:8.1f} | op/torch {row['op_vs_torch']:6.1f}x | dQ {rel:.1e}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
