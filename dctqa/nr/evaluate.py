"""``dctqa eval-nr``: the no-reference model on the held-out frames of its own split.

For every checkpoint: its split is rebuilt from the settings stored in it (so a model is
only ever scored on content it did not train on), the held-out frames (every
``frame_step``-th) are decoded and predicted, and a ridge regressor on the blockiness, blur,
noise and contrast indicators is fitted on the same training frames and predicts the same
test frames. Tables (the layout of the paper's Tables 3 and 4):

* ``metrics.csv``: per video and pooled, LCC, SROCC, KRCC of predicted vs true Q, RMSE and
  MAE (Q units), each with a 95 % percentile bootstrap interval that resamples content
  windows (video, window of the checkpoint's split, 100 frames by default; all variants of a
  window move together), not frames; plus the paired NR - ridge SROCC difference over the
  same resamples.
* ``windows.csv`` (with a study's ``windows.csv``): window-level SROCC with AP50 and AP of the
  predicted Q averaged over each of the study's windows (negated: lower Q = better), beside
  the full-reference Q (the checkpoint's target column, from its provenance) and PSNR of the
  same windows.
* ``ablations.csv``: activation, uniform and grid placement x 1, 2 and 4 patches
  (:data:`dctqa.nr.seeds.CONFIGS`), all nine predicted on the same frames (the test frames whose
  number is a multiple of ``ablation_step``; ``frame_set`` fingerprints them): SROCC with its
  interval, LCC, the paired SROCC difference to two activation patches, frames/s.
* ``seeds.csv``, ``placement.csv``, ``placement.json``: checkpoints of one split and fold with
  other seeds grouped (:mod:`dctqa.nr.seeds`): mean, SD, min and max over seeds of the frame
  metrics, NR - ridge paired on the same frames, coverage; the placement ablation over seeds
  and folds, and the winning placement by the mean unseen-fold SROCC.
* ``coverage.csv``: empirical coverage of the checkpoint's stored 90 % interval
  (:mod:`dctqa.nr.calibrate`) per video and pooled, on the held-out windows it was not
  calibrated on and (in-sample) on its calibration windows.
* ``paired.csv`` (with ``paired_with``, an earlier evaluation's ``frames.csv``): for every
  model name in both, SROCC of this and of that prediction on the same test frames and the
  paired difference (this - that) over the same window resamples (e.g. a model trained with
  extra content against the same split's model trained without).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..fileio import parse_number, read_csv_rows, strict_json
from ..values import is_int
from ..study.stats import resample_counts
from .data import INDICATORS, load_dataset, window_key
from .seeds import CONFIGS, REFERENCE, ablation_rows, choose_placement, group_checkpoints, placement_rows, seed_rows

#: The configuration of the main tables (metrics, windows, frames, coverage): two activation patches.
MAIN = REFERENCE
FRAME_DECIMALS = 5  # predictions in frames.csv (and in the paired comparison, so both sides have the same ties)
#: The placement ablation's configurations, all on one frame set (:mod:`dctqa.nr.seeds`).
ABLATIONS = CONFIGS

#: The files ``eval-nr`` writes into its output folder (``paired.csv`` only with ``paired_with``).
TABLES = ("metrics.csv", "windows.csv", "ablations.csv", "frames.csv", "paired.csv", "coverage.csv", "seeds.csv",
          "placement.csv")
SUMMARY = "nr_results.md"
PLACEMENT = "placement.json"


# ----------------------------------------------------------------- ridge baseline
def fit_ridge(rows: list[dict], alpha: float = 1.0) -> dict:
    """Ridge regression of log Q on the standardised indicators (fixed ``alpha``, no tuning)."""
    x = np.array([[r[k] for k in INDICATORS] for r in rows], dtype=np.float64)
    y = np.array([r["log_q"] for r in rows])
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"mu": mu, "sd": sd, "coef": coef, "intercept": float(y.mean())}


def predict_ridge(model: dict, rows: list[dict]) -> np.ndarray:
    """Predicted Q of ``rows`` by :func:`fit_ridge`'s model."""
    x = np.array([[r[k] for k in INDICATORS] for r in rows], dtype=np.float64)
    return np.exp((x - model["mu"]) / model["sd"] @ model["coef"] + model["intercept"])


# ----------------------------------------------------------------- statistics
def frame_metrics(q: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """LCC, SROCC, KRCC, RMSE, MAE of ``pred`` vs ``q`` with percentile intervals over ``counts``."""
    from ..study.stats import resample_statistics

    ones = np.ones((1, len(q)))
    est = resample_statistics(pred, q, ones)[:, 0]
    boot = resample_statistics(pred, q, counts)
    err2, err1 = (pred - q) ** 2, np.abs(pred - q)
    w = counts / counts.sum(1, keepdims=True)
    out = {}
    for i, k in enumerate(("lcc", "srocc", "krcc")):
        lo, hi = np.nanpercentile(boot[i], [2.5, 97.5])
        out[k] = (float(est[i]), float(lo), float(hi))
    for k, e, f in (("rmse", err2, np.sqrt), ("mae", err1, lambda v: v)):
        b = f(w @ e)
        lo, hi = np.percentile(b, [2.5, 97.5])
        out[k] = (float(f(e.mean())), float(lo), float(hi))
    return out


def paired_srocc_difference(q: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray
                            ) -> tuple[float, float, float]:
    """SROCC(a, q) - SROCC(b, q) with its interval over the same cluster resamples."""
    from ..study.stats import resample_statistics

    one = np.ones((1, len(q)))
    est = resample_statistics(a, q, one)[1, 0] - resample_statistics(b, q, one)[1, 0]
    d = resample_statistics(a, q, counts)[1] - resample_statistics(b, q, counts)[1]
    lo, hi = np.nanpercentile(d, [2.5, 97.5])
    return float(est), float(lo), float(hi)


# ----------------------------------------------------------------- prediction of the test frames
def predict_rows(model, rows: list[dict], configs: Sequence[tuple[str, int]], ablation_step: int,
                 seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """Predicted Q per (sampling, patches) config for ``rows`` (decoded on the fly; configs other
    than :data:`MAIN` only on frames that are multiples of ``ablation_step``), and seconds per config."""
    from ..io import iter_frames
    from ..progress import progress as progress_bar

    preds = {c: np.full(len(rows), np.nan) for c in configs}
    secs = {c: 0.0 for c in configs}
    by_path: dict[str, dict[int, int]] = {}
    for i, r in enumerate(rows):
        by_path.setdefault(r["path"], {})[r["frame"]] = i
    bar = progress_bar(len(rows), "eval", unit="frame", enabled=progress)
    for path, want in sorted(by_path.items()):
        step = math.gcd(*want) if len(want) > 1 else max(1, next(iter(want)))
        last = max(want)
        for j, frame in enumerate(iter_frames(path, stride=step)):
            n = j * step
            if n > last:
                break
            if n not in want:
                continue
            i = want[n]
            for c in configs:
                if c != MAIN and n % ablation_step:
                    continue
                t0 = time.perf_counter()
                preds[c][i] = float(model.predict(frame, sampling=c[0], patches=c[1], seed=seed + n)[0])
                secs[c] += time.perf_counter() - t0
            bar.update(1)
    bar.close()
    return preds, secs


# ----------------------------------------------------------------- one checkpoint
def evaluate_model(path: str | os.PathLike, rows: list[dict], frame_step: int, ablation_step: int, n_boot: int,
                   ablations: bool, progress: bool, variant_step: int = 1) -> dict:
    """Predictions, frame metrics and ablations of one checkpoint on its own held-out frames."""
    from .train import every_nth_variant, held_out_split

    model, ck, tc, train, test = held_out_split(path, rows, "eval-nr", "evaluate")
    keep = every_nth_variant(rows, variant_step)
    test = [r for r in test if r["frame"] % frame_step == 0 and (r["video"], r["variant"]) in keep]
    configs = list(ABLATIONS) if ablations else [MAIN]
    preds, secs = predict_rows(model, test, configs, ablation_step, progress=progress)
    ridge = predict_ridge(fit_ridge(train), test)
    from dataclasses import asdict

    from .seeds import group_name

    return {"name": group_name(tc.split, tc.fold), "window": tc.window, "split": tc.split, "fold": tc.fold,
            "seed": tc.seed, "train_config": asdict(tc), "ablation_step": ablation_step, "test": test,
            "pred": preds[MAIN], "ridge": ridge, "preds": preds, "secs": secs,
            "frames_done": {c: int(np.isfinite(p).sum()) for c, p in preds.items()}, "train_frames": len(train),
            "history": ck.get("history", []), "calibration": model.calibration, "target_std": model.prov.target_std}


def _metric_rows(res: dict, n_boot: int) -> list[dict]:
    test = res["test"]
    q = np.array([r["q"] for r in test])
    out = []
    scopes = [("pooled", np.ones(len(test), bool))] + [
        (v, np.array([r["video"] == v for r in test])) for v in sorted({r["video"] for r in test})]
    if len(scopes) == 2:
        scopes = scopes[1:]  # a single video: pooled is the same
    for scope, m in scopes:
        clusters = [window_key(r, res["window"]) for r, keep in zip(test, m) if keep]
        # whole content windows move together; labels as strings (np.unique of the (video, k) tuples)
        counts = resample_counts(len(clusters), n_boot, clusters=[str(c) for c in clusters])
        for predictor, p in (("nr", res["pred"]), ("ridge", res["ridge"])):
            met = frame_metrics(q[m], p[m], counts)
            row = {"model": res["name"], "seed": res["seed"], "split": res["split"], "scope": scope,
                   "predictor": predictor,
                   "frames": int(m.sum()), "windows": len(set(clusters))}
            for k, (e, lo, hi) in met.items():
                row.update({k: round(e, 4), f"{k}_lo": round(lo, 4), f"{k}_hi": round(hi, 4)})
            out.append(row)
        d = paired_srocc_difference(q[m], res["pred"][m], res["ridge"][m], counts)
        out[-2]["srocc_minus_ridge"], out[-2]["diff_lo"], out[-2]["diff_hi"] = (round(v, 4) for v in d)
    return out


def _read_windows(path: Path, targets: Sequence[str]) -> dict[tuple[str, str], list[tuple[int, int, dict]]]:
    """The windows of a study's ``windows.csv`` per (video, variant), as ``(window_start,
    window_end, row)`` sorted by start, with AP, PSNR and the full-reference columns
    ``targets`` (the checkpoints' target Q) as floats (NaN when empty)."""
    need = ("video", "variant", "window_start", "window_end", "ap", "ap50", "psnr", *dict.fromkeys(targets))
    wins: dict[tuple[str, str], list[tuple[int, int, dict]]] = {}
    for i, r in enumerate(read_csv_rows(path, "a study's windows.csv", required=need)):
        where = f"{str(path)!r} row {i + 2}"
        for k in need[4:]:
            r[k] = parse_number(r[k], float, empty=math.nan, where=f"{where}, column {k!r}")
        start, end = (parse_number(r[k], int, where=f"{where}, column {k!r}") for k in ("window_start", "window_end"))
        if end <= start:
            raise InputError(f"{where}: window_end {end} is not after window_start {start}")
        wins.setdefault((r["video"], r["variant"]), []).append((start, end, r))
    for v in wins.values():
        v.sort(key=lambda w: w[0])
    return wins


def _window_of(wins: dict[tuple[str, str], list[tuple[int, int, dict]]], video: str, variant: str,
               frame: int) -> tuple[int, int, dict] | None:
    """The study window (start, end, row) holding ``frame`` of (video, variant), or ``None``."""
    import bisect

    ws = wins.get((video, variant), [])
    i = bisect.bisect_right([w[0] for w in ws], frame) - 1
    return ws[i] if i >= 0 and frame < ws[i][1] else None


def _window_rows(res: dict, wins: dict | None, n_boot: int) -> list[dict]:
    """Window-level SROCC of AP50 and AP with the window-mean predicted Q, the ridge's, the
    full-reference Q (the checkpoint's target column, ``res["target"]``) and PSNR, on the
    study's own windows (each test frame pooled into the window of ``windows.csv`` holding it)."""
    from ..study.stats import correlations

    if wins is None:
        return []
    acc: dict[tuple, list] = {}
    rows: dict[tuple, dict] = {}
    for r, p, rd in zip(res["test"], res["pred"], res["ridge"]):
        w = _window_of(wins, r["video"], r["variant"], r["frame"])
        if w is not None:  # frames outside every window of the table: left out
            key = (r["video"], r["variant"], w[0])
            acc.setdefault(key, []).append((p, rd))
            rows[key] = w[2]
    target = res["target"]
    keys = [k for k in sorted(acc)  # windows without AP (no ground truth) or scores: left out
            if all(math.isfinite(rows[k][c]) for c in ("ap", "ap50", "psnr", target))]
    if len(keys) < 3:
        return []
    cols = {"dctqa_nr": -np.array([np.mean([a for a, _ in acc[k]]) for k in keys]),
            "ridge": -np.array([np.mean([b for _, b in acc[k]]) for k in keys]),
            "full_reference_q": -np.array([rows[k][target] for k in keys]),
            "psnr": np.array([rows[k]["psnr"] for k in keys])}
    out = []
    for y_name in ("ap50", "ap"):
        y = np.array([rows[k][y_name] for k in keys])
        for name, x in cols.items():
            c = correlations(x, y, n_boot=n_boot)
            out.append({"model": res["name"], "seed": res["seed"], "target": y_name, "score": name,
                        "windows": len(keys),
                        "srocc": round(c["srcc"].r, 4), "lo": round(c["srcc"].lo, 4), "hi": round(c["srcc"].hi, 4)})
    return out


def _coverage_rows(res: dict) -> list[dict]:
    """Empirical coverage of the checkpoint's stored 90 % interval on its test frames, per
    video and pooled, separately on the held-out windows it was not calibrated on (``part``
    ``held_out``: the honest figure) and on its calibration windows (``calibration``: in-sample);
    one row per scope with ``coverage`` empty for a checkpoint without a calibration."""
    from .conformal import interval

    test, cal = res["test"], res.get("calibration")
    q = np.array([r["q"] for r in test], dtype=np.float64)
    # .get: an evaluation cached before coverage existed (an uncalibrated checkpoint) has no target_std
    low, high = interval(res["pred"], cal, res.get("target_std", 1.0))
    inside = (low <= q) & (q <= high)
    keys = np.array([f"{v}:{k}" for v, k in (window_key(r, res["window"]) for r in test)])
    in_cal = np.isin(keys, list(cal["windows"]) if cal else [])
    videos = np.array([r["video"] for r in test])
    out = []
    for scope in ["pooled", *sorted(set(videos.tolist()))]:
        m = np.ones(len(test), bool) if scope == "pooled" else videos == scope
        parts = [("held_out", m & ~in_cal), ("calibration", m & in_cal)] if cal else [("uncalibrated", m)]
        for part, sel in parts:
            if not sel.any():
                continue
            out.append({"model": res["name"], "seed": res["seed"], "split": res["split"], "scope": scope, "part": part,
                        "frames": int(sel.sum()), "windows": len(set(keys[sel].tolist())),
                        "nominal": round(1 - cal["alpha"], 4) if cal else None,
                        "coverage": round(float(inside[sel].mean()), 4) if cal else None,
                        "half_width_log_q": round(cal["quantile_z"] * res["target_std"], 5) if cal else None,
                        "calibration_frames": cal["frames"] if cal else None})
    return out


def _paired_rows(res: dict, other: dict, other_csv: Path, n_boot: int) -> list[dict]:
    """SROCC of ``res``'s predictions and of ``other``'s (rows of an earlier ``frames.csv`` by
    (model, video, variant, frame)) on the same frames, and their paired difference."""
    test = res["test"]
    # an earlier evaluation with a seed column is matched seed by seed; one without (older) by model only
    got = [other.get((res["name"], res["seed"], r["video"], r["variant"], r["frame"]))
           or other.get((res["name"], None, r["video"], r["variant"], r["frame"])) for r in test]
    if not any(got):
        return []
    missing = sum(g is None for g in got)
    if missing:
        raise InputError(f"{other_csv}: model {res['name']!r} lacks {missing} of the {len(test)} frames evaluated "
                         "here; "
                         "evaluate both with the same --frame-step and --variant-step")
    q = np.array([r["q"] for r in test])
    if not np.allclose(q, [float(g["q"]) for g in got], rtol=1e-4):
        raise InputError(f"{other_csv}: model {res['name']!r} has other target Q on the same frames (other data?)")
    a, b = np.round(res["pred"], FRAME_DECIMALS), np.array([float(g["dctqa_nr"]) for g in got])
    clusters = [str(window_key(r, res["window"])) for r in test]
    counts = resample_counts(len(test), n_boot, clusters=clusters)
    this, that = frame_metrics(q, a, counts)["srocc"], frame_metrics(q, b, counts)["srocc"]
    d = paired_srocc_difference(q, a, b, counts)
    row = {"model": res["name"], "seed": res["seed"], "frames": len(test), "windows": len(set(clusters)),
           "train_frames": res["train_frames"]}
    for k, (e, lo, hi) in (("srocc", this), ("srocc_other", that), ("difference", d)):
        row.update({k: round(e, 4), f"{k}_lo": round(lo, 4), f"{k}_hi": round(hi, 4)})
    return [row]


def _read_frames_csv(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"frames file {str(path)!r} does not exist (an earlier eval-nr's frames.csv expected)")
    rows = read_csv_rows(path, "an earlier eval-nr's frames.csv",
                         required=("model", "video", "variant", "frame", "q", "dctqa_nr"))
    out = {}
    for i, r in enumerate(rows):
        where = f"{str(path)!r} row {i + 2}"
        for k in ("q", "dctqa_nr"):
            parse_number(r[k], float, where=f"{where}, column {k!r}")
        seed = parse_number(r["seed"], int, where=f"{where}, column 'seed'") if "seed" in r else None
        out[(r["model"], seed, r["video"], r["variant"],
             parse_number(r["frame"], int, where=f"{where}, column 'frame'"))] = r
    return out


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _evaluate_args(a: tuple) -> dict:
    return cached_evaluation(*a)


def cached_evaluation(path, rows, frame_step, ablation_step, n_boot, ablations, progress, variant_step, cache_root=None):
    """:func:`evaluate_model` through the study's stage cache (``cache_root``), keyed by the
    checkpoint's sha256, the data's labels and every setting, so a rerun with more checkpoints
    reuses the finished ones."""
    if cache_root is None:
        return evaluate_model(path, rows, frame_step, ablation_step, n_boot, ablations, progress, variant_step)
    from ..fileio import file_sha256
    from ..study.stages import StageCache

    key = {"stage": "nr_eval", "format": 2, "model": file_sha256(path), "rows": len(rows),
           "labels": hashlib.sha256(strict_json([[r["video"], r["variant"], r["frame"], r["q"]] for r in rows]
                                               ).encode()).hexdigest(),
           "settings": [frame_step, ablation_step, ablations, variant_step], "configs": [list(c) for c in ABLATIONS]}

    def compute() -> dict:
        res = evaluate_model(path, rows, frame_step, ablation_step, n_boot, ablations, progress, variant_step)
        out = dict(res, pred=res["pred"].tolist(), ridge=res["ridge"].tolist(),
                   preds=[[list(c), v.tolist()] for c, v in res["preds"].items()],
                   secs=[[list(c), v] for c, v in res["secs"].items()],
                   frames_done=[[list(c), v] for c, v in res["frames_done"].items()])
        return json.loads(strict_json(out, default=str))

    value, _ = StageCache(cache_root).document("nr_eval", key, compute)
    conv = lambda v: np.array([np.nan if x is None else x for x in v], dtype=np.float64)  # noqa: E731
    return dict(value, pred=conv(value["pred"]), ridge=conv(value["ridge"]),
                preds={tuple(c): conv(v) for c, v in value["preds"]}, secs={tuple(c): v for c, v in value["secs"]},
                frames_done={tuple(c): v for c, v in value["frames_done"]})


def evaluate(models: Sequence[str | os.PathLike], data: str | os.PathLike, out: str | os.PathLike, *,
             windows_csv: str | os.PathLike | None = None, frame_step: int = 16, ablation_step: int = 64,
             n_boot: int = 500, ablations: bool = True, progress: bool = False, jobs: int = 1,
             variant_step: int = 1, paired_with: str | os.PathLike | None = None) -> dict[str, list[dict]]:
    """Evaluate every checkpoint (``jobs`` worker processes, one thread each, when > 1); write
    the tables (module docstring), ``placement.json`` and ``nr_results.md``. Checkpoints of one
    split and fold that differ only in the seed are grouped (:func:`dctqa.nr.seeds.group_checkpoints`).
    paired_with: an earlier evaluation's ``frames.csv`` to compare with (``paired.csv``)."""
    from ..fileio import OutputSet
    from ..log import csv_text
    from .summary import summary_text

    if not all(is_int(v) and v >= 1 for v in (frame_step, ablation_step, jobs, variant_step)) or n_boot < 10:
        raise InputError("frame_step, ablation_step, jobs and variant_step must be integers >= 1 and n_boot >= 10")
    if not models:
        raise InputError("no checkpoints given; eval-nr needs at least one `dctqa train-nr` checkpoint")
    if windows_csv is not None and not Path(windows_csv).is_file():
        raise InputError(f"windows file {str(windows_csv)!r} does not exist")
    other = _read_frames_csv(Path(paired_with)) if paired_with is not None else None
    rows, meta = load_dataset(data)
    group_checkpoints(models)  # two of one split, fold and seed, or a group with mixed settings: refused now
    targets = _checkpoint_targets(models, meta["target"])
    # read before any model runs, so that a bad file fails first
    wins = _read_windows(Path(windows_csv), list(targets.values())) if windows_csv is not None else None
    inputs = [*models, windows_csv, paired_with, Path(data) / "labels.csv", Path(data) / "dataset.json"]
    with OutputSet(inputs=inputs) as outputs:  # every table or none; never an input
        out = outputs.make_dir(out, keep_work=True)  # keeps finished evaluations in out/cache
        for name in (*TABLES, SUMMARY, PLACEMENT):
            outputs.add(out / name)
        tables = _evaluate_tables(models, rows, out, frame_step, ablation_step, n_boot, ablations, progress,
                                  jobs, variant_step, wins, other, paired_with, targets)
        for name, t in tables.items():
            if t:
                outputs.write_text(out / f"{name}.csv", csv_text(t))
        choice = choose_placement(tables["placement"])
        outputs.write_text(out / PLACEMENT, strict_json(choice, indent=2) + "\n")
        outputs.write_text(out / SUMMARY, summary_text(tables, choice))
    return tables


def _checkpoint_targets(models: Sequence[str | os.PathLike], data_target: str) -> dict[str, str]:
    """Checkpoint path -> its target column (from its provenance), each checked against the
    data's (``dataset.json``'s ``target``): a model is evaluated on the Q it was trained for."""
    from .model import read_provenance

    targets = {}
    for path in models:
        targets[str(path)] = read_provenance(path).target
        if targets[str(path)] != data_target:
            raise InputError(f"{path} was trained on targets {targets[str(path)]!r}, this data holds "
                             f"{data_target!r}; evaluate it on data made with its backbone")
    return targets


def _evaluate_tables(models, rows, out: Path, frame_step, ablation_step, n_boot, ablations, progress, jobs,
                     variant_step, wins, other, paired_with, targets: dict[str, str]) -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {"metrics": [], "windows": [], "ablations": [], "frames": [], "paired": [],
                                     "coverage": [], "seeds": [], "placement": []}
    args = [(p, rows, frame_step, ablation_step, n_boot, ablations, progress and jobs == 1, variant_step,
             out / "cache") for p in models]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread) as ex:
            results = list(ex.map(_evaluate_args, args))
    else:
        results = [cached_evaluation(*a) for a in args]
    for path, res in zip(models, results):
        res["target"] = targets[str(path)]
        tables["metrics"] += _metric_rows(res, n_boot)
        tables["windows"] += _window_rows(res, wins, n_boot)
        tables["ablations"] += ablation_rows(res, n_boot) if ablations else []
        tables["coverage"] += _coverage_rows(res)
        if other is not None:
            tables["paired"] += _paired_rows(res, other, Path(paired_with), n_boot)
        tables["frames"] += [{"model": res["name"], "seed": res["seed"], "video": r["video"], "variant": r["variant"],
                              "frame": r["frame"],
                              "q": r["q"], "dctqa_nr": round(float(p), FRAME_DECIMALS),
                              "ridge": round(float(b), FRAME_DECIMALS)}
                             for r, p, b in zip(res["test"], res["pred"], res["ridge"])]
    tables["seeds"] = seed_rows(results, tables["coverage"], n_boot)
    tables["placement"] = placement_rows(results, n_boot) if ablations else []
    if other is not None and not tables["paired"]:
        raise InputError(f"none of the models evaluated here ({', '.join(r['name'] for r in results)}) is in "
                         f"{paired_with}")
    return tables
