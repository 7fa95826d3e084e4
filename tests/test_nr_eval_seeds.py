"""eval-nr over several seeds (issue 22): checkpoints grouped by the split, fold and seed stored
in them, seeds.csv and the targets, the placement ablation on one frame set, strict outputs."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from dctqa.errors import InputError
from dctqa.nr.seeds import (CONFIGS, REFERENCE, UNSEEN_MEAN, choose_placement, frame_set, group_checkpoints)
from dctqa.nr.summary import placement_sentence, seed_targets, summary_text
from dctqa.nr.train import train
from tests.test_nr import _tiny_config, tiny_data  # noqa: F401  (tiny_data: a fixture)


def _variant(src, dst, seed: int, noise: float = 0.02, **settings) -> str:
    """A copy of checkpoint ``src`` claiming ``seed`` (and ``settings``) in its stored training
    settings, its weights perturbed so that its predictions differ (a stand-in for another seed)."""
    ck = torch.load(src, map_location="cpu", weights_only=True)
    ck["train_config"] = dict(ck["train_config"], seed=seed, **settings)
    g = torch.Generator().manual_seed(seed)
    ck["state_dict"] = {k: v + noise * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                        for k, v in ck["state_dict"].items()}
    torch.save(ck, dst)
    return str(dst)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine, tiny convolutions on more threads only wait."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def fold_models(tiny_data, tmp_path_factory):  # noqa: F811
    """Unseen folds alpha and beta, seeds 0 and 1; the file names deliberately lie about both."""
    d = tmp_path_factory.mktemp("folds")
    out = {}
    for fold in ("alpha", "beta"):
        base = d / f"base-{fold}.pt"
        train(tiny_data, base, _tiny_config(split="unseen", fold=fold, epochs=1))
        other = "beta" if fold == "alpha" else "alpha"
        out[(fold, 0)] = _variant(base, d / f"unseen-{other}-s7.pt", 0, noise=0.0)
        out[(fold, 1)] = _variant(base, d / f"s0-unseen-{other}.pt", 1)
    return out


def test_grouping_reads_the_checkpoint_settings_not_the_names(fold_models, tmp_path) -> None:
    groups = group_checkpoints(list(fold_models.values()))
    assert groups == {f"unseen-{f}": [(0, fold_models[(f, 0)]), (1, fold_models[(f, 1)])] for f in ("alpha", "beta")}
    twin = _variant(fold_models[("alpha", 1)], tmp_path / "twin.pt", 1)
    with pytest.raises(InputError, match="both unseen-alpha with seed 1"):
        group_checkpoints([fold_models[("alpha", 1)], twin])
    other = _variant(fold_models[("alpha", 1)], tmp_path / "lr.pt", 2, lr=5e-4)
    with pytest.raises(InputError, match=r"other settings \(lr\)"):
        group_checkpoints([fold_models[("alpha", 0)], other])


def test_cli_refuses_a_seed_given_twice_before_any_work(fold_models, tiny_data, tmp_path, capsys) -> None:  # noqa: F811
    from dctqa.cli import main

    twin = _variant(fold_models[("beta", 0)], tmp_path / "twin.pt", 0)
    rc = main(["eval-nr", fold_models[("beta", 0)], twin, "--data", str(tiny_data), "--out", str(tmp_path / "o")])
    assert rc == 2 and "both unseen-beta with seed 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _csv(path) -> list[dict]:
    """The rows of a CSV output, checked strict: no NaN or infinity passed off as a number."""
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert rows and not [v for r in rows for v in r.values() if v.strip().lower().lstrip("+-") in ("nan", "inf",
                                                                                                   "infinity")]
    return rows


@pytest.fixture(scope="module")
def evaluated(fold_models, tiny_data, tmp_path_factory):  # noqa: F811
    from dctqa.nr.evaluate import evaluate

    out = tmp_path_factory.mktemp("ev") / "ev"
    tables = evaluate(list(fold_models.values()), tiny_data, out, frame_step=2, ablation_step=4, n_boot=20)
    return out, tables


def test_seeds_table_aggregates_the_seeds_on_the_same_frames(evaluated) -> None:
    out, tables = evaluated
    rows = _csv(out / "seeds.csv")
    assert [(r["model"], r["seed"]) for r in rows] == [
        ("unseen-alpha", "0"), ("unseen-alpha", "1"), ("unseen-alpha", "all"),
        ("unseen-beta", "0"), ("unseen-beta", "1"), ("unseen-beta", "all"),
        (UNSEEN_MEAN, "0"), (UNSEEN_MEAN, "1"), (UNSEEN_MEAN, "all")]
    by = {(r["model"], r["seed"]): r for r in tables["seeds"]}
    for f in ("alpha", "beta"):
        a, b, agg = by[(f"unseen-{f}", 0)], by[(f"unseen-{f}", 1)], by[(f"unseen-{f}", "all")]
        assert agg["n_seeds"] == 2 and agg["same_frames"] and agg["ridge_identical"]
        assert a["frame_set"] == b["frame_set"] == agg["frame_set"] and a["srocc"] != b["srocc"]
        assert agg["srocc"] == pytest.approx((a["srocc"] + b["srocc"]) / 2, abs=1e-4)
        assert agg["srocc_min"] == min(a["srocc"], b["srocc"]) and agg["srocc_sd"] > 0
        assert a["ridge_srocc"] == b["ridge_srocc"]  # ridge: deterministic given the same training frames
        assert a["nr_minus_ridge"] == pytest.approx(a["srocc"] - a["ridge_srocc"], abs=2e-4)
        assert agg["nr_minus_ridge_lo"] <= agg["nr_minus_ridge"] <= agg["nr_minus_ridge_hi"]
    mean = by[(UNSEEN_MEAN, "all")]
    assert mean["folds"] == 2 and mean["n_seeds"] == 2
    assert mean["srocc"] == pytest.approx((by[("unseen-alpha", "all")]["srocc"] + by[("unseen-beta", "all")]["srocc"])
                                          / 2, abs=1e-4)
    metric_seeds = {(r["model"], r["seed"]) for r in tables["metrics"]}
    assert metric_seeds == {(f"unseen-{f}", s) for f in ("alpha", "beta") for s in (0, 1)}
    text = (out / "nr_results.md").read_text()
    assert "## Over seeds" in text and "Beside the paper's Tables 3 and 4" in text and "0.673" in text
    assert "leaky" in text and "not met" in text  # uncalibrated checkpoints: the coverage target is not met


def test_placement_is_paired_on_one_frame_set(evaluated, tiny_data) -> None:  # noqa: F811
    from dctqa.nr.data import load_dataset, split_rows

    out, tables = evaluated
    rows = _csv(out / "ablations.csv")
    assert len(rows) == 4 * len(CONFIGS)
    rows_all, _ = load_dataset(tiny_data)
    for fold in ("alpha", "beta"):
        _, test = split_rows(rows_all, "unseen", fold=fold, window=10, gap=1)
        expected = frame_set([r for r in test if r["frame"] % 4 == 0])
        mine = [r for r in rows if r["model"] == f"unseen-{fold}"]
        assert {r["frame_set"] for r in mine} == {expected}  # all 9 configs x both seeds: the same frames
        assert {(r["sampling"], int(r["patches"])) for r in mine} == set(CONFIGS)
        ref = [r for r in mine if (r["sampling"], int(r["patches"])) == REFERENCE]
        assert all(float(r["minus_reference"]) == 0.0 for r in ref)
    place = _csv(out / "placement.csv")
    mean = [r for r in tables["placement"] if r["model"] == UNSEEN_MEAN]
    assert len(mean) == len(CONFIGS) and all(r["n_seeds"] == 2 and r["folds"] == 2 for r in mean)
    assert len(place) == 3 * len(CONFIGS)
    choice = json.loads((out / "placement.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    best = max(round(r["srocc"], 3) for r in mean)
    won = [r for r in mean if (r["sampling"], r["patches"]) == (choice["sampling"], choice["patches"])]
    assert won and round(won[0]["srocc"], 3) == best and choice["seeds"] == 2
    assert "Winner:" in (out / "nr_results.md").read_text()


def _seed_rows(folds: dict[str, list[float]], coverage: float | None = 0.9, mean_seeds: int | None = None) -> list[dict]:
    """seeds.csv-like rows of unseen folds with the given per-seed SROCC."""
    rows = []
    for f, vals in folds.items():
        for s, v in enumerate(vals):
            rows.append({"model": f"unseen-{f}", "split": "unseen", "fold": f, "seed": s, "n_seeds": 1, "srocc": v,
                         "lcc": v, "krcc": v * 0.8, "rmse": 1.0, "mae": 0.8, "coverage": coverage})
        sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        rows.append({"model": f"unseen-{f}", "split": "unseen", "fold": f, "seed": "all", "n_seeds": len(vals),
                     "srocc": float(np.mean(vals)), "srocc_sd": sd, "srocc_min": min(vals), "srocc_max": max(vals),
                     "nr_minus_ridge": 0.1, "nr_minus_ridge_lo": 0.0, "nr_minus_ridge_hi": 0.2})
    n = mean_seeds if mean_seeds is not None else min(len(v) for v in folds.values())
    rows.append({"model": UNSEEN_MEAN, "split": "unseen", "fold": None, "seed": "all", "n_seeds": n,
                 "folds": len(folds), "srocc": float(np.mean([np.mean(v) for v in folds.values()])),
                 "nr_minus_ridge": 0.1, "nr_minus_ridge_lo": 0.0, "nr_minus_ridge_hi": 0.2})
    return rows


@pytest.mark.parametrize("folds, coverage, expect", [
    ({"a": [0.8, 0.8, 0.8], "b": [0.8, 0.8, 0.8]}, 0.9, dict(unseen_mean=True, every_fold=True, every_seed=True,
                                                             coverage=True)),
    ({"a": [0.69, 0.7, 0.7], "b": [0.8, 0.8, 0.8]}, 0.9, dict(unseen_mean=False, every_fold=True)),
    ({"a": [0.9, 0.9, 0.9], "b": [0.45, 0.45, 0.45]}, 0.9, dict(unseen_mean=False, every_fold=False)),
    ({"a": [0.9, 0.9, 0.9], "b": [0.4, 0.8, 0.8]}, 0.9, dict(unseen_mean=True, every_fold=True, every_seed=False)),
    ({"a": [0.9, 0.9, 0.9], "b": [0.8, 0.8, 0.8]}, 0.96, dict(unseen_mean=True, coverage=False)),
    ({"a": [0.9, 0.9, 0.9], "b": [0.8, 0.8, 0.8]}, None, dict(coverage=False)),
    ({"a": [0.9, 0.9], "b": [0.8, 0.8]}, 0.9, dict(unseen_mean=False, every_fold=True)),  # 2 seeds: not enough
])
def test_target_lines_on_constructed_inputs(folds, coverage, expect) -> None:
    got = {t["target"]: t for t in seed_targets(_seed_rows(folds, coverage))}
    for k, v in expect.items():
        assert got[k]["met"] is v, (k, got[k]["text"])
        assert ("**met**" if v else "**not met**") in got[k]["text"]
    if len(folds["a"]) < 3:
        assert "only 2 seed(s)" in got["unseen_mean"]["text"]
    assert "each fold's mean over its seeds" in got["every_fold"]["text"]
    text = summary_text({"metrics": [], "seeds": _seed_rows(folds, coverage)})
    assert all(t["text"] in text for t in got.values())


def _placement(values: dict[tuple[str, int], float]) -> list[dict]:
    ref = values[REFERENCE]
    return [{"model": UNSEEN_MEAN, "split": "unseen", "fold": None, "sampling": s, "patches": p, "n_seeds": 3,
             "folds": 3, "srocc": v, "srocc_sd": 0.01, "minus_reference": v - ref, "minus_reference_lo": v - ref - 0.01,
             "minus_reference_hi": v - ref + 0.01, "frames_per_s": 10.0} for (s, p), v in values.items()]


def test_choose_placement_ties_and_the_plain_sentence() -> None:
    vals = {c: 0.70 for c in CONFIGS}
    vals.update({("activation", 4): 0.8004, ("grid", 2): 0.8001, ("uniform", 2): 0.79})
    rows = _placement(vals)
    c = choose_placement(rows)
    assert (c["sampling"], c["patches"]) == ("grid", 2)  # equal to 3 decimals: fewer patches
    assert c["reference"]["srocc"] == 0.70 and len(c["candidates"]) == len(CONFIGS)
    json.dumps(c, allow_nan=False)
    s = placement_sentence(rows, c)
    assert "Winner: grid placement, 2 patch(es)" in s and "**Activation sampling loses** at" in s
    assert "2 patch(es): activation 0.700 vs grid 0.800" in s
    vals = {c: 0.70 for c in CONFIGS}  # a tie everywhere: one patch, the cheapest placement
    assert (choose_placement(_placement(vals))["sampling"], choose_placement(_placement(vals))["patches"]) == ("grid", 1)
    none = choose_placement([])
    assert none["sampling"] is None and "no unseen-split" in none["reason"]


def test_an_older_frames_csv_without_seeds_still_pairs(evaluated, fold_models, tiny_data, tmp_path) -> None:  # noqa: F811
    """An evaluation written before the seed column (e.g. docs/results/nr/frames.csv) pairs by model."""
    from dctqa.log import write_csv
    from dctqa.nr.evaluate import evaluate

    out, _ = evaluated
    old = [{k: v for k, v in r.items() if k != "seed"} for r in _csv(out / "frames.csv") if r["seed"] == "0"]
    write_csv(tmp_path / "old.csv", old)
    t = evaluate([fold_models[("alpha", 0)]], tiny_data, tmp_path / "ev", frame_step=2, ablation_step=4, n_boot=20,
                 ablations=False, paired_with=tmp_path / "old.csv")
    (p,) = t["paired"]
    assert p["model"] == "unseen-alpha" and p["seed"] == 0 and p["difference"] == 0.0
    assert t["placement"] == [] and json.loads((tmp_path / "ev" / "placement.json").read_text())["sampling"] is None
