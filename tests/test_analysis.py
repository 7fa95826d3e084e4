"""The study's statistics: cluster bootstrap, paired differences, within-content views,
duplicate marks and the minimum-ground-truth filter, against direct computations."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dctqa.errors import InputError
from dctqa.study.stats import (correlations, mean_with_interval, paired_difference, resample_counts,
                         within_group_correlations)
from dctqa.study.analysis import (AnalysisSettings, analyze, content_id, headline, load_windows_csv,
                                  mark_duplicates, select_rows)
from dctqa.study.report import rows_to_csv


def _scipy_all(x, y):
    return np.array([stats.pearsonr(x, y).statistic, stats.spearmanr(x, y).statistic,
                     stats.kendalltau(x, y).statistic])


def test_cluster_counts_move_whole_clusters():
    clusters = np.repeat(["a", "b", "c", "d"], [3, 1, 5, 2])
    counts = resample_counts(len(clusters), 200, seed=3, clusters=clusters)
    assert counts.shape == (200, 11)
    for lab in "abcd":
        block = counts[:, clusters == lab]
        assert (block == block[:, :1]).all()  # every row of a cluster occurs equally often
    drawn = np.stack([counts[:, np.flatnonzero(clusters == lab)[0]] for lab in "abcd"], axis=1)
    assert (drawn.sum(axis=1) == 4).all()  # as many cluster draws as clusters
    with pytest.raises(InputError, match="cluster labels"):
        resample_counts(5, 10, clusters=[1, 2])
    # without clusters: the row bootstrap of correlations() (same draws as before clusters existed)
    idx = np.random.default_rng(7).integers(0, 9, size=(20, 9))
    np.testing.assert_array_equal(resample_counts(9, 20, seed=7), np.stack([np.bincount(i, minlength=9)
                                                                            for i in idx]))


def test_window_bootstrap_overconfident_cluster_bootstrap_not():
    """12 scenes x 20 variants; x and y each depend only on the scene, independently, so the
    true correlation is 0. Treating the 240 rows as independent, the interval misses 0 most of
    the time; resampling scenes, it covers 0 about as often as a 95 % interval should."""
    rng = np.random.default_rng(1)
    k, m, reps = 12, 20, 60
    covered = {"window": 0, "content": 0}
    width = {"window": [], "content": []}
    cl = np.repeat(np.arange(k), m)
    for i in range(reps):
        a, b = rng.normal(size=k), rng.normal(size=k)
        x = a[cl] + 0.3 * rng.normal(size=k * m)
        y = b[cl] + 0.3 * rng.normal(size=k * m)
        for name, clusters in (("window", None), ("content", cl)):
            r = correlations(x, y, n_boot=200, seed=i, clusters=clusters)["srcc"]
            covered[name] += r.lo <= 0 <= r.hi
            width[name].append(r.hi - r.lo)
    assert covered["window"] / reps < 0.6
    assert covered["content"] / reps >= 0.8
    assert np.mean(width["content"]) > 2.5 * np.mean(width["window"])


def test_paired_difference_equals_materialised_resamples(rng):
    cl = np.repeat(np.arange(8), 6)
    y = rng.normal(size=48)
    a = y + rng.normal(size=48)
    b = -(0.5 * y + rng.normal(size=48))  # lower-is-better measure
    res = paired_difference(a, b, y, sign_a=1, sign_b=-1, n_boot=150, seed=4, clusters=cl)
    np.testing.assert_allclose([res[k].r for k in res], _scipy_all(a, y) + _scipy_all(b, y), atol=1e-12)
    counts = resample_counts(48, 150, seed=4, clusters=cl)
    boot = []
    for c in counts:
        idx = np.repeat(np.arange(48), c)
        boot.append(_scipy_all(a[idx], y[idx]) + _scipy_all(b[idx], y[idx]))
    lohi = np.percentile(np.array(boot).T, [2.5, 97.5], axis=1).T
    for k, (lo, hi) in zip(res, lohi):
        assert res[k].lo == pytest.approx(lo, abs=1e-10) and res[k].hi == pytest.approx(hi, abs=1e-10)
    assert res.n == 48 and res.resampling == "cluster"
    with pytest.raises(InputError, match="at least 3"):
        paired_difference([1, 2, np.nan], [1, 2, 3], [3, 2, 1])


def test_within_group_correlations_and_mean(rng):
    groups = np.repeat(["p", "q", "r"], [7, 6, 5])
    x = rng.normal(size=18)
    y = x + rng.normal(size=18)
    y[groups == "r"] = 1.0  # AP saturated in one group: correlation undefined there
    labels, st = within_group_correlations(x, y, groups)
    assert list(labels) == ["p", "q", "r"]
    for i, g in enumerate("pq"):
        sel = groups == g
        np.testing.assert_allclose(st[:, i], _scipy_all(x[sel], y[sel]), atol=1e-12)
    assert np.isnan(st[:, 2]).all()
    m = mean_with_interval(st[1], n_boot=500, seed=0)
    assert m.r == pytest.approx(np.mean(st[1, :2]))
    assert min(st[1, :2]) <= m.lo <= m.r <= m.hi <= max(st[1, :2])
    assert np.isnan(mean_with_interval([np.nan]).r)


# ----------------------------------------------------------------------------- window tables

def _table(rng, n_windows=6, videos=("v1", "v2"), n_gt=20, noise=0.05):
    """A window table: per video and CRF an uncapped variant and two capped ones. ``good``
    follows AP within and across scenes; ``psnr`` follows it within a scene but carries a
    per-scene offset; cap 1 duplicates the uncapped variant at CRF 41 (bitrate 2 % off),
    cap 2 repeats the uncapped windows exactly at CRF 47 window 0."""
    rows = []
    for v in videos:
        for w in range(n_windows):
            scene = rng.normal()
            for crf in (23, 35, 41, 47):
                for cap, rate in ((None, 100.0), (1.0, 50.0), (2.0, 70.0)):
                    if cap == 1.0 and crf == 41:
                        rate = 98.0
                    base = (crf - 20) / 30 + (0.3 if cap == 1.0 else 0.1 if cap == 2.0 else 0) + 0.2 * scene
                    ap = float(np.clip(0.9 - 0.5 * base + noise * rng.normal(), 0, 1))
                    r = {"video": v, "variant": f"crf{crf}" + (f"_cap{cap}" if cap else ""), "crf": crf,
                         "maxrate_kbps": cap, "cap_bpp": None, "bitrate_kbps": rate, "window_start": 100 * w,
                         "window_end": 100 * w + 100, "n_det_frames": 50, "n_metric_frames": 25,
                         "n_gt": n_gt if w else 3, "ap50": min(1.0, ap + 0.1), "ap": ap,
                         "dctqa_spectral_x": base + noise * rng.normal(),
                         "psnr": -base + 2.0 * scene + noise * rng.normal(), "ssim": rng.normal()}
                    rows.append(r)
    for r in rows:  # cap 2 at CRF 47, window 0: the cap did not bind there
        if r["variant"] == "crf47_cap2.0" and r["window_start"] == 0:
            u = next(q for q in rows if q["video"] == r["video"] and q["variant"] == "crf47" and q["window_start"] == 0)
            r.update({k: u[k] for k in ("ap50", "ap", "dctqa_spectral_x", "psnr", "ssim")})
    return rows


METRICS = ["dctqa_spectral_x", "psnr", "ssim"]


def test_duplicates_marked_and_left_out(rng):
    rows = _table(rng)
    marked = mark_duplicates(rows, METRICS, tolerance=0.05)
    reason = {(r["video"], r["variant"], r["window_start"]): r["duplicate_reason"] for r in marked}
    assert all(reason[(v, "crf41_cap1.0", w)] == "bitrate" for v in ("v1", "v2") for w in range(0, 600, 100))
    assert reason[("v1", "crf47_cap2.0", 0)] == "identical" and reason[("v1", "crf47_cap2.0", 100)] == ""
    assert all(reason[(v, n, w)] == "" for (v, n, w) in reason if "cap" not in n)
    assert next(r for r in marked if r["variant"] == "crf41_cap1.0")["duplicate_of"] == "crf41"
    sel = select_rows(marked, min_gt=0)
    assert sel.n_dup_bitrate == 12 and sel.n_dup_identical == 2 and sel.n_duplicates == 14
    assert len(sel.rows) == len(rows) - 14 and not any(r["duplicate_reason"] for r in sel.rows)
    assert len(select_rows(marked, min_gt=0, keep_duplicates=True).rows) == len(rows)
    # a looser tolerance catches more, a tighter one fewer
    assert sum(r["duplicate_reason"] == "bitrate" for r in mark_duplicates(rows, METRICS, 0.01)) == 0


def test_min_gt_filter_counts_windows_and_content(rng):
    rows = _table(rng)
    for r in rows[:5]:
        r["ap50"] = r["ap"] = None  # no ground truth
    sel = select_rows(mark_duplicates(rows, METRICS), min_gt=10, keep_duplicates=True)
    few = [r for r in rows if r["ap50"] is not None and r["n_gt"] < 10]
    assert sel.n_few_gt == len(few) > 0 and sel.n_content_few_gt == 2 and sel.n_no_gt == 5
    assert all(r["n_gt"] >= 10 and r["ap50"] is not None for r in sel.rows)
    assert len(select_rows(mark_duplicates(rows, METRICS), min_gt=0, keep_duplicates=True).rows) == len(rows) - 5


def test_analyze_views_and_verdicts(rng, tmp_path):
    rows = _table(rng, n_windows=8, videos=("v1", "v2", "v3"))
    s = AnalysisSettings(metrics=METRICS, n_boot=300, min_gt=10)
    a = analyze(rows, ["v1", "v2", "v3"], s)
    assert a.settings.primary == "dctqa_spectral_x" and a.settings.compared == ["psnr", "ssim"]
    used = a.selection.rows
    names = dict.fromkeys(c["subset"] for c in a.correlations)
    assert {"all", "crf 35,41,47", "crf 41,47", "uncapped", "video v1", "without v2"} <= set(names)
    # pooled estimates are scipy's on the used rows; clusters = content windows
    by = {(c["subset"], c["target"], c["metric"]): c for c in a.correlations}
    y = np.array([r["ap"] for r in used])
    for col in METRICS:
        x = np.array([r[col] for r in used])
        c = by[("all", "ap", col)]
        np.testing.assert_allclose([c["lcc"], c["srcc"], c["krcc"]], _scipy_all(x, y), atol=1e-12)
        assert c["n_clusters"] == len({content_id(r) for r in used}) == 3 * 7
    # within content window: mean of per-window Spearman correlations
    w = {(r["view"], r["subset"], r["target"], r["metric"]): r for r in a.within}
    per = [stats.spearmanr([r["psnr"] for r in used if content_id(r) == g],
                           [r["ap"] for r in used if content_id(r) == g]).statistic
           for g in dict.fromkeys(content_id(r) for r in used)]
    assert w[("content window", "all", "ap", "psnr")]["srcc"] == pytest.approx(np.mean(per))
    # pooled: PSNR's per-scene offsets hurt it, dctqa is ahead; SSIM is noise: dctqa far ahead
    d = {(x["view"], x["subset"], x["target"], x["stat"], x["baseline"]): x for x in a.differences}
    assert d[("pooled", "all", "ap", "srcc", "psnr")]["verdict"] == "ahead"
    assert d[("pooled", "all", "ap", "srcc", "ssim")]["verdict"] == "ahead"
    assert d[("pooled", "all", "ap", "srcc", "ssim")]["lo"] > 0.5
    # within a content window both follow AP equally (the offset is constant there)
    wd = d[("content window", "all", "ap", "srcc", "psnr")]
    assert abs(wd["diff"]) < 0.1 and wd["lo"] <= 0 <= wd["hi"] and wd["verdict"] == "no clear difference"
    # window resampling gives narrower (overconfident) intervals than content resampling
    aw = analyze(rows, ["v1", "v2", "v3"], AnalysisSettings(metrics=METRICS, n_boot=300, resampling="window"))
    cw = {(c["subset"], c["target"], c["metric"]): c for c in aw.correlations}
    wide, narrow = by[("all", "ap", "psnr")], cw[("all", "ap", "psnr")]
    assert narrow["srcc_hi"] - narrow["srcc_lo"] < wide["srcc_hi"] - wide["srcc_lo"]
    assert narrow["resampling"] == "window"
    # headline (sensitivity rows) agrees with the full analysis
    h = {x["target"]: x for x in headline(rows, ["v1", "v2", "v3"], s, baseline="psnr")}
    assert h["ap"]["diff"] == pytest.approx(d[("pooled", "all", "ap", "srcc", "psnr")]["diff"])
    assert h["ap"]["share_ap_1"] == pytest.approx(np.mean([r["ap"] == 1.0 for r in used]))
    # CSV round trip
    path = tmp_path / "windows.csv"
    path.write_text(rows_to_csv(a.rows))
    back = load_windows_csv(path)
    assert [r["duplicate_reason"] for r in back] == [r["duplicate_reason"] for r in a.rows]
    assert back[0]["maxrate_kbps"] is None and back[1]["maxrate_kbps"] == 1.0 and back[0]["crf"] == 23


def test_settings_errors():
    with pytest.raises(InputError, match="resampling"):
        AnalysisSettings(metrics=METRICS, resampling="frames")
    with pytest.raises(InputError, match="min_gt"):
        AnalysisSettings(metrics=METRICS, min_gt=-1)
    with pytest.raises(InputError, match="dup_tolerance"):
        AnalysisSettings(metrics=METRICS, dup_tolerance=1.5)
    with pytest.raises(InputError, match="n_boot"):
        AnalysisSettings(metrics=METRICS, n_boot=-5)


def test_few_clusters_give_no_verdict_and_cli_study_tables(rng, tmp_path, capsys):
    from dctqa.cli import main

    rows = _table(rng, n_windows=4, videos=("v1", "v2", "v3"))
    a = analyze(rows, ["v1", "v2", "v3"], AnalysisSettings(metrics=METRICS, n_boot=100, resampling="video"))
    pooled = [d for d in a.differences if d["view"] == "pooled" and d["subset"] == "all"]
    assert pooled and all(d["verdict"] == "too few clusters (3)" and d["n_clusters"] == 3 for d in pooled)
    # the re-analysis command on a written window table
    path = tmp_path / "windows.csv"
    path.write_text(rows_to_csv(rows))
    assert main(["study-tables", str(path), "--out", str(tmp_path / "t"), "--n-boot", "50", "--min-gt", "5"]) == 0
    report = (tmp_path / "t" / "report.md").read_text()
    assert "## Which windows count" in report and "fewer than 5" in report and "Table 1" in report
    assert (tmp_path / "t" / "differences.csv").stat().st_size > 0
    assert main(["study-tables", str(tmp_path / "none.csv"), "--out", str(tmp_path / "u")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["study-tables", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "u")]) == 2
