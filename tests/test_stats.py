"""Correlations with bootstrap intervals against scipy.stats directly."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dctqa.errors import InputError
from dctqa.study.stats import Interval, correlations, resample_statistics


def _scipy_all(x, y):
    return np.array([stats.pearsonr(x, y).statistic, stats.spearmanr(x, y).statistic,
                     stats.kendalltau(x, y).statistic])


@pytest.fixture
def xy(rng):
    x = rng.normal(size=80)
    y = 0.6 * x + rng.normal(size=80)
    return x, y


def test_estimates_equal_scipy(xy):
    x, y = xy
    res = correlations(x, y, n_boot=200)
    assert list(res) == ["lcc", "srcc", "krcc"]
    np.testing.assert_allclose([res[k].r for k in res], _scipy_all(x, y), rtol=1e-12)
    assert res.n == 80 and res.n_dropped == 0 and res.notes == []
    for k, (r, lo, hi) in res.items():
        assert isinstance(res[k], Interval)
        assert -1 <= lo <= r <= hi <= 1


def test_resample_statistics_equal_scipy_on_each_resample(rng):
    # ties in both variables exercise tau-b and average ranks
    x = np.round(rng.normal(size=25), 1)
    y = np.round(x + rng.normal(size=25), 0)
    idx = rng.integers(0, 25, (40, 25))
    counts = np.stack([np.bincount(i, minlength=25) for i in idx])
    got = resample_statistics(x, y, counts)
    expected = np.stack([_scipy_all(x[i], y[i]) for i in idx], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_resample_statistics_nan_for_constant_resample():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.0, 1.0, 4.0, 3.0])
    counts = np.array([[4, 0, 0, 0], [1, 1, 1, 1]])
    got = resample_statistics(x, y, counts)
    assert np.isnan(got[:, 0]).all()
    np.testing.assert_allclose(got[:, 1], _scipy_all(x, y))


def test_bootstrap_interval_is_the_percentile_interval(xy):
    x, y = xy
    res = correlations(x, y, n_boot=300, seed=7)
    n = len(x)
    idx = np.random.default_rng(7).integers(0, n, size=(300, n))
    boot = np.stack([_scipy_all(x[i], y[i]) for i in idx], axis=1)
    lohi = np.percentile(boot, [2.5, 97.5], axis=1).T
    for k, (lo, hi) in zip(res, lohi):
        assert res[k].lo == pytest.approx(lo, abs=1e-12) and res[k].hi == pytest.approx(hi, abs=1e-12)
    again = correlations(x, y, n_boot=300, seed=7)
    assert dict(again) == dict(res)
    assert correlations(x, y, n_boot=300, seed=8)["lcc"].lo != res["lcc"].lo


def test_monotone_relation():
    x = np.linspace(0, 1, 20)
    res = correlations(x, np.exp(5 * x))
    assert res["srcc"] == pytest.approx((1.0, 1.0, 1.0)) and res["krcc"].r == pytest.approx(1.0)
    assert 0.7 < res["lcc"].r < 1.0


def test_nan_pairs_are_dropped(xy):
    x, y = xy
    xn, yn = x.copy(), y.copy()
    xn[3], yn[10], xn[11], yn[11] = np.nan, np.nan, np.nan, np.nan
    keep = np.ones(len(x), bool)
    keep[[3, 10, 11]] = False
    res = correlations(xn, yn, n_boot=100)
    assert res.n == 77 and res.n_dropped == 3
    assert dict(res) == dict(correlations(x[keep], y[keep], n_boot=100))


def test_constant_input_gives_nan_with_note():
    res = correlations([0.5, 0.5, 0.5, 0.5], [1, 2, 3, 4])
    assert all(np.isnan(v).all() for v in res.values())
    assert "x constant" in res.notes[0]
    few = correlations([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], n_boot=500)
    assert any("bootstrap resamples" in n for n in few.notes)
    assert np.isfinite(few["lcc"].lo)


def test_no_bootstrap():
    res = correlations([1, 2, 3, 4], [1, 3, 2, 4], n_boot=0)
    assert res["srcc"].r == pytest.approx(0.8) and np.isnan(res["srcc"].lo)


@pytest.mark.parametrize("x, y, match", [
    ([1, 2], [1, 2], "at least 3"),
    ([1, 2, np.nan, 4], [1, 2, 3, np.nan], "at least 3"),
    ([1, 2, 3], [1, 2], "equal length"),
    ([[1, 2, 3]], [[1, 2, 3]], "1-D"),
    ([1, 2, np.inf], [1, 2, 3], "infinities"),
    (["a", "b", "c"], [1, 2, 3], "numeric"),
])
def test_bad_input(x, y, match):
    with pytest.raises(InputError, match=match):
        correlations(x, y)


def test_bad_n_boot():
    with pytest.raises(InputError, match="n_boot"):
        correlations([1, 2, 3], [1, 2, 3], n_boot=-1)
