"""Shared pieces of the benchmark suite (``pytest benchmarks/ --benchmark-only``).

Every benchmark goes through :func:`run_case`, which times whole calls (CUDA calls are
synchronised), stores frame pairs per second in pytest-benchmark's ``extra_info``, and
records the figure here so that the terminal summary can print one table with the
ratios to the literal reference and to the torch path measured in the same run.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dctqa.settings import env_number, shared_dir  # noqa: E402,F401  (shared_dir: the benchmarks')

#: (family, "HxW", K, batch, impl) -> pairs per second
RESULTS: dict[tuple[str, str, int, int, str], float] = {}

#: Free-form result lines (e.g. the serving benchmark's latency levels), printed after the table.
NOTES: list[str] = []
#: The implementation each family's "x base" column divides by (default: the torch path).
BASELINE_IMPL = {"fused": "cpp-op"}

#: Wall-clock budget per benchmark (s), used to choose the number of rounds.
ROUND_BUDGET_S = env_number("DCTQA_BENCH_BUDGET_S", integer=False)


def run_case(benchmark, fn: Callable[[], object], *, family: str, h: int, w: int, k: int, batch: int,
             impl: str, device: str = "cpu", max_rounds: int = 10) -> float:
    """Time ``fn`` (one call scores ``batch`` frame pairs); returns pairs per second.

    One untimed warm-up call, then as many rounds as fit ``ROUND_BUDGET_S`` (1..max_rounds).
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: list[float] = []

    def timed() -> object:
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
        return out

    t_first = time.perf_counter()
    if max_rounds > 1:
        fn()
        sync()
    t_first = time.perf_counter() - t_first
    rounds = 1 if max_rounds <= 1 else max(1, min(max_rounds, int(ROUND_BUDGET_S / max(t_first, 1e-6))))
    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=0)
    sec = statistics.median(times)
    pps = batch / sec
    benchmark.extra_info.update({"family": family, "size": f"{w}x{h}", "K": k, "batch": batch, "impl": impl,
                                 "device": device, "pairs_per_s": pps, "ms_per_pair": 1000 * sec / batch})
    RESULTS[(family, f"{w}x{h}", k, batch, impl)] = pps
    return pps


def _baseline(family: str, size: str, k: int, impl: str) -> float | None:
    """Best pairs/s of ``impl`` at (size, K) over batches: same family if measured, else any."""
    for same in (True, False):
        vals = [v for (fam, s, kk, b, i), v in RESULTS.items()
                if s == size and kk == k and i == impl and (fam == family or not same)]
        if vals:
            return max(vals)
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tr = terminalreporter
    if NOTES:
        tr.section("dctqa: serving")
        for line in NOTES:
            tr.write_line(line)
    if not RESULTS:
        return
    tr.section("dctqa: frame pairs per second (ratios to the same run's reference / baseline: "
               "the torch path, or for family 'fused' the unfused whole path 'cpp-op')")
    tr.write_line(f"{'family':<9}{'size':>10}{'K':>4}{'batch':>6}  {'impl':<13}{'pairs/s':>10}"
                  f"{'x ref':>10}{'x base':>9}{'x issue':>9}")
    for (fam, size, k, b, impl), pps in sorted(RESULTS.items(), key=lambda kv: (kv[0][0], int(kv[0][1].split('x')[0]), kv[0][2], kv[0][3], kv[0][4])):
        ref = _baseline(fam, size, k, "reference")
        # GPU implementations are compared with the torch path on the GPU.
        base = "cuda-torch" if impl.startswith("cuda") else BASELINE_IMPL.get(fam, "torch")
        # families with their own baseline compare at the same batch size
        tor = RESULTS.get((fam, size, k, b, base)) if fam in BASELINE_IMPL else _baseline(fam, size, k, base)
        xr = f"{pps / ref:.0f}" if ref and impl != "reference" else "-"
        xt = f"{pps / tor:.2f}" if tor and impl not in ("reference", "torch", "cuda-torch", base) else "-"
        # family 'fused' also against the whole path as it was when issue 14 was filed
        iss = RESULTS.get((fam, size, k, b, "issue-path"))
        xi = f"{pps / iss:.2f}" if iss and impl not in ("reference", "issue-path") else "-"
        tr.write_line(f"{fam:<9}{size:>10}{k:>4}{b:>6}  {impl:<13}{pps:>10.3f}{xr:>10}{xt:>9}{xi:>9}")
    tr.write_line(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"cuda device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
