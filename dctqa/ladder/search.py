"""The ladder's search, pure (no video, no torch): pooling a statistic, the next CRF of the
bisection, and the choice of the cheapest candidate within the bound.

The bisection works on integer CRF (0..51; higher CRF = fewer bits, more loss). Given which
measured CRFs meet the bound, :func:`bisect_next` brackets the highest CRF that meets it
between itself and the next measured CRF above it, and returns the integer midway between
the two, until they are adjacent integers. :func:`choose` then takes, among *every* measured
candidate (grid, bisection, capped or not), the one of lowest bitrate that meets the bound:
the bisection only decides which points are measured, so a curve that is not monotone in
CRF (noise in AP, a cap that binds) never leads to a candidate outside the bound.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError

#: ``--pool``: how per-frame Q (or per-window AP drop) values are pooled into one statistic.
POOLS = ("mean", "median", "p90", "p95", "max")


def pool(values: Sequence[float] | np.ndarray, how: str = "mean") -> float | None:
    """The ``how`` statistic (one of :data:`POOLS`) of the finite ``values``; ``None`` when there
    is none. ``p90``/``p95`` are NumPy's linear-interpolation percentiles."""
    if how not in POOLS:
        raise InputError(f"unknown pooling {how!r}; expected one of {', '.join(POOLS)}")
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    if how == "mean":
        return float(a.mean())
    if how == "median":
        return float(np.median(a))
    if how == "max":
        return float(a.max())
    return float(np.percentile(a, 90 if how == "p90" else 95))


def bisect_next(passes: Mapping[int, bool | None]) -> int | None:
    """The next CRF to measure, or ``None`` when the search is done.

    passes: measured CRF -> whether it meets the bound (``None``: undecidable, e.g. no window
    with ground truth; then nothing more is measured). Done when no CRF meets the bound, when
    the highest CRF meeting it is the highest measured, or when the next measured CRF above it
    is its neighbour (``hi - lo == 1``). Otherwise ``(lo + hi) // 2`` for ``lo`` the highest CRF
    meeting the bound and ``hi`` the next measured CRF above it (which does not)."""
    if any(p is None for p in passes.values()):
        return None
    crfs = sorted(passes)
    ok = [c for c in crfs if passes[c]]
    if not ok:
        return None
    lo = max(ok)
    above = [c for c in crfs if c > lo]
    if not above or above[0] - lo <= 1:
        return None
    return (lo + above[0]) // 2


def inversions(passes: Mapping[int, bool | None]) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of measured CRFs, ``a < b``, where ``a`` fails the bound and ``b`` meets
    it: where the measured curve is not monotone in CRF (empty for a monotone one)."""
    crfs = sorted(c for c, p in passes.items() if p is not None)
    return [(a, b) for i, a in enumerate(crfs) for b in crfs[i + 1:] if not passes[a] and passes[b]]


def search(measure: Callable[[int], bool | None], grid: Sequence[int], max_rounds: int = 16
           ) -> dict[int, bool | None]:
    """Run the whole search on one curve: measure every CRF of ``grid``, then :func:`bisect_next`
    until done. ``measure(crf)``: whether that CRF meets the bound. Returns every measured CRF
    with its answer (what :func:`dctqa.ladder.run.run_ladder` does, round by round, on videos)."""
    passes = {int(c): measure(int(c)) for c in grid}
    for _ in range(max_rounds):
        nxt = bisect_next(passes)
        if nxt is None:
            break
        passes[nxt] = measure(nxt)
    return passes


def choose(candidates: Sequence[Mapping], stat: str, bound: float, rate: str = "kbps") -> Mapping | None:
    """The candidate of lowest ``rate`` (ties: the lower CRF) whose ``stat`` is defined and at
    most ``bound``; ``None`` when none is."""
    ok = [c for c in candidates if c.get(stat) is not None and c[stat] <= bound and c.get(rate) is not None]
    if not ok:
        return None
    return min(ok, key=lambda c: (c[rate], c["crf"]))
