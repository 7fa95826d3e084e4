"""Several training seeds of one split, and the placement ablation on one frame set (issue 22).

Checkpoints are grouped by the split and fold recorded in their training settings
(``train_config`` in the checkpoint, never the file name): one group per (split, fold), one
member per seed. A group whose members differ in any setting but the seed (and the
DataLoader worker count) is refused, as are two members with the same seed.

Every statistic is the frame-level one of :mod:`dctqa.nr.evaluate`: SROCC, LCC, KRCC of
predicted vs true Q, RMSE and MAE in Q units. Over seeds: mean, sample SD (``None`` with one
seed), min and max. Intervals are 95 % percentile intervals over resamples of whole content
windows (``resample_counts`` with the window labels, seed 0, so every seed of a fold, whose
test frames are the same, sees the same resamples): the interval of a mean over seeds is the
percentile interval of that mean over the same resamples; the unseen-fold mean averages the
folds' resamples (each fold is other content, so this is a bootstrap stratified by fold).

The placement ablation predicts each configuration of :data:`CONFIGS` on the same frames (a
checkpoint's test frames whose number is a multiple of ``ablation_step``); each is compared
with :data:`REFERENCE` (the paper's two activation patches) on those frames, paired over the
same resamples. :func:`choose_placement` picks the configuration with the highest mean
unseen-fold SROCC over seeds.
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..fileio import strict_json
from ..study.stats import resample_counts, resample_statistics
from .data import window_key

#: Patch placements, cheapest first (the tie-break order of :func:`choose_placement`).
PLACEMENTS = ("grid", "uniform", "activation")
PATCH_COUNTS = (1, 2, 4)
#: The ablation's (sampling, patches) configurations, all predicted on one frame set.
CONFIGS = tuple((s, p) for s in ("activation", "uniform", "grid") for p in PATCH_COUNTS)
#: What every configuration is compared with: the paper's placement, two activation patches.
REFERENCE = ("activation", 2)
METRICS = ("srocc", "lcc", "krcc", "rmse", "mae")
#: The model name of the rows that average the unseen (leave-one-video-out) folds.
UNSEEN_MEAN = "unseen-mean"
#: Settings that may differ between the seeds of one group.
FREE_SETTINGS = ("seed", "workers")
#: SROCC equal to this many decimals is a tie (broken toward fewer patches, then cheaper placement).
TIE_DECIMALS = 3

_SPREAD = [f"{m}{s}" for m in METRICS for s in ("", "_sd", "_min", "_max")]
SEED_COLUMNS = ("model", "split", "fold", "seed", "n_seeds", "folds", "frames", "windows", "frame_set", "same_frames",
                "epochs_done", "epochs", *_SPREAD, "ridge_srocc", "ridge_srocc_sd", "ridge_identical",
                "nr_minus_ridge", "nr_minus_ridge_lo", "nr_minus_ridge_hi", "nr_minus_ridge_min",
                "nr_minus_ridge_max", "worst_seed", "worst_srocc", "coverage", "coverage_min", "coverage_max")
PLACEMENT_COLUMNS = ("model", "split", "fold", "sampling", "patches", "n_seeds", "folds", "frames", "frame_set",
                     "srocc", "srocc_sd", "srocc_min", "srocc_max", "minus_reference", "minus_reference_lo",
                     "minus_reference_hi", "frames_per_s")


# ----------------------------------------------------------------- grouping
def group_name(split: str, fold: str | None) -> str:
    """The model name of a (split, fold): ``seen``, ``random``, ``unseen-vtest``."""
    return split + (f"-{fold}" if fold else "")


def training_settings(path: str | os.PathLike) -> dict:
    """The training settings stored in checkpoint ``path`` (``train_config``: split, fold, seed, ...)."""
    from .model import CheckpointError, read_checkpoint

    tc = read_checkpoint(path).get("train_config")
    if not isinstance(tc, dict) or not isinstance(tc.get("split"), str) or not isinstance(tc.get("seed"), int):
        raise CheckpointError(f"{str(path)!r} holds no training settings (split, fold, seed); eval-nr needs a "
                              "checkpoint written by `dctqa train-nr`")
    return tc


def group_checkpoints(paths: Iterable[str | os.PathLike]) -> dict[str, list[tuple[int, str]]]:
    """``{group name: [(seed, path), ...]}`` sorted by name and seed, from each checkpoint's
    stored split, fold and seed. :class:`InputError` for two checkpoints of one group with the
    same seed, or differing in a setting other than :data:`FREE_SETTINGS`."""
    groups: dict[str, list[tuple[int, str]]] = {}
    first: dict[str, tuple[str, dict]] = {}
    for path in paths:
        tc = training_settings(path)
        name = group_name(tc["split"], tc.get("fold"))
        rest = {k: v for k, v in tc.items() if k not in FREE_SETTINGS}
        other, other_rest = first.setdefault(name, (str(path), rest))
        if rest != other_rest:
            diff = sorted(k for k in {*rest, *other_rest} if rest.get(k) != other_rest.get(k))
            raise InputError(f"{path} and {other} are both {name} but were trained with other settings "
                             f"({', '.join(diff)}), not only another seed; evaluate them in separate runs "
                             "(--paired-with compares two runs)")
        twin = [p for s, p in groups.get(name, []) if s == tc["seed"]]
        if twin:
            raise InputError(f"{path} and {twin[0]} are both {name} with seed {tc['seed']}; give each seed once "
                             "(evaluate the other in a separate run)")
        groups.setdefault(name, []).append((tc["seed"], str(path)))
    return {k: sorted(v) for k, v in sorted(groups.items())}


# ----------------------------------------------------------------- statistics
def frame_set(rows: Sequence[dict]) -> str:
    """A short fingerprint (16 hex digits) of the (video, variant, frame) set of ``rows``."""
    keys = sorted([r["video"], r["variant"], int(r["frame"])] for r in rows)
    return hashlib.sha256(strict_json(keys).encode()).hexdigest()[:16]


def window_counts(rows: Sequence[dict], window: int, n_boot: int) -> np.ndarray:
    """(n_boot, len(rows)) resample counts of whole content windows (seed 0)."""
    return resample_counts(len(rows), n_boot, clusters=[str(window_key(r, window)) for r in rows])


def point_metrics(q: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """SROCC, LCC, KRCC, RMSE and MAE (Q units) of ``pred`` against ``q`` (both (n,))."""
    lcc, srocc, krcc = resample_statistics(pred, q, np.ones((1, len(q))))[:, 0]
    return {"srocc": float(srocc), "lcc": float(lcc), "krcc": float(krcc),
            "rmse": float(np.sqrt(np.mean((pred - q) ** 2))), "mae": float(np.mean(np.abs(pred - q)))}


def srocc_resamples(q: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) SROCC of ``pred`` vs ``q`` in each resample of ``counts`` (NaN where constant)."""
    return resample_statistics(pred, q, counts)[1]


def interval(boot: np.ndarray | None) -> tuple[float | None, float | None]:
    """95 % percentile interval of ``boot`` (NaN resamples left out); ``(None, None)`` if none."""
    if boot is None or not np.isfinite(boot).any():
        return None, None
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


def spread(values: Sequence[float], name: str) -> dict:
    """``{name: mean, name_sd: sample SD (None for one value), name_min, name_max}``."""
    v = np.asarray(values, dtype=np.float64)
    return {name: float(v.mean()), f"{name}_sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            f"{name}_min": float(v.min()), f"{name}_max": float(v.max())}


def _rounded(row: dict, columns: Sequence[str], digits: int = 4) -> dict:
    """``row`` with exactly ``columns`` (missing: ``None``), floats rounded."""
    return {k: round(row[k], digits) if isinstance(row.get(k), float) else row.get(k) for k in columns}


def _by_group(results: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for res in results:
        groups.setdefault(res["name"], []).append(res)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in sorted(groups.items())}


def _q(res: dict) -> np.ndarray:
    return np.array([r["q"] for r in res["test"]], dtype=np.float64)


# ----------------------------------------------------------------- seeds.csv
def _seed_row(res: dict, counts: np.ndarray, coverage: dict) -> tuple[dict, np.ndarray]:
    """One checkpoint's row of seeds.csv and its (B,) resampled NR - ridge SROCC difference."""
    q = _q(res)
    met = point_metrics(q, res["pred"])
    ridge = point_metrics(q, res["ridge"])["srocc"]
    boot = srocc_resamples(q, res["pred"], counts) - srocc_resamples(q, res["ridge"], counts)
    lo, hi = interval(boot)
    cfg = res.get("train_config") or {}
    row = {"model": res["name"], "split": res["split"], "fold": res["fold"], "seed": res["seed"], "n_seeds": 1,
           "frames": len(q), "windows": len({window_key(r, res["window"]) for r in res["test"]}),
           "frame_set": frame_set(res["test"]), "epochs_done": len(res.get("history") or []),
           "epochs": cfg.get("epochs"), **met, "ridge_srocc": ridge, "nr_minus_ridge": met["srocc"] - ridge,
           "nr_minus_ridge_lo": lo, "nr_minus_ridge_hi": hi,
           "coverage": coverage.get((res["name"], res["seed"]))}
    return row, boot


def _over_seeds(name: str, rows: list[dict], boots: list[np.ndarray] | None, ridges: list[np.ndarray]) -> dict:
    """The aggregate row of one group's per-seed rows (``boots``: their resampled differences,
    ``None`` when the seeds' test frames differ)."""
    out = {"model": name, "split": rows[0]["split"], "fold": rows[0]["fold"], "seed": "all", "n_seeds": len(rows),
           "same_frames": len({r["frame_set"] for r in rows}) == 1,
           "ridge_identical": all(np.array_equal(ridges[0], r) for r in ridges[1:])}
    for k in ("frames", "windows", "frame_set"):
        out[k] = rows[0][k] if out["same_frames"] else None
    out["epochs_done"] = min(r["epochs_done"] for r in rows)
    out["epochs"] = rows[0]["epochs"]
    for m in METRICS:
        out.update(spread([r[m] for r in rows], m))
    out.update({k: v for k, v in spread([r["ridge_srocc"] for r in rows], "ridge_srocc").items()
                if k in ("ridge_srocc", "ridge_srocc_sd")})
    d = spread([r["nr_minus_ridge"] for r in rows], "nr_minus_ridge")
    out.update({k: d[k] for k in ("nr_minus_ridge", "nr_minus_ridge_min", "nr_minus_ridge_max")})
    mean_boot = np.mean(boots, axis=0) if boots is not None and out["same_frames"] else None
    out["nr_minus_ridge_lo"], out["nr_minus_ridge_hi"] = interval(mean_boot)
    worst = min(rows, key=lambda r: r["srocc"])
    out["worst_seed"], out["worst_srocc"] = worst["seed"], worst["srocc"]
    cov = [r["coverage"] for r in rows if r["coverage"] is not None]
    if len(cov) == len(rows):
        out.update(spread(cov, "coverage"))
    out["_boot"] = mean_boot
    return out


def _unseen_mean(per_seed: list[dict], over: list[dict], metrics: Sequence[str], diff: str) -> list[dict]:
    """Rows averaging the unseen folds: one per seed every fold has (the mean over folds at that
    seed) and the aggregate (mean over folds of each fold's mean over seeds; SD, min and max
    over the per-seed fold means; ``diff``'s interval from the folds' resamples averaged)."""
    folds = [r for r in over if r["split"] == "unseen"]
    if not folds:
        return []
    by = {(r["model"], r["seed"]): r for r in per_seed if r["split"] == "unseen"}
    common = sorted(set.intersection(*({s for (m, s) in by if m == f["model"]} for f in folds)))
    rows = []
    for s in common:
        at = [by[(f["model"], s)] for f in folds]
        rows.append({"model": UNSEEN_MEAN, "split": "unseen", "seed": s, "n_seeds": 1, "folds": len(folds),
                     **{k: float(np.mean([a[k] for a in at])) for k in (*metrics, diff)
                        if all(a.get(k) is not None for a in at)}})
    agg = {"model": UNSEEN_MEAN, "split": "unseen", "seed": "all", "n_seeds": len(common), "folds": len(folds)}
    for m in metrics:
        if any(f.get(m) is None for f in folds):
            continue
        agg[m] = float(np.mean([f[m] for f in folds]))
        if rows and all(m in r for r in rows):
            agg.update({k: v for k, v in spread([r[m] for r in rows], m).items() if k != m})
    agg[diff] = float(np.mean([f[diff] for f in folds]))
    boots = [f.get("_boot") for f in folds]
    agg[f"{diff}_lo"], agg[f"{diff}_hi"] = interval(np.mean(boots, axis=0) if all(b is not None for b in boots)
                                                    else None)
    return rows + [agg]


def seed_rows(results: Sequence[dict], coverage_rows: Sequence[dict], n_boot: int) -> list[dict]:
    """seeds.csv: per (split, fold) group one row per seed and one over its seeds (``seed`` =
    ``"all"``), then the same for the mean over the unseen folds (model :data:`UNSEEN_MEAN`).
    coverage_rows: ``coverage.csv``'s rows (the pooled held-out coverage of each checkpoint)."""
    coverage = {(r["model"], r["seed"]): r["coverage"] for r in coverage_rows
                if r["scope"] == "pooled" and r["part"] == "held_out"}
    per_seed, over = [], []
    for name, members in _by_group(results).items():
        rows, boots = [], []
        for res in members:
            counts = window_counts(res["test"], res["window"], n_boot)
            row, boot = _seed_row(res, counts, coverage)
            rows.append(row)
            boots.append(boot)
        per_seed += rows
        over.append(_over_seeds(name, rows, boots, [m["ridge"] for m in members]))
    mean = _unseen_mean(per_seed, over, (*METRICS, "ridge_srocc"), "nr_minus_ridge")
    if mean:  # the worst single checkpoint of all the unseen folds
        worst = min((r for r in per_seed if r["split"] == "unseen"), key=lambda r: r["srocc"])
        mean[-1]["worst_seed"], mean[-1]["worst_srocc"] = f"{worst['model']} seed {worst['seed']}", worst["srocc"]
    out = []
    for name in dict.fromkeys(r["model"] for r in over):
        out += [r for r in per_seed if r["model"] == name] + [r for r in over if r["model"] == name]
    return [_rounded(r, SEED_COLUMNS) for r in out + mean]


# ----------------------------------------------------------------- placement ablation on one frame set
def ablation_frames(res: dict) -> np.ndarray:
    """(n,) bool: the test frames every configuration was predicted on (frame number a
    multiple of ``res["ablation_step"]``); :class:`InputError` if a configuration lacks one."""
    mask = np.array([r["frame"] % res["ablation_step"] == 0 for r in res["test"]], dtype=bool)
    for c, p in res["preds"].items():
        if np.isnan(np.asarray(p)[mask]).any():
            raise InputError(f"{res['name']} seed {res['seed']}: configuration {c[0]}-{c[1]} lacks predictions on "
                             "the ablation frames (a damaged evaluation cache? delete the output's cache folder)")
    return mask


def _ablation_boot(res: dict, n_boot: int) -> dict:
    """Per configuration: point SROCC, LCC and the (B,) resampled SROCC on the ablation frames."""
    if "_ablation" not in res:
        mask = ablation_frames(res)
        test = [r for r, keep in zip(res["test"], mask) if keep]
        q = _q(res)[mask]
        counts = window_counts(test, res["window"], n_boot)
        per = {}
        for c, p in res["preds"].items():
            p = np.asarray(p)[mask]
            met = point_metrics(q, p)
            per[tuple(c)] = {"srocc": met["srocc"], "lcc": met["lcc"], "boot": srocc_resamples(q, p, counts)}
        res["_ablation"] = {"test": test, "per": per, "frame_set": frame_set(test),
                            "windows": len({window_key(r, res["window"]) for r in test})}
    return res["_ablation"]


def ablation_rows(res: dict, n_boot: int) -> list[dict]:
    """ablations.csv rows of one checkpoint: each configuration on the one ablation frame set,
    its SROCC (with interval), LCC, SROCC - :data:`REFERENCE`'s (paired) and frames/s."""
    ab = _ablation_boot(res, n_boot)
    if len(ab["test"]) < 3:
        return []
    ref = ab["per"].get(REFERENCE)
    out = []
    for c, v in ab["per"].items():
        lo, hi = interval(v["boot"])
        d = (v["srocc"] - ref["srocc"], *interval(v["boot"] - ref["boot"])) if ref else (None, None, None)
        secs = res["secs"][c]
        out.append({"model": res["name"], "split": res["split"], "fold": res["fold"], "seed": res["seed"],
                    "sampling": c[0], "patches": c[1], "frames": len(ab["test"]), "windows": ab["windows"],
                    "frame_set": ab["frame_set"], "srocc": round(v["srocc"], 4),
                    "srocc_lo": None if lo is None else round(lo, 4), "srocc_hi": None if hi is None else round(hi, 4),
                    "lcc": round(v["lcc"], 4),
                    **{k: None if x is None else round(x, 4) for k, x in zip(
                        ("minus_reference", "minus_reference_lo", "minus_reference_hi"), d)},
                    # frames predicted with this configuration (the reference's also off the ablation frames)
                    "frames_per_s": round(res["frames_done"][c] / secs, 2) if secs > 0 else None})
    return out


def _placement_group(name: str, members: list[dict], c: tuple[str, int], n_boot: int) -> dict:
    abs_ = [_ablation_boot(m, n_boot) for m in members]
    s = [a["per"][c]["srocc"] for a in abs_]
    d = [a["per"][c]["srocc"] - a["per"][REFERENCE]["srocc"] for a in abs_]
    same = len({a["frame_set"] for a in abs_}) == 1
    boot = np.mean([a["per"][c]["boot"] - a["per"][REFERENCE]["boot"] for a in abs_], axis=0) if same else None
    lo, hi = interval(boot)
    fps = [m["frames_done"][c] / m["secs"][c] for m in members if m["secs"][c] > 0]
    return {"model": name, "split": members[0]["split"], "fold": members[0]["fold"], "sampling": c[0],
            "patches": c[1], "n_seeds": len(members), "frames": len(abs_[0]["test"]) if same else None,
            "frame_set": abs_[0]["frame_set"] if same else None, **spread(s, "srocc"),
            "minus_reference": float(np.mean(d)), "minus_reference_lo": lo, "minus_reference_hi": hi,
            "frames_per_s": float(np.mean(fps)) if fps else None, "_boot": boot, "_per_seed": dict(
                zip((m["seed"] for m in members), s))}


def placement_rows(results: Sequence[dict], n_boot: int) -> list[dict]:
    """placement.csv: per (split, fold) group and configuration the mean over seeds (SROCC mean,
    SD, min, max; SROCC - :data:`REFERENCE`'s, paired, with its interval), then per
    configuration the mean over the unseen folds (model :data:`UNSEEN_MEAN`)."""
    groups = {k: v for k, v in _by_group(results).items()
              if all(len(_ablation_boot(m, n_boot)["test"]) >= 3 and REFERENCE in m["preds"] for m in v)}
    out, mean = [], []
    for c in CONFIGS:
        rows = [_placement_group(name, members, c, n_boot) for name, members in groups.items()
                if all(c in m["preds"] for m in members)]
        out += rows
        per_seed = [{"model": r["model"], "split": r["split"], "seed": s, "srocc": v}
                    for r in rows for s, v in r["_per_seed"].items()]
        m = _unseen_mean(per_seed, rows, ("srocc", "frames_per_s"), "minus_reference")
        if m:
            mean.append(dict(m[-1], sampling=c[0], patches=c[1]))
    out.sort(key=lambda r: (r["model"], CONFIGS.index((r["sampling"], r["patches"]))))
    return [_rounded(r, PLACEMENT_COLUMNS) for r in out + mean]


def choose_placement(rows: Sequence[dict]) -> dict:
    """The winner of :func:`placement_rows`' unseen-fold means: highest mean SROCC over seeds
    (equal to :data:`TIE_DECIMALS` decimals: fewer patches, then the cheaper placement of
    :data:`PLACEMENTS`), with the reference and every candidate; ``sampling``/``patches`` are
    ``None`` (and ``reason`` says why) without unseen folds."""
    cand = [r for r in rows if r["model"] == UNSEEN_MEAN and r["srocc"] is not None]
    base = {"criterion": "mean over the unseen (leave-one-video-out) folds of each fold's mean frame SROCC over "
                         "seeds, all configurations on one frame set per checkpoint",
            "tie_rule": f"SROCC equal to {TIE_DECIMALS} decimals: fewer patches, then cheaper placement "
                        f"({' < '.join(PLACEMENTS)})"}
    if not cand:
        return {"sampling": None, "patches": None, **base,
                "reason": "no unseen-split checkpoint was evaluated with the placement ablation"}
    best = max(cand, key=lambda r: (round(r["srocc"], TIE_DECIMALS), -r["patches"], -PLACEMENTS.index(r["sampling"])))
    ref = next((r for r in cand if (r["sampling"], r["patches"]) == REFERENCE), None)
    keys = ("sampling", "patches", "srocc", "srocc_sd", "minus_reference", "minus_reference_lo",
            "minus_reference_hi", "frames_per_s")
    return {"sampling": best["sampling"], "patches": best["patches"], "srocc": best["srocc"],
            "folds": best["folds"], "seeds": best["n_seeds"], **base,
            "reference": {k: ref[k] for k in keys} if ref else None,
            "candidates": [{k: r[k] for k in keys} for r in cand]}
