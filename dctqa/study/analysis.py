"""The study's statistics on the window table: which rows count, and what the correlations say.

A row of the window table is one (video, variant, window). Rows are not independent: the
25 variants of one *content window* (video x window start) show the same scene, and the
windows of one video share a camera. Every interval here therefore resamples whole
content windows by default (``resampling="content"``; ``"video"`` resamples whole videos,
``"window"`` treats rows as independent and is kept only for comparison, labelled).

Views:

- **pooled**: one correlation over all rows of a subset (different scenes on one scale):
  the question of someone ranking footage from many cameras ("which clips will the
  detector do worst on?");
- **within content window**: the correlation over the variants of one content window,
  averaged over content windows: the question of someone tuning one camera's encoder
  ("which setting hurts this scene most?");
- **within video**: the correlation over one video's rows, averaged over videos.

"A is ahead of B" is said only when the paired interval of the sign-adjusted difference
(same resamples for both) excludes 0.

Row selection (:func:`select_rows`): windows cut short (the last window of a video whose
length is not a multiple of the window: fewer source frames than the others,
:func:`is_cut_short`), windows without ground truth and windows with fewer
than ``min_gt`` ground-truth boxes are left out (counted), and capped variants that are
duplicates of the uncapped variant of the same CRF (:func:`mark_duplicates`) are left out
unless kept on request.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..registry import DCTQA_METRICS, metric_info
from .stats import (STATISTICS, _percentile_interval, mean_with_interval, resample_counts,
                     resample_statistics, within_group_correlations)

#: Targets the metrics are correlated with.
TARGETS = ("ap50", "ap")
#: Measures compared with the primary dctqa column in paired differences, when present.
COMPARED = ("psnr", "psnr_global", "ssim")


@dataclass
class AnalysisSettings:
    """What the analysis does with the window table.

    primary: the metric the verdicts are about (default: first full-reference dctqa column);
    compared: the measures it is compared with (default: PSNR, PSNR global, SSIM and the other
    full-reference dctqa columns; the no-reference ``dctqa_nr`` is an indicator like
    blockiness). resampling: "content" (default), "video" or "window". min_gt: windows with
    fewer ground-truth boxes are left out. dup_tolerance: relative bitrate difference under
    which a capped variant counts as a duplicate of the uncapped one. keep_duplicates:
    keep those in the correlations.
    """

    metrics: list[str]
    crf_subsets: Sequence[Sequence[int]] = ((35, 41, 47), (41, 47))
    primary: str | None = None
    compared: list[str] | None = None
    resampling: str = "content"
    n_boot: int = 1000
    seed: int = 0
    min_gt: int = 10
    dup_tolerance: float = 0.05
    keep_duplicates: bool = False
    leave_one_out: bool = True

    def __post_init__(self) -> None:
        from ..errors import InputError
        from .stats import RESAMPLING

        if self.resampling not in RESAMPLING:
            raise InputError(f"resampling must be one of {RESAMPLING}, got {self.resampling!r}")
        if int(self.n_boot) != self.n_boot or self.n_boot < 0:
            raise InputError(f"n_boot must be a non-negative integer, got {self.n_boot!r}")
        if int(self.min_gt) != self.min_gt or self.min_gt < 0:
            raise InputError(f"min_gt must be a non-negative integer, got {self.min_gt!r}")
        if not 0.0 <= self.dup_tolerance < 1.0:
            raise InputError(f"dup_tolerance must be in [0, 1), got {self.dup_tolerance}")
        dq = [c for c in self.metrics if c.startswith("dctqa") and not is_no_reference(c)]
        if self.primary is None:
            self.primary = dq[0] if dq else None
        if self.compared is None:
            self.compared = [c for c in COMPARED if c in self.metrics] + [c for c in dq if c != self.primary]


def column_metric(col: str) -> str:
    """The registry name of a study column (the one mapping): ``dctqa_<domain>_<backbone>``
    -> the domain's dctqa metric (``dctqa``, ``dctqa_feature``, ``dctqa_pixel``),
    ``psnr_global`` (PSNR of the window's mean MSE) -> ``psnr``, a baseline -> itself."""
    if col.startswith("dctqa_"):
        domain = col.split("_")[1]
        if domain in DCTQA_METRICS:
            return DCTQA_METRICS[domain]
    return "psnr" if col == "psnr_global" else col


def is_no_reference(col: str) -> bool:
    """Whether a column is a registered no-reference metric (e.g. ``dctqa_nr``, ``blockiness``):
    such columns are indicators like the baselines, never the primary or compared dctqa column."""
    from ..errors import InputError

    try:
        return metric_info(column_metric(col)).kind == "NR"
    except InputError:  # a column the registry does not know (a foreign table)
        return False


def higher_is_better(col: str) -> bool:
    """Direction of a metric column, from the registry (``metric_info(...).lower_better``)."""
    return not metric_info(column_metric(col)).lower_better


def sign(col: str) -> float:
    """+1 for higher-is-better columns, -1 otherwise: multiply a correlation by it so that
    larger always means "tracks detection in the expected direction"."""
    return 1.0 if higher_is_better(col) else -1.0


def content_id(row: dict) -> str:
    """The content window of a row: ``"<video>@<window_start>"`` (all variants share it)."""
    return f"{row['video']}@{row['window_start']}"


# ----------------------------------------------------------------------------- rows

_INT = ("crf", "window_start", "window_end", "window_frames", "n_det_frames", "n_metric_frames", "n_gt")
_STR = ("video", "variant", "duplicate_of", "duplicate_reason")


def load_windows_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``windows.csv`` written by the study, with numbers as numbers and empty
    cells as ``None`` (AP, cap) or NaN (metric columns). Raises :class:`InputError` for a
    file that is not such a table (missing, not CSV, no ``video``/``variant``/``ap`` column,
    a cell that is not a number)."""
    from ..fileio import parse_number, read_csv_rows

    need = ("video", "variant", "crf", "window_start", "ap50", "ap")
    rows = []
    for i, raw in enumerate(read_csv_rows(path, "the windows.csv of a study run", required=need)):
        r: dict[str, Any] = {}
        for k, v in raw.items():
            where = f"{str(path)!r} row {i + 2}, column {k!r}"
            if k in _STR:
                r[k] = v
            elif k in _INT:
                r[k] = parse_number(v, int, where=where)
            elif v == "":
                r[k] = None if k in ("ap50", "ap", "maxrate_kbps", "cap_bpp") else float("nan")
            else:
                r[k] = parse_number(v, float, where=where)
        rows.append(r)
    return rows


def metric_columns_of(rows: Sequence[dict]) -> list[str]:
    """The metric columns of a window table: those between ``ap`` and the duplicate marks."""
    if not rows:
        return []
    keys = list(rows[0])
    end = keys.index("duplicate_of") if "duplicate_of" in keys else len(keys)
    return keys[keys.index("ap") + 1:end]


def is_cut_short(row: dict) -> bool:
    """Whether a window-table row is a window cut short: ``window_frames`` (source frames it
    holds) below its span ``window_end - window_start``. Tables without the column (written
    before it existed) have no such rows."""
    wf = row.get("window_frames")
    return wf is not None and wf == wf and wf < row["window_end"] - row["window_start"]


def _is_uncapped(row: dict) -> bool:
    v = row.get("maxrate_kbps")
    return v is None or (isinstance(v, float) and math.isnan(v))


def mark_duplicates(rows: Sequence[dict], metric_columns: Sequence[str], tolerance: float = 0.05
                    ) -> list[dict]:
    """Copies of ``rows`` with ``duplicate_of`` (the uncapped variant's name, or "") and
    ``duplicate_reason`` ("identical", "bitrate" or "").

    A capped window is a duplicate of the uncapped window of the same video, CRF and start
    when AP50, AP and every metric column equal the uncapped window's exactly ("identical":
    the cap did not bind there, so the frames are the same); otherwise when its variant's
    measured bitrate is within ``tolerance`` (relative) of the uncapped one ("bitrate": the
    cap hardly bound anywhere, all the variant's windows are marked).
    """
    uncapped = {(r["video"], r["crf"]): r for r in rows if _is_uncapped(r)}
    by_window = {(r["video"], r["crf"], r["window_start"]): r for r in rows if _is_uncapped(r)}
    out = []
    for r in rows:
        r = dict(r, duplicate_of="", duplicate_reason="")
        u = uncapped.get((r["video"], r["crf"]))
        if u is not None and not _is_uncapped(r):
            uw = by_window.get((r["video"], r["crf"], r["window_start"]))
            if uw is not None and all(_same(r[c], uw[c]) for c in list(metric_columns) + ["ap50", "ap"]):
                r.update(duplicate_of=u["variant"], duplicate_reason="identical")
            elif abs(r["bitrate_kbps"] - u["bitrate_kbps"]) <= tolerance * u["bitrate_kbps"]:
                r.update(duplicate_of=u["variant"], duplicate_reason="bitrate")
        out.append(r)
    return out


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or (math.isnan(a) and math.isnan(b))


@dataclass
class Selection:
    """Rows used by the correlations and how many were left out, and why."""

    rows: list[dict]
    n_total: int
    n_no_gt: int
    n_few_gt: int
    n_content_few_gt: int
    n_duplicates: int
    n_dup_bitrate: int
    n_dup_identical: int
    n_capped: int
    min_gt: int
    keep_duplicates: bool
    n_cut_short: int = 0


def select_rows(rows: Sequence[dict], min_gt: int = 10, keep_duplicates: bool = False) -> Selection:
    """Rows (already through :func:`mark_duplicates`) that enter the correlations: not cut
    short (:func:`is_cut_short`), with ground truth, at least ``min_gt`` ground-truth boxes, and
    not a duplicate (unless ``keep_duplicates``). The counts other than ``n_cut_short`` are over
    the full windows; ``n_total`` counts every row."""
    n_total = len(rows)
    cut = [r for r in rows if is_cut_short(r)]
    rows = [r for r in rows if not is_cut_short(r)]
    no_gt = [r for r in rows if r["ap50"] is None]
    few = [r for r in rows if r["ap50"] is not None and r["n_gt"] < min_gt]
    dups = [r for r in rows if r.get("duplicate_reason")]
    keep = [r for r in rows if r["ap50"] is not None and r["n_gt"] >= min_gt
            and (keep_duplicates or not r.get("duplicate_reason"))]
    return Selection(rows=keep, n_total=n_total, n_no_gt=len(no_gt), n_few_gt=len(few),
                     n_content_few_gt=len({content_id(r) for r in few}), n_duplicates=len(dups),
                     n_dup_bitrate=sum(r["duplicate_reason"] == "bitrate" for r in dups),
                     n_dup_identical=sum(r["duplicate_reason"] == "identical" for r in dups),
                     n_capped=sum(not _is_uncapped(r) for r in rows), min_gt=int(min_gt),
                     keep_duplicates=keep_duplicates, n_cut_short=len(cut))


def subsets(rows: Sequence[dict], videos: Sequence[str], crf_subsets: Sequence[Sequence[int]],
            leave_one_out: bool = True) -> list[tuple[str, list[dict]]]:
    """Named row subsets: all windows, each CRF subset, uncapped variants only, each video,
    and (``leave_one_out``, with 3 or more videos) all windows without each video."""
    out = [("all", list(rows))]
    for s in crf_subsets:
        keep = set(int(c) for c in s)
        out.append(("crf " + ",".join(str(c) for c in sorted(keep)), [r for r in rows if int(r["crf"]) in keep]))
    out.append(("uncapped", [r for r in rows if _is_uncapped(r)]))
    for v in videos:
        out.append((f"video {v}", [r for r in rows if r["video"] == v]))
    if leave_one_out and len(videos) >= 3:
        for v in videos:
            out.append((f"without {v}", [r for r in rows if r["video"] != v]))
    return out


def share_perfect(rows: Sequence[dict], target: str) -> float:
    """Fraction of rows (with ground truth) whose ``target`` equals 1 exactly."""
    vals = [r[target] for r in rows if r[target] is not None]
    return float(np.mean([v == 1.0 for v in vals])) if vals else float("nan")


# ----------------------------------------------------------------------------- correlations

def _clusters(rows: Sequence[dict], resampling: str):
    if resampling == "window":
        return None
    if resampling == "video":
        return np.array([r["video"] for r in rows])
    return np.array([content_id(r) for r in rows])


def _f(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


#: Fewer resampling units than this: no verdict (a percentile bootstrap over 2-4 clusters
#: cannot support a claim, whatever its interval says).
MIN_CLUSTERS = 5


def _verdict(lo, hi, n_clusters: int) -> str:
    if lo is None or hi is None:
        return "n/a"
    if n_clusters < MIN_CLUSTERS:
        return f"too few clusters ({n_clusters})"
    return "ahead" if lo > 0 else "behind" if hi < 0 else "no clear difference"


def _boots(sub: Sequence[dict], target: str, metrics: Sequence[str], counts: np.ndarray | None):
    """Per metric: (estimate (3,), resampled (3, B) or None, mask of rows used)."""
    y = np.array([r[target] for r in sub], dtype=np.float64)
    out = {}
    for col in metrics:
        x = np.array([r[col] for r in sub], dtype=np.float64)
        ok = ~(np.isnan(x) | np.isnan(y))
        if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
            out[col] = (np.full(3, np.nan), None, ok)
            continue
        est = resample_statistics(x[ok], y[ok], np.ones((1, int(ok.sum()))))[:, 0]
        boot = None if counts is None else resample_statistics(x[ok], y[ok], counts[:, ok])
        out[col] = (est, boot, ok)
    return out


def pooled_tables(named: Sequence[tuple[str, list[dict]]], s: AnalysisSettings
                  ) -> tuple[list[dict], list[dict]]:
    """Pooled correlation rows and paired-difference rows for each subset and target.

    Correlation rows: subset, target, metric, n, n_clusters, resampling, then lcc/srcc/krcc
    (raw, not sign-adjusted) with ``_lo``/``_hi`` (percentile 95 % interval). Difference
    rows: subset, target, stat, metric (the primary), baseline, diff (sign-adjusted primary
    minus sign-adjusted baseline), lo, hi, verdict ("ahead" = interval above 0).
    """
    corr, diffs = [], []
    for name, sub in named:
        for target in TARGETS:
            scored = [r for r in sub if r[target] is not None]
            cl = _clusters(scored, s.resampling)
            n_cl = len(scored) if cl is None else len(set(cl.tolist()))
            counts = resample_counts(len(scored), s.n_boot, s.seed, cl) if scored and s.n_boot else None
            boots = _boots(scored, target, s.metrics, counts) if len(scored) >= 3 else {}
            for col in s.metrics:
                rec: dict[str, Any] = {"subset": name, "target": target, "metric": col, "n": len(scored),
                                       "n_clusters": n_cl, "resampling": s.resampling, "notes": ""}
                est, boot, ok = boots.get(col, (np.full(3, np.nan), None, None))
                rec["n"] = int(ok.sum()) if ok is not None else len(scored)
                lohi, skipped = _percentile_interval(boot) if boot is not None else (np.full((3, 2), np.nan), 0)
                if np.isnan(est).all():
                    rec["notes"] = "too few rows or a constant input: correlation undefined"
                elif skipped:
                    rec["notes"] = f"{skipped} of {s.n_boot} resamples constant, skipped"
                for k, r, (lo, hi) in zip(STATISTICS, est, lohi):
                    rec.update({k: _f(r), f"{k}_lo": _f(lo), f"{k}_hi": _f(hi)})
                corr.append(rec)
            if s.primary in boots:
                diffs += _pooled_differences(name, target, scored, boots, counts, s, n_cl)
    return corr, diffs


def _pooled_differences(name, target, scored, boots, counts, s: AnalysisSettings, n_cl: int) -> list[dict]:
    out = []
    pa = boots[s.primary]
    for other in s.compared:
        pb = boots.get(other)
        if pb is None:
            continue
        if pa[2] is not None and pb[2] is not None and not np.array_equal(pa[2], pb[2]):
            both = pa[2] & pb[2]  # different NaN rows: recompute both on the common rows
            sub = [r for r, k in zip(scored, both) if k]
            b2 = _boots(sub, target, [s.primary, other], None if counts is None else counts[:, both])
            ea, ba, _ = b2[s.primary]
            eb, bb, _ = b2[other]
        else:
            (ea, ba, _), (eb, bb, _) = pa, pb
        d = sign(s.primary) * ea - sign(other) * eb
        lohi = (_percentile_interval(sign(s.primary) * ba - sign(other) * bb)[0]
                if ba is not None and bb is not None else np.full((3, 2), np.nan))
        for k, v, (lo, hi) in zip(STATISTICS, d, lohi):
            out.append({"view": "pooled", "subset": name, "target": target, "stat": k, "metric": s.primary,
                        "baseline": other, "diff": _f(v), "lo": _f(lo), "hi": _f(hi),
                        "verdict": _verdict(_f(lo), _f(hi), n_cl), "resampling": s.resampling,
                        "n_clusters": n_cl})
    return out


def within_tables(named: Sequence[tuple[str, list[dict]]], s: AnalysisSettings
                  ) -> tuple[list[dict], list[dict]]:
    """Within-content-window and within-video correlations, averaged, for the subsets that
    span several videos (not the per-video ones), and their paired differences.

    Content-window view: each metric's LCC/SRCC/KRCC over the variants of each content
    window; the mean over the windows where it is defined (AP constant over a window's
    variants, e.g. AP50 = 1 throughout, leaves it undefined: counted in ``n_undefined``);
    interval: bootstrap over content windows. Video view: each video's correlation over its
    rows, averaged over videos; interval: content windows resampled within each video.
    """
    rows_out, diffs = [], []
    for name, sub in named:
        if name.startswith("video "):
            continue
        for target in TARGETS:
            scored = [r for r in sub if r[target] is not None]
            if len(scored) < 3:
                continue
            r1, d1 = _within_content(name, target, scored, s)
            r2, d2 = _within_video(name, target, scored, s)
            rows_out += r1 + r2
            diffs += d1 + d2
    return rows_out, diffs


def _within_content(name, target, scored, s: AnalysisSettings):
    y = np.array([r[target] for r in scored], dtype=np.float64)
    groups = np.array([content_id(r) for r in scored])
    per = {}
    for col in s.metrics:
        x = np.array([r[col] for r in scored], dtype=np.float64)
        per[col] = within_group_correlations(x, y, groups)[1]
    n_groups = len(set(groups.tolist()))
    rows = []
    for col in s.metrics:
        v = per[col]
        rec: dict[str, Any] = {"view": "content window", "subset": name, "target": target, "metric": col,
                               "n_groups": n_groups, "n_undefined": int(np.isnan(v[1]).sum())}
        for i, k in enumerate(STATISTICS):
            m = mean_with_interval(v[i], s.n_boot, s.seed)
            rec.update({k: _f(m.r), f"{k}_lo": _f(m.lo), f"{k}_hi": _f(m.hi)})
        rows.append(rec)
    diffs = []
    if s.primary in per:
        for other in s.compared:
            d = sign(s.primary) * per[s.primary] - sign(other) * per[other]
            for i, k in enumerate(STATISTICS):
                m = mean_with_interval(d[i], s.n_boot, s.seed)
                n_def = int(np.isfinite(d[i]).sum())
                diffs.append({"view": "content window", "subset": name, "target": target, "stat": k,
                              "metric": s.primary, "baseline": other, "diff": _f(m.r), "lo": _f(m.lo),
                              "hi": _f(m.hi), "verdict": _verdict(_f(m.lo), _f(m.hi), n_def),
                              "resampling": "content", "n_clusters": n_def})
    return rows, diffs


def _within_video(name, target, scored, s: AnalysisSettings):
    videos = list(dict.fromkeys(r["video"] for r in scored))
    n_cl = len({content_id(r) for r in scored}) if s.resampling != "window" else len(scored)
    est = {c: [] for c in s.metrics}
    boot = {c: [] for c in s.metrics}
    for vi, v in enumerate(videos):
        sub = [r for r in scored if r["video"] == v]
        if len(sub) < 3:
            continue
        cl = _clusters(sub, "window" if s.resampling == "window" else "content")
        counts = resample_counts(len(sub), s.n_boot, s.seed + vi, cl) if s.n_boot else None
        for col, (e, b, ok) in _boots(sub, target, s.metrics, counts).items():
            est[col].append(e)
            boot[col].append(b)
    rows, diffs = [], []
    mean_est, mean_boot = {}, {}
    for col in s.metrics:
        if not est[col]:
            continue
        mean_est[col] = np.mean(est[col], axis=0)  # NaN when a video's correlation is undefined
        mean_boot[col] = (np.mean(boot[col], axis=0) if all(b is not None for b in boot[col]) else None)
        lohi = (_percentile_interval(mean_boot[col])[0] if mean_boot[col] is not None
                else np.full((3, 2), np.nan))
        rec: dict[str, Any] = {"view": "video", "subset": name, "target": target, "metric": col,
                               "n_groups": len(est[col]), "n_undefined": int(np.isnan(mean_est[col][1]))}
        for k, r, (lo, hi) in zip(STATISTICS, mean_est[col], lohi):
            rec.update({k: _f(r), f"{k}_lo": _f(lo), f"{k}_hi": _f(hi)})
        rows.append(rec)
    if s.primary in mean_est:
        for other in s.compared:
            if other not in mean_est:
                continue
            d = sign(s.primary) * mean_est[s.primary] - sign(other) * mean_est[other]
            ba, bb = mean_boot[s.primary], mean_boot[other]
            lohi = (_percentile_interval(sign(s.primary) * ba - sign(other) * bb)[0]
                    if ba is not None and bb is not None else np.full((3, 2), np.nan))
            for k, v, (lo, hi) in zip(STATISTICS, d, lohi):
                diffs.append({"view": "video", "subset": name, "target": target, "stat": k,
                              "metric": s.primary, "baseline": other, "diff": _f(v), "lo": _f(lo),
                              "hi": _f(hi), "verdict": _verdict(_f(lo), _f(hi), n_cl),
                              "resampling": "content" if s.resampling != "window" else "window",
                              "n_clusters": n_cl})
    return rows, diffs


@dataclass
class Analysis:
    """Everything :func:`analyze` computed: the selection, pooled correlations, within
    views, paired differences (pooled and within), each a list of CSV-ready dicts."""

    selection: Selection
    rows: list[dict]
    correlations: list[dict]
    within: list[dict]
    differences: list[dict]
    settings: AnalysisSettings
    videos: list[str]
    extra_meta: dict = field(default_factory=dict)


def analyze(rows: Sequence[dict], videos: Sequence[str], s: AnalysisSettings) -> Analysis:
    """Mark duplicates, select rows, and compute every table (see the module docstring)."""
    marked = mark_duplicates(rows, s.metrics, s.dup_tolerance)
    sel = select_rows(marked, s.min_gt, s.keep_duplicates)
    named = subsets(sel.rows, videos, s.crf_subsets, s.leave_one_out)
    corr, pdiff = pooled_tables(named, s)
    within, wdiff = within_tables(named, s)
    return Analysis(selection=sel, rows=marked, correlations=corr, within=within, differences=pdiff + wdiff,
                    settings=s, videos=list(videos))


# ----------------------------------------------------------------------------- views that cannot inform

def uninformative_views(a: Analysis) -> list[dict[str, str]]:
    """The (view, subset) pairs of ``a`` that cannot tell the measures apart for the variants
    the run was given, each ``{"view", "subset", "reason"}`` (view: "pooled", "content window"
    or "video", as in :func:`within_tables`), in subset order:

    - pooled: a subset holding the same windows as an earlier one (e.g. ``crf 35,41,47`` or
      ``uncapped`` when those are all the variants, ``video v`` with one video), or fewer than
      3 windows with ground truth (no correlation is defined);
    - content window: fewer than 3 variants per content window (no correlation is defined),
      or variants that differ only in CRF (one per CRF): every measure that worsens with the
      CRF ranks them alike, so the paired differences are 0 by construction;
    - video: a subset with one video: the within-video view is the pooled view of the same
      windows.
    """
    s = a.settings
    named = [(n, [r for r in rows if r["ap50"] is not None])
             for n, rows in subsets(a.selection.rows, a.videos, s.crf_subsets, s.leave_one_out)]
    out: list[dict[str, str]] = []
    seen: dict[frozenset, str] = {}
    for name, rows in named:
        ids = frozenset((r["video"], r["variant"], r["window_start"]) for r in rows)
        if len(rows) < 3:
            out.append({"view": "pooled", "subset": name, "reason": f"{len(rows)} window(s) with ground truth "
                        "here (no variant of these CRFs, or too few windows); a correlation needs 3"})
        elif ids in seen:
            out.append({"view": "pooled", "subset": name, "reason": f"the same windows as `{seen[ids]}`"})
        else:
            seen[ids] = name
    for name, rows in named:
        if name.startswith("video ") or len(rows) < 3:
            continue
        why = _content_view_flaw(rows, s)
        if why:
            out.append({"view": "content window", "subset": name, "reason": why})
        if len({r["video"] for r in rows}) == 1:
            out.append({"view": "video", "subset": name, "reason": "one video: the within-video view is the "
                        "pooled view of the same windows, so its numbers repeat the pooled ones"})
    return out


def _content_view_flaw(rows: Sequence[dict], s: AnalysisSettings) -> str:
    """Why the within-content-window view of ``rows`` cannot inform ("" when it can)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(content_id(r), []).append(r)
    most = max(len(g) for g in groups.values())
    if most < 3:
        return (f"at most {most} variant(s) per content window here; a correlation over a content window's "
                "variants needs 3, so it is undefined everywhere")
    if any(len({int(r["crf"]) for r in g}) < len(g) for g in groups.values()):
        return ""
    cols = [c for c in [s.primary, *(s.compared or [])] if c]
    same = sum(_same_order(g, cols) for g in groups.values())
    why = ("the variants of each content window differ only in CRF (one encode per CRF, no bitrate cap among "
           "them): every measure that worsens with the CRF ranks them in the same order, so ")
    names = ", ".join(f"`{c}`" for c in cols)
    if same == len(groups):
        return why + (f"the paired within-content differences are 0 by construction ({names} rank the variants "
                      f"identically in all {same} content windows)")
    return why + (f"a paired within-content difference only counts the content windows where a measure does not "
                  f"worsen monotonically with the CRF ({names} rank the variants identically in {same} of "
                  f"{len(groups)}), not how well it tracks detection")


def _same_order(group: Sequence[dict], cols: Sequence[str]) -> bool:
    """Whether every column in ``cols`` (sign-adjusted) orders the rows of ``group`` the same way."""
    orders = set()
    for c in cols:
        v = np.array([sign(c) * r[c] for r in group], dtype=np.float64)
        if np.isnan(v).any():
            return False
        orders.add(tuple(np.argsort(v, kind="stable")))
    return len(orders) <= 1


def headline(rows: Sequence[dict], videos: Sequence[str], s: AnalysisSettings,
             baseline: str | None = None) -> list[dict]:
    """The headline numbers of one window table (for the threshold sensitivity table): per
    target, the share of windows with AP = 1, windows used, pooled SRCC of the primary and
    ``baseline`` (default: PSNR global, else the first compared measure) with the paired
    difference and its interval, and the within-content-window SRCC difference. Empty when
    there is no primary metric or nothing to compare it with."""
    if baseline is None:
        baseline = "psnr_global" if "psnr_global" in s.metrics else (s.compared[0] if s.compared else None)
    if s.primary is None or baseline is None:
        return []
    marked = mark_duplicates(rows, s.metrics, s.dup_tolerance)
    sel = select_rows(marked, s.min_gt, s.keep_duplicates)
    s2 = AnalysisSettings(**{**s.__dict__, "metrics": [s.primary, baseline], "compared": [baseline]})
    named = [("all", sel.rows)]
    corr, pdiff = pooled_tables(named, s2)
    _, wdiff = within_tables(named, s2)
    out = []
    for target in TARGETS:
        c = {r["metric"]: r for r in corr if r["target"] == target}
        pd = next(d for d in pdiff if d["target"] == target and d["stat"] == "srcc")
        wd = next((d for d in wdiff if d["target"] == target and d["stat"] == "srcc"
                   and d["view"] == "content window"), None)
        out.append({"target": target, "baseline": baseline, "share_ap_1": share_perfect(sel.rows, target),
                    "n": len(sel.rows), "n_few_gt": sel.n_few_gt, "srcc_primary": _abs_signed(c[s.primary], "srcc"),
                    "srcc_baseline": _abs_signed(c[baseline], "srcc"), "diff": pd["diff"], "lo": pd["lo"],
                    "hi": pd["hi"], "verdict": pd["verdict"],
                    "within_diff": None if wd is None else wd["diff"], "within_lo": None if wd is None else wd["lo"],
                    "within_hi": None if wd is None else wd["hi"]})
    return out


def _abs_signed(rec: dict, stat: str) -> float | None:
    v = rec[stat]
    return None if v is None else sign(rec["metric"]) * v
