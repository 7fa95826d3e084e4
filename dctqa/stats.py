"""Correlation of a quality measure with detection performance, with bootstrap intervals.

LCC (Pearson), SRCC (Spearman) and KRCC (Kendall tau-b) as scipy.stats computes them, each
with a percentile bootstrap 95 % interval over resampled (x, y) pairs.

Degenerate input: when x or y is constant (after dropping NaN pairs) a correlation is
undefined; the estimate and its interval are then NaN and :attr:`Correlations.notes` says
why, rather than raising. Bootstrap resamples that happen to be constant are skipped
(their count is noted); the interval comes from the remaining resamples.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .errors import InputError

STATISTICS = ("lcc", "srcc", "krcc")


class Interval(NamedTuple):
    """An estimate and its bootstrap 95 % interval: ``(r, lo, hi)``, each in [-1, 1] or NaN."""

    r: float
    lo: float
    hi: float


class Correlations(dict):
    """``{"lcc": Interval, "srcc": Interval, "krcc": Interval}`` plus attributes:
    ``n`` (pairs used, after dropping NaN), ``n_dropped`` (pairs with a NaN) and
    ``notes`` (list of str explaining NaN results or skipped resamples)."""

    n: int
    n_dropped: int
    notes: list[str]


def _groups(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order of ``v``, start of each run of equal values in that order, group of each element."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    group = np.empty(len(v), np.int64)
    group[order] = np.cumsum(np.r_[True, sv[1:] != sv[:-1]]) - 1
    return order, starts, group


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r per row of weights ``w`` (B, n) of values x, y ((n,) or (B, n))."""
    tot = w.sum(axis=1, keepdims=True)
    xc = x - (w * x).sum(axis=1, keepdims=True) / tot
    yc = y - (w * y).sum(axis=1, keepdims=True) / tot
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * xc * yc).sum(axis=1) / np.sqrt((w * xc * xc).sum(axis=1) * (w * yc * yc).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def resample_statistics(x: np.ndarray, y: np.ndarray, counts: np.ndarray,
                        chunk_bytes: int = 1 << 26) -> np.ndarray:
    """(3, B): LCC, SRCC and KRCC (tau-b) of B resamples of the pairs (x_i, y_i).

    x, y: (n,) float64 without NaN. counts: (B, n) how often each pair occurs in each
    resample (rows sum to the resample size). Equals scipy.stats' pearsonr, spearmanr
    and kendalltau on the materialised resamples, without materialising them: ranks come
    from cumulative counts over the sorted distinct values, Kendall's numerator from one
    product with the (n, n) concordance-sign matrix. NaN where a resample is constant.
    """
    c = np.asarray(counts, dtype=np.float64)
    m = c.sum(axis=1)
    out = np.empty((3, len(c)))
    out[0] = _weighted_pearson(x, y, c)
    ranks, ties, distinct = [], [], []
    for v in (x, y):
        order, starts, group = _groups(v)
        g = np.add.reduceat(c[:, order], starts, axis=1)  # (B, groups): resample count per distinct value
        rank_of_group = np.cumsum(g, axis=1) - g + (g + 1) / 2  # average ranks, 1-based
        ranks.append(rank_of_group[:, group])
        ties.append((g * g).sum(axis=1))  # ordered item pairs tied in this variable, plus self-pairs
        distinct.append((g > 0).sum(axis=1))
    out[1] = _weighted_pearson(ranks[0], ranks[1], c)
    sign = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    step = max(1, chunk_bytes // (8 * len(x)))
    num = np.concatenate([((c[s:s + step] @ sign) * c[s:s + step]).sum(axis=1)
                          for s in range(0, len(c), step)]) / 2
    nx, ny = (m * m - ties[0]) / 2, (m * m - ties[1]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out[2] = np.clip(num / np.sqrt(nx * ny), -1.0, 1.0)
    out[:, (distinct[0] < 2) | (distinct[1] < 2)] = np.nan
    return out


def correlations(x, y, n_boot: int = 1000, seed: int = 0) -> Correlations:
    """LCC, SRCC and KRCC of paired samples with percentile bootstrap 95 % intervals.

    x, y: 1-D array-likes of equal length (e.g. a metric's window means and the windows'
    AP); pairs where either is NaN are dropped. Estimates come from scipy.stats
    (pearsonr, spearmanr, kendalltau tau-b); intervals are the 2.5 and 97.5 percentiles
    of the same statistics over ``n_boot`` resamples of the pairs with replacement
    (numpy Generator seeded by ``seed``; ``n_boot = 0`` gives NaN intervals).
    Raises InputError for mismatched shapes, non-numeric data, infinities or fewer than
    3 usable pairs. Constant input gives NaN with a note (see the module docstring).
    """
    from scipy import stats

    try:
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("correlations: x and y must be numeric 1-D sequences") from None
    if xa.ndim != 1 or ya.ndim != 1 or xa.shape != ya.shape:
        raise InputError(f"correlations: x and y must be 1-D of equal length, got shapes {xa.shape} and {ya.shape}")
    if np.isinf(xa).any() or np.isinf(ya).any():
        raise InputError("correlations: x and y must not contain infinities")
    if int(n_boot) != n_boot or n_boot < 0:
        raise InputError(f"correlations: n_boot must be a non-negative integer, got {n_boot!r}")
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    n = len(xa)
    if n < 3:
        raise InputError(f"correlations: need at least 3 pairs without NaN, got {n} "
                         f"(of {len(ok)}; {int((~ok).sum())} dropped for NaN)")
    res = Correlations()
    res.n, res.n_dropped, res.notes = n, int((~ok).sum()), []

    constant = [name for name, v in (("x", xa), ("y", ya)) if np.ptp(v) == 0]
    if constant:
        res.notes.append(f"{' and '.join(constant)} constant over all {n} pairs: correlation undefined, "
                         f"reported as NaN")
        for k in STATISTICS:
            res[k] = Interval(np.nan, np.nan, np.nan)
        return res

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = [stats.pearsonr(xa, ya).statistic, stats.spearmanr(xa, ya).statistic,
               stats.kendalltau(xa, ya).statistic]
    if n_boot:
        idx = np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))
        counts = np.bincount((idx + n * np.arange(int(n_boot))[:, None]).ravel(),
                             minlength=int(n_boot) * n).reshape(int(n_boot), n)
        boot = resample_statistics(xa, ya, counts)
        bad = np.isnan(boot).any(axis=0)
        if bad.any():
            res.notes.append(f"{int(bad.sum())} of {n_boot} bootstrap resamples had a constant x or y "
                             f"and were skipped")
        good = boot[:, ~bad]
        if good.shape[1] == 0:
            lohi = np.full((3, 2), np.nan)
        else:
            lohi = np.percentile(good, [2.5, 97.5], axis=1).T
    else:
        lohi = np.full((3, 2), np.nan)
    for k, r, (lo, hi) in zip(STATISTICS, est, lohi):
        res[k] = Interval(float(r), float(lo), float(hi))
    return res
