"""Issue 25's five study defects, each pinned down: strict JSON with a time table that agrees
with timings.json (1), a warning and no statistics for windows cut short (2), the report
naming the views that cannot inform for the variants it was given (3), no empty CSV and a
stage line that tells the truth (4), single-video runs saying that the within-video view is
the pooled one (5)."""
from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from dctqa.fileio import json_safe, strict_json
from dctqa.study import StudyConfig, run_study
from dctqa.study.analysis import (AnalysisSettings, analyze, headline, is_cut_short, load_windows_csv,
                                  select_rows, uninformative_views)
from dctqa.study.codec import EncodeSettings
from dctqa.study.report import TABLE_COLUMNS, rows_to_csv, table_csv, write_tables_report
from tests.test_analysis import METRICS, _table
from tests.test_study import BrightBlobDetector, blob_clip, write_lossless


def _strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (what a strict parser does)."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """One tiny single-video study: 40 frames (asked for 50), 15-frame windows (the last holds
    10 frames), three uncapped CRFs, no threshold grid. Returns (result, out, stderr lines)."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("defects")
    clip = tmp / "blobs.mkv"
    write_lossless(clip, blob_clip(n=40))
    out = tmp / "study"
    cfg = StudyConfig(videos=[clip], out=out,
                      encode=EncodeSettings(crfs=(20, 35, 51), cap_bpp=(), preset="ultrafast", max_frames=50),
                      backbones=[], pixel=True, baselines=("psnr", "ssim"), detector=BrightBlobDetector(),
                      frame_stride=1, metric_stride=1, window=15, n_boot=50, min_gt=1,
                      sensitivity_gt=(), sensitivity_pred=(), progress=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = run_study(cfg)
    return res, out, err.getvalue().splitlines()


# ----------------------------------------------------------------------------- 1: strict JSON

def test_strict_json_maps_undefined_numbers_to_null():
    doc = {"a": float("nan"), "b": [np.float32("inf"), -math.inf, 1.5, np.float64(2.0)], "c": (1, True, None)}
    text = strict_json(doc, indent=1)
    assert _strict_loads(text) == {"a": None, "b": [None, None, 1.5, 2.0], "c": [1, True, None]}
    assert json_safe(3) == 3 and json_safe("NaN") == "NaN"  # strings and integers untouched
    with pytest.raises(ValueError):
        _strict_loads('{"x": NaN}')  # the checker itself refuses what json.dumps writes by default


def test_every_json_of_a_study_is_strict(small_study):
    """Every JSON file the run wrote (timings.json, variants.json, every cache document) and
    every JSON string inside the cache's .npz files parses with a strict parser."""
    res, out, _ = small_study
    files = sorted(out.rglob("*.json"))
    assert out / "timings.json" in files and len(files) >= 4
    for p in files:
        _strict_loads(p.read_text())
    npz = sorted(out.rglob("*.npz"))
    assert npz
    for p in npz:
        with np.load(p, allow_pickle=False) as z:
            for k in ("__key__", "__meta__"):
                if k in z.files:
                    _strict_loads(str(z[k]))
    timings = _strict_loads((out / "timings.json").read_text())
    assert timings["total_wall"]["computed_s"] is None and timings["total_wall"]["this_run_s"] > 0


def test_report_time_table_agrees_with_timings_json(small_study):
    _, out, _ = small_study
    timings = _strict_loads((out / "timings.json").read_text())
    report = (out / "report.md").read_text()
    table = report.split("## Where the time goes (seconds)")[1].split("Stage cache:")[0]
    rows = {m[0]: (m[1], m[2]) for m in re.findall(r"^\| (\w+) \| ([\d.]*) \| ([\d.]+) \|$", table, re.M)}
    assert set(rows) == set(timings)
    for part, t in timings.items():
        comp, this = rows[part]
        assert comp == ("" if t["computed_s"] is None else f"{t['computed_s']:.1f}"), part
        assert this == f"{t['this_run_s']:.1f}", part
    assert float(rows["report"][1]) == pytest.approx(timings["report"]["this_run_s"], abs=0.05)


# ----------------------------------------------------------------------------- 2: short videos, windows cut short

def test_short_video_warns_and_cut_short_window_is_left_out(small_study):
    res, out, err = small_study
    warnings = [e for e in err if e.startswith("study: warning: ")]
    assert any("has 40 frames, fewer than the 50 asked for (--max-frames)" in w for w in warnings)
    assert any("last AP window (frames 30-39) holds 10 of 15 frames" in w for w in warnings)
    report = (out / "report.md").read_text()
    assert "## Warnings and skipped stages" in report and "fewer than the 50 asked for" in report
    rows = list(csv.DictReader(open(out / "windows.csv")))
    short = [r for r in rows if r["window_start"] == "30"]
    assert len(short) == 3 and all(r["window_frames"] == "10" and r["window_end"] == "45" for r in short)
    assert all(r["window_frames"] == "15" for r in rows if r["window_start"] != "30")
    sel = res.analysis.selection
    assert sel.n_cut_short == 3 and all(r["window_start"] != 30 for r in sel.rows)
    assert len(sel.rows) == 6  # 2 full windows x 3 variants
    assert "cut short (the last window" in report and "left out: 3" in report


def test_cut_short_rows_never_reach_the_statistics(rng):
    rows = _table(rng)
    for r in rows:
        r["window_frames"] = 100
    last = [r for r in rows if r["window_start"] == 500]
    for r in last:
        r["window_frames"] = 20
    assert all(is_cut_short(r) for r in last) and not any(is_cut_short(r) for r in rows if r not in last)
    sel = select_rows(rows, min_gt=0, keep_duplicates=True)
    assert sel.n_cut_short == len(last) > 0 and sel.n_total == len(rows)
    assert len(sel.rows) == len(rows) - len(last) and not any(r["window_start"] == 500 for r in sel.rows)
    a = analyze(rows, ["v1", "v2"], AnalysisSettings(metrics=METRICS, n_boot=20, min_gt=0))
    assert a.selection.n_cut_short == len(last) and not any(r["window_start"] == 500 for r in a.selection.rows)
    assert next(c for c in a.correlations if c["subset"] == "all")["n"] == len(a.selection.rows)
    # a table written before the column existed has no cut-short rows
    assert not is_cut_short({"window_start": 0, "window_end": 100})


# ----------------------------------------------------------------------------- 3 and 5: views that cannot inform

def _quick_like(rng, videos=("v1",)):
    """Uncapped CRF 35/41/47 only, as `--quick` encodes: one variant per CRF per content window."""
    rows = [r for r in _table(rng, videos=videos) if r["maxrate_kbps"] is None and r["crf"] != 23]
    for r in rows:
        r["n_gt"] = 20
        r["ssim"] = 1 - 0.1 * r["crf"] / 47 + 0.001 * rng.normal()  # worsens with the CRF, as PSNR does
    return rows


def test_uninformative_views_for_quick_variants(rng, tmp_path):
    a = analyze(_quick_like(rng), ["v1"], AnalysisSettings(metrics=METRICS, n_boot=50, min_gt=0))
    u = {(x["view"], x["subset"]): x["reason"] for x in uninformative_views(a)}
    assert "differ only in CRF" in u[("content window", "all")]
    assert "0 by construction" in u[("content window", "all")] and "identically in all 6 content" in u[
        ("content window", "all")]
    wd = [d for d in a.differences if d["view"] == "content window" and d["subset"] == "all" and d["stat"] != "lcc"]
    assert wd and all(d["diff"] == 0 for d in wd)  # what the reason says: zeros by construction
    assert "at most 2 variant(s) per content window" in u[("content window", "crf 41,47")]
    assert u[("pooled", "crf 35,41,47")] == u[("pooled", "uncapped")] == u[("pooled", "video v1")] \
        == "the same windows as `all`"
    assert "one video" in u[("video", "all")]
    report = write_tables_report(a, tmp_path / "t", "windows.csv").read_text()
    assert "## Views that cannot inform for these variants" in report
    assert "differ only in CRF" in report and "pooled view of the same windows" in report
    verdict = report.split("## Verdict")[1].split("## Pooled and within-content views")[0]
    within = verdict.split("### Within content window")[1].split("### Within video")[0]
    assert "| crf 41,47 (0) |" not in verdict and "| all (" not in within  # no silent zeros / n/a rows
    assert "| all (" not in verdict.split("### Within video")[1]  # the single video's within view: omitted
    assert "= pooled" in report and "(uninformative)" in report


def test_content_view_flagged_when_a_measure_breaks_the_crf_order(rng):
    rows = _quick_like(rng)
    for r in rows:
        r["ssim"] = rng.normal()  # noise: not monotone in the CRF
    a = analyze(rows, ["v1"], AnalysisSettings(metrics=METRICS, n_boot=20, min_gt=0))
    why = {(x["view"], x["subset"]): x["reason"] for x in uninformative_views(a)}[("content window", "all")]
    assert "does not worsen monotonically" in why and "0 by construction" not in why
    assert not re.search(r"identically in 6 of 6", why)


def test_subset_without_windows_is_named(rng):
    rows = [r for r in _quick_like(rng) if r["crf"] != 41 and r["crf"] != 47]  # CRF 35 only
    a = analyze(rows, ["v1"], AnalysisSettings(metrics=METRICS, n_boot=20, min_gt=0))
    u = {(x["view"], x["subset"]): x["reason"] for x in uninformative_views(a)}
    assert u[("pooled", "crf 41,47")].startswith("0 window(s) with ground truth")


def test_informative_views_are_not_flagged(rng):
    """Capped and uncapped variants (several per CRF) from two videos: every view can inform
    on `all` (only the per-video pooled subsets repeat nothing, and none is flagged)."""
    a = analyze(_table(rng), ["v1", "v2"], AnalysisSettings(metrics=METRICS, n_boot=50, min_gt=0))
    u = {(x["view"], x["subset"]) for x in uninformative_views(a)}
    assert ("content window", "all") not in u and ("video", "all") not in u
    assert not any(v == "pooled" for v, _ in u)
    assert ("content window", "uncapped") in u  # one encode per CRF there


def test_single_video_study_report_says_within_video_is_pooled(small_study):
    _, out, _ = small_study
    report = (out / "report.md").read_text()
    assert "one video: the within-video view is the pooled view of the same windows" in report
    assert "differ only in CRF" in report


# ----------------------------------------------------------------------------- 4: no empty CSV, truthful stage line

def test_no_empty_csv_and_skipped_sensitivity_is_said(small_study):
    res, out, err = small_study
    for p in sorted(out.glob("*.csv")):
        assert p.stat().st_size > 0, p.name
    with open(out / "sensitivity.csv") as f:
        reader = csv.reader(f)
        assert next(reader) == list(TABLE_COLUMNS["sensitivity"]) and list(reader) == []
    report = (out / "report.md").read_text()
    assert "sensitivity: skipped (no threshold grid" in report
    assert not re.search(r"sensitivity: \d+ reused, \d+ computed", report)
    assert not (out / "cache" / "sensitivity").exists()
    assert any("no threshold sensitivity (empty grid)" in e for e in err)
    assert res.sensitivity == []


def test_declared_columns_match_the_tables(small_study, rng):
    res, out, _ = small_study
    for name in ("correlations", "within", "differences", "variants"):
        with open(out / f"{name}.csv") as f:
            assert next(csv.reader(f)) == list(TABLE_COLUMNS[name]), name
    with open(out / "windows.csv") as f:
        head = next(csv.reader(f))
    assert head == list(TABLE_COLUMNS["windows"]) + res.metric_columns + ["duplicate_of", "duplicate_reason"]
    assert table_csv("windows", [], res.metric_columns) == ",".join(head) + "\n"
    s = AnalysisSettings(metrics=METRICS, n_boot=20, min_gt=0)
    h = headline(_table(rng), ["v1", "v2"], s, baseline="psnr")
    assert ["gt_score", "pred_score", *h[0]] == list(TABLE_COLUMNS["sensitivity"])
    assert rows_to_csv([]) == "" and table_csv("within", []).startswith("view,subset,")
    # load_windows_csv reads window_frames as an integer
    back = load_windows_csv(out / "windows.csv")
    assert isinstance(back[0]["window_frames"], int)
