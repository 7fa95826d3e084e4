"""Correlation of a quality measure with detection performance, with bootstrap intervals.

LCC (Pearson), SRCC (Spearman) and KRCC (Kendall tau-b) as scipy.stats computes them, each
with a percentile bootstrap 95 % interval over resampled (x, y) pairs, or over resampled
clusters of pairs (pairs that share content move together); paired differences of two
measures' correlations with one target on the same resamples; correlations within groups.

Degenerate input: when x or y is constant (after dropping NaN pairs) a correlation is
undefined; the estimate and its interval are then NaN and :attr:`Correlations.notes` says
why, rather than raising. Bootstrap resamples that happen to be constant are skipped
(their count is noted); the interval comes from the remaining resamples.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ..errors import InputError

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


def correlations(x, y, n_boot: int = 1000, seed: int = 0, clusters=None) -> Correlations:
    """LCC, SRCC and KRCC of paired samples with percentile bootstrap 95 % intervals.

    x, y: 1-D array-likes of equal length (e.g. a metric's window means and the windows'
    AP); pairs where either is NaN are dropped. Estimates come from scipy.stats
    (pearsonr, spearmanr, kendalltau tau-b); intervals are the 2.5 and 97.5 percentiles
    of the same statistics over ``n_boot`` resamples of the pairs with replacement
    (numpy Generator seeded by ``seed``; ``n_boot = 0`` gives NaN intervals). clusters:
    None (pairs resampled independently) or (n,) labels: whole clusters are resampled
    (see :func:`resample_counts`), the honest choice when pairs share content.
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
    cl = None
    if clusters is not None:
        cl = np.asarray(clusters)
        if cl.shape != xa.shape:
            raise InputError(f"correlations: {cl.shape} cluster labels for {xa.shape} pairs")
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
        counts = resample_counts(n, int(n_boot), seed, None if cl is None else cl[ok])
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


# ----------------------------------------------------------------------------- resampling designs

#: How the bootstrap resamples: "window" draws rows independently (treats every row as
#: independent, overconfident when rows share content), "content" and "video" draw whole
#: clusters (every row of a drawn cluster comes along, as often as the cluster is drawn).
RESAMPLING = ("window", "content", "video")


def resample_counts(n: int, n_boot: int, seed: int = 0, clusters=None) -> np.ndarray:
    """(n_boot, n) int64: how often each of ``n`` rows occurs in each bootstrap resample.

    clusters: None (rows drawn independently with replacement, ``n`` draws per resample)
    or (n,) labels: the distinct labels are drawn with replacement (as many draws as
    labels) and a row occurs as often as its label was drawn, so rows of one cluster
    always move together. numpy Generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    n_boot = int(n_boot)
    if clusters is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        return np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(),
                           minlength=n_boot * n).reshape(n_boot, n)
    labels, member = np.unique(np.asarray(clusters), return_inverse=True)
    member = member.ravel()
    if len(member) != n:
        raise InputError(f"resample_counts: {len(member)} cluster labels for {n} rows")
    k = len(labels)
    idx = rng.integers(0, k, size=(n_boot, k))
    drawn = np.bincount((idx + k * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * k).reshape(n_boot, k)
    return drawn[:, member]


def _check_xy(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: values must be numeric 1-D sequences") from None
    if xa.ndim != 1 or ya.ndim != 1 or xa.shape != ya.shape:
        raise InputError(f"{name}: values must be 1-D of equal length, got shapes {xa.shape} and {ya.shape}")
    if np.isinf(xa).any() or np.isinf(ya).any():
        raise InputError(f"{name}: values must not contain infinities")
    return xa, ya


def _percentile_interval(boot: np.ndarray) -> tuple[np.ndarray, int]:
    """(3, 2) 2.5/97.5 percentiles of (3, B) resampled statistics over the finite columns,
    and how many columns were skipped for NaN."""
    bad = np.isnan(boot).any(axis=0)
    good = boot[:, ~bad]
    if good.shape[1] == 0:
        return np.full((3, 2), np.nan), int(bad.sum())
    return np.percentile(good, [2.5, 97.5], axis=1).T, int(bad.sum())


class PairedDifference(dict):
    """``{"lcc": Interval, "srcc": Interval, "krcc": Interval}`` of ``s_a * r(a, y) - s_b * r(b, y)``
    (sign-adjusted difference of two measures' correlations with the same target) plus
    ``n`` (rows used), ``resampling`` and ``notes``."""

    n: int
    resampling: str
    notes: list[str]


def paired_difference(a, b, y, sign_a: float = 1.0, sign_b: float = 1.0, n_boot: int = 1000, seed: int = 0,
                      clusters=None) -> PairedDifference:
    """Difference of two measures' correlations with one target, with a paired bootstrap interval.

    a, b, y: (n,) values of measure A, measure B and the target on the same rows; rows with
    a NaN in any of them are dropped. sign_a, sign_b: +1 or -1, applied to each correlation
    (use -1 for a lower-is-better measure so that larger always means "tracks y better").
    The estimate is ``sign_a * r(a, y) - sign_b * r(b, y)`` for LCC, SRCC and KRCC (tau-b);
    the interval is the percentile interval of the same difference over ``n_boot``
    resamples in which A and B see *the same* resampled rows (pairing), drawn as
    :func:`resample_counts` does (``clusters`` None = rows independent, else cluster
    labels). An interval that excludes 0 is the evidence for "A tracks y better/worse than B".
    Raises InputError for bad input or fewer than 3 usable rows.
    """
    aa, ya = _check_xy(a, y, "paired_difference")
    ba, _ = _check_xy(b, y, "paired_difference")
    ok = ~(np.isnan(aa) | np.isnan(ba) | np.isnan(ya))
    if ok.sum() < 3:
        raise InputError(f"paired_difference: need at least 3 rows without NaN, got {int(ok.sum())}")
    cl = None if clusters is None else np.asarray(clusters)[ok]
    aa, ba, ya = aa[ok], ba[ok], ya[ok]
    res = PairedDifference()
    res.n, res.notes = int(ok.sum()), []
    res.resampling = "window" if clusters is None else "cluster"
    one = np.ones((1, len(ya)))
    est = sign_a * resample_statistics(aa, ya, one)[:, 0] - sign_b * resample_statistics(ba, ya, one)[:, 0]
    if n_boot:
        counts = resample_counts(len(ya), n_boot, seed, cl)
        boot = sign_a * resample_statistics(aa, ya, counts) - sign_b * resample_statistics(ba, ya, counts)
        lohi, skipped = _percentile_interval(boot)
        if skipped:
            res.notes.append(f"{skipped} of {n_boot} resamples had a constant input and were skipped")
    else:
        lohi = np.full((3, 2), np.nan)
    for k, r, (lo, hi) in zip(STATISTICS, est, lohi):
        res[k] = Interval(float(r), float(lo), float(hi))
    return res


def within_group_correlations(x, y, groups) -> tuple[np.ndarray, np.ndarray]:
    """LCC, SRCC and KRCC of x with y computed inside each group of rows.

    x, y: (n,) values; groups: (n,) labels. Returns ``(labels, stats)``: the distinct labels
    in sorted order and (3, G) statistics, NaN for a group with fewer than 3 rows without
    NaN or with a constant x or y there (e.g. AP = 1 on every variant of a window).
    """
    xa, ya = _check_xy(x, y, "within_group_correlations")
    g = np.asarray(groups)
    if g.shape != xa.shape:
        raise InputError(f"within_group_correlations: {g.shape} group labels for {xa.shape} rows")
    labels, member = np.unique(g, return_inverse=True)
    member = member.ravel()
    out = np.full((3, len(labels)), np.nan)
    for i in range(len(labels)):
        sel = (member == i) & ~(np.isnan(xa) | np.isnan(ya))
        if sel.sum() >= 3:
            out[:, i] = resample_statistics(xa[sel], ya[sel], np.ones((1, int(sel.sum()))))[:, 0]
    return labels, out


def mean_with_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean of the finite entries of ``values`` (1-D) with a percentile bootstrap 95 %
    interval over resamples of those entries (NaN interval for fewer than 2 entries)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(np.nan, np.nan, np.nan)
    if v.size < 2 or not n_boot:
        return Interval(float(v.mean()), np.nan, np.nan)
    counts = resample_counts(v.size, n_boot, seed)
    boot = counts @ v / v.size
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return Interval(float(v.mean()), float(lo), float(hi))
