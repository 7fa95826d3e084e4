"""Issue 25: the cross-content forms of Q (dctqa.domains.normalised) against their definitions,
and the evaluation (dctqa.study.scenes) on small synthetic tables whose answer is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dctqa.domains.normalised import FORMS, all_forms, floor_of, identity_value, normalised_qk
from dctqa.errors import InputError
from dctqa.ops.ratio_torch import ratio_qk_torch
from dctqa.study import scenes


def _spectra(seed: int = 0, n: int = 2, k: int = 3, h: int = 12, w: int = 10):
    g = torch.Generator().manual_seed(seed)
    ao = torch.rand((n, k, h, w), generator=g, dtype=torch.float64) ** 3 * 50
    ac = ao * torch.rand((n, k, h, w), generator=g, dtype=torch.float64)  # compression: energy lost
    return ao, ac


def _literal(ao, ac, form):
    """The forms written out per filter in numpy, from the module docstring."""
    out = np.empty(ao.shape[:2])
    for i in range(ao.shape[0]):
        for k in range(ao.shape[1]):
            a, c = ao[i, k].ravel().numpy(), ac[i, k].ravel().numpy()
            eps = 0.01 * np.sort(a)[(a.size - 1) // 2] + 1e-12
            r = (a + eps) / (c + eps)
            out[i, k] = {"mean": r.mean(), "log": np.exp(np.log(r).mean()),
                         "relative": (r.mean() - 1) / ((a + eps) / eps).mean().__sub__(1),
                         "weighted": (a * r).sum() / a.sum()}[form]
    return out


@pytest.mark.parametrize("form", FORMS)
def test_forms_follow_their_definitions(form):
    ao, ac = _spectra()
    np.testing.assert_allclose(normalised_qk(ao, ac, form).numpy(), _literal(ao, ac, form), rtol=1e-10)


def test_mean_form_is_metric_version_1():
    ao, ac = _spectra(1)
    assert torch.equal(normalised_qk(ao, ac, "mean"), ratio_qk_torch(ao, ac))
    a32, c32 = ao.float(), ac.float()
    assert torch.equal(normalised_qk(a32, c32, "mean"), ratio_qk_torch(a32, c32))


@pytest.mark.parametrize("form", FORMS)
def test_identical_frames_give_the_identity_value(form):
    ao, _ = _spectra(2)
    v = normalised_qk(ao, ao.clone(), form)
    assert torch.equal(v, torch.full_like(v, identity_value(form)))


@pytest.mark.parametrize("form", FORMS)
def test_common_scale_of_both_spectra_drops_out(form):
    ao, ac = _spectra(3)
    np.testing.assert_allclose(normalised_qk(7.0 * ao, 7.0 * ac, form), normalised_qk(ao, ac, form), rtol=1e-9)


def test_relative_divides_out_the_reference_spectrum_shape():
    """Version 1's value for a distorted response of 0 is 1 + mean/eps: it depends on the
    reference's spectral shape. The relative form gives exactly 1 there, whatever the content,
    and never more than 1."""
    flat = torch.full((1, 1, 16, 16), 2.0, dtype=torch.float64)
    peaked = flat.clone()
    peaked[..., 0, 0] = 5000.0
    zero = torch.zeros_like(flat)
    v1 = [normalised_qk(a, zero, "mean").item() for a in (flat, peaked)]
    assert v1[1] > 10 * v1[0]  # content sets version 1's ceiling
    for a in (flat, peaked):
        assert normalised_qk(a, zero, "relative").item() == pytest.approx(1.0, rel=1e-9)
    ao, ac = _spectra(4)
    assert (normalised_qk(ao, ac, "relative") <= 1.0).all()
    assert (normalised_qk(ao, ac, "log") <= normalised_qk(ao, ac, "mean")).all()  # AM >= GM


def test_all_forms_one_pass_equals_each_and_takes_a_given_floor():
    ao, ac = _spectra(5)
    every = all_forms(ao, ac)
    for form in FORMS:
        assert torch.equal(every[form], normalised_qk(ao, ac, form))
    given = all_forms(ao, ac, floor=floor_of(ao))
    assert all(torch.equal(given[f], every[f]) for f in FORMS)


def test_bad_arguments_are_clear_errors():
    ao, ac = _spectra(6)
    with pytest.raises(InputError, match="unknown normalisation 'median'"):
        normalised_qk(ao, ac, "median")
    with pytest.raises(InputError, match="shapes differ"):
        normalised_qk(ao, ac[..., :-1])
    with pytest.raises(InputError, match="unknown normalisation"):
        identity_value("nope")


def test_pair_stats_on_real_spectra_match_the_forms():
    from dctqa.backbones import pixel_backbone
    from dctqa.ops.dct import dct2
    from dctqa.ops.preprocess import preprocess_torch
    from dctqa.ops.spectral_torch import spectral_magnitudes_torch

    bb = pixel_backbone()
    filters = torch.as_tensor(bb.filters, dtype=torch.float32)
    g = np.random.default_rng(0)
    ref = g.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    dist = np.stack([ref[0], np.clip(ref[0].astype(int) + g.integers(-20, 21, ref[0].shape), 0, 255).astype(np.uint8)])
    spec = lambda x: spectral_magnitudes_torch(dct2(preprocess_torch(torch.from_numpy(x).permute(0, 3, 1, 2),
                                                                     bb.preprocess, "cpu")), filters=filters)[0]
    ao, ac = spec(ref).flatten(2), spec(dist).flatten(2)
    st = scenes.pair_stats(ao, ac)
    assert st["q"][0] == 1.0 and st["rel"][0] == 0.0 and st["killed"][0] == 0.0
    np.testing.assert_allclose(st["q"][1], ratio_qk_torch(ao, ac[1:]).mean().item(), rtol=1e-12)
    np.testing.assert_allclose(st["rel_b0.5"][1], ((ratio_qk_torch(ao, ac[1:])[0] - 1) /
                                                   (ao[0].double().mean(-1) / floor_of(ao)[0, :, 0]).sqrt()).mean(),
                               rtol=1e-6)
    assert math.isfinite(st["share_noise"][1])


# ----------------------------------------------------------------------------- the evaluation

def _synthetic(scale_by_video=(1.0, 3.0, 9.0), n_content=4, crfs=(23, 29, 35, 41, 47), seed=0):
    """Study tables of 3 videos whose Q level is multiplied by a per-video content factor, and
    a measurement whose relative form divides exactly that factor out: AP falls with damage."""
    g = np.random.default_rng(seed)
    windows, study_frames, measured = [], [], []
    for vi, scale in enumerate(scale_by_video):
        video = f"v{vi}"
        for c in range(n_content):
            start = 100 * c
            hard = g.uniform(0.5, 1.5)
            for crf in crfs:
                damage = hard * (crf - 20) / 30.0 + g.normal(0, 0.02)
                ap = float(np.clip(1.0 - 0.6 * damage, 0, 1))
                windows.append({"video": video, "variant": f"crf{crf}", "crf": crf, "maxrate_kbps": None,
                                "cap_bpp": None, "bitrate_kbps": 1000.0 / crf, "window_start": start,
                                "window_end": start + 100, "n_gt": 50, "ap50": min(1.0, ap + 0.1), "ap": ap})
                for f in range(start, start + 100, 8):
                    q = 1.0 + scale * damage
                    psnr = 45.0 - 12.0 * damage + 8.0 * vi  # PSNR's level shifts with content too
                    study_frames.append({"video": video, "variant": f"crf{crf}", "frame": float(f),
                                         scenes.BASE: q, "psnr": psnr, "ssim": 1 - damage / 3,
                                         "mse": 255.0 ** 2 / 10 ** (psnr / 10)})
                    row = {"video": video, "variant": f"crf{crf}", "frame": float(f), "q": q,
                           "log": 1 + math.log1p(scale * damage), "rel": damage / 100.0, "w": q}
                    row.update({f"rel_b{b:g}": scale * damage / (100.0 * scale) ** b for b in scenes.BETAS})
                    row.update({d: scale if d == "floor_rel" else 0.5 for d in scenes.DIAGNOSTICS})
                    measured.append(row)
    return windows, study_frames, measured


def test_window_table_averages_the_measured_frames_and_drops_other_encodes():
    windows, sf, mf = _synthetic()
    for r in mf:
        if r["video"] == "v1" and r["variant"] == "crf35" and r["frame"] == 16:
            r["q"] *= 1.01  # not the study's encode
    rows, info = scenes.window_table(windows, sf, mf)
    assert info["variants_other_encode"] == ["v1/crf35"]
    assert len(rows) == len(windows) - 4 and info["windows"] == len(rows)
    r = next(r for r in rows if r["video"] == "v0" and r["variant"] == "crf47" and r["window_start"] == 100)
    frames = [f for f in sf if f["video"] == "v0" and f["variant"] == "crf47" and 100 <= f["frame"] < 200]
    assert r["n_metric_frames"] == len(frames) == 13
    assert r[scenes.BASE] == pytest.approx(np.mean([f[scenes.BASE] for f in frames]))
    assert r["psnr_global"] == pytest.approx(10 * math.log10(255 ** 2 / np.mean([f["mse"] for f in frames])))
    assert r[f"{scenes.BASE}_rel_b0"] == pytest.approx(r[scenes.BASE] - 1)


def test_lovo_beta_is_chosen_without_the_scored_video():
    windows, sf, mf = _synthetic()
    rows, _ = scenes.window_table(windows, sf, mf)
    out, chosen = scenes.lovo_beta(rows, ["v0", "v1", "v2"])
    assert chosen == {"v0": 1.0, "v1": 1.0, "v2": 1.0}  # beta = 1 divides the content factor out exactly
    assert all(r[f"{scenes.BASE}_relb"] == r[f"{scenes.BASE}_rel_b1"] for r in out)
    # with the factor gone from one video, choosing on the other two still never looks at it
    only = [r for r in rows if r["video"] != "v2"]
    _, chosen2 = scenes.lovo_beta(only, ["v0", "v1"])
    assert set(chosen2) == {"v0", "v1"}


def test_variant_tables_find_the_content_free_form_ahead(tmp_path):
    windows, sf, mf = _synthetic()
    rows, _ = scenes.window_table(windows, sf, mf)
    rows, _ = scenes.lovo_beta(rows, ["v0", "v1", "v2"])
    corr, diffs, sel = scenes.variant_tables(rows, ["v0", "v1", "v2"], n_boot=200)
    assert len(sel.rows) == len(rows)
    rel = scenes._diff(diffs, f"{scenes.BASE}_rel", scenes.BASE, "all", "ap")
    assert rel["diff"] > 0.1 and rel["verdict"] == "ahead"  # today's Q mixes the content factors
    t_rel = scenes.target_reached(diffs, f"{scenes.BASE}_rel")
    assert t_rel["reached"] and t_rel["strict"] and t_rel["every_fold"]
    assert not scenes.target_reached(diffs, scenes.BASE)["strict"]
    assert {d["subset"] for d in diffs} >= {"all", "without v0", "without v1", "without v2"}


def test_evaluate_writes_every_output(tmp_path):
    windows, sf, mf = _synthetic()
    study = tmp_path / "study"
    study.mkdir()
    keys = ["video", "variant", "crf", "maxrate_kbps", "cap_bpp", "bitrate_kbps", "window_start",
            "window_end", "n_det_frames", "n_metric_frames", "n_gt", "ap50", "ap", scenes.BASE]
    scenes.write_rows([{k: w.get(k, 13 if k.startswith("n_") else 1.0) for k in keys} for w in windows],
                      study / "windows.csv")
    scenes.write_rows(sf, study / "frames.csv")
    scenes.write_rows(mf, tmp_path / "measured.csv")
    out = tmp_path / "out"
    reached = scenes.evaluate(tmp_path / "measured.csv", study, out, stride=8, n_boot=50, command="test")
    assert {t["metric"] for t in reached} == {scenes.BASE, *scenes.VARIANTS}
    for name in ("windows.csv", "correlations.csv", "differences.csv", "diagnostics.csv", "explains.csv",
                 "target.csv", "q_vs_ap.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    text = (out / "report.md").read_text()
    assert "beta chosen without the scored video: v0 1, v1 1, v2 1" in text
    ex = {e["diagnostic"]: e for e in scenes.diagnose(scenes.window_table(windows, sf, mf)[0])[1]}
    assert ex["floor_rel"]["srcc"] > 0.5  # the synthetic content factor is what sets the offset
    with pytest.raises(InputError, match="no measured variant"):
        scenes.write_rows([dict(mf[0], variant="crf99")], tmp_path / "none.csv")
        scenes.evaluate(tmp_path / "none.csv", study, tmp_path / "o2", stride=8, n_boot=10)


# ----------------------------------------------------------------------------- the shipped variant

def _frames(seed: int = 0, size: int = 64):
    g = np.random.default_rng(seed)
    ref = g.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    blur = ((ref[:, :-1, :-1].astype(np.float64) + ref[:, 1:, 1:]) / 2).round().astype(np.uint8)
    dist = ref.copy()
    dist[:, :-1, :-1] = blur
    return ref, dist


def test_dctqa_weighted_follows_its_definition_in_float64():
    """create_metric("dctqa_weighted") against METRIC.md's magnitudes computed literally in
    float64 (dctqa.reference: symmetric extension, circular correlation, DFT), reduced by the
    weighted form written out in numpy; within METRIC.md's agreement bound."""
    import dctqa
    from dctqa import reference
    from dctqa.backbones import get_backbone

    ref, dist = _frames()
    m = dctqa.create_metric("dctqa_weighted", backbone="pixel")
    got = m.score(ref, dist)
    bb = get_backbone("pixel")
    for i in range(len(ref)):
        ao = torch.from_numpy(reference.magnitudes(ref[i], bb, "spectral"))[None]
        ac = torch.from_numpy(reference.magnitudes(dist[i], bb, "spectral"))[None]
        want = _literal(ao, ac, "weighted").mean()
        assert got[i] == pytest.approx(want, rel=1e-4)
        assert got[i] > 1.0  # damage raises it above 1


def test_dctqa_weighted_with_a_real_filter_bank_shape():
    """The same check with K = 4 random 3 x 3 filters on BGR frames of 40 x 32 (not square,
    a filter bank as a detector's), through Metric(normalise="weighted")."""
    import dctqa
    from dctqa import reference
    from dctqa.backbones.base import Backbone, Preprocess

    g = np.random.default_rng(5)
    bb = Backbone(name="random", filters=g.normal(size=(4, 3, 3, 3)), preprocess=Preprocess("BGR", 1.0),
                  stem=None, source="test")
    ref, dist = _frames(3, 40)
    ref, dist = ref[:, :32], dist[:, :32]
    got = dctqa.Metric(bb, normalise="weighted").score(ref, dist)
    for i in range(len(ref)):
        ao = torch.from_numpy(reference.magnitudes(ref[i], bb, "spectral"))[None]
        ac = torch.from_numpy(reference.magnitudes(dist[i], bb, "spectral"))[None]
        assert got[i] == pytest.approx(_literal(ao, ac, "weighted").mean(), rel=1e-4)


def test_dctqa_weighted_identity_name_and_facts():
    import dctqa
    from dctqa import registry

    ref, _ = _frames(1)
    m = dctqa.create_metric("dctqa_weighted", backbone="pixel")
    assert np.array_equal(m.score(ref, ref.copy()), np.ones(len(ref)))
    assert m.name == "dctqa_weighted" and m.lower_better and m.implementation == "torch"
    assert m.params()["normalise"] == "weighted" and m.params()["metric_version"] == 1
    assert registry.NORMALISED_METRICS == {"weighted": "dctqa_weighted"}
    assert registry.metric_info("dctqa_weighted").kind == "FR"


def test_version_1_is_unchanged_by_the_option():
    import dctqa

    ref, dist = _frames(2)
    v1 = dctqa.Metric("pixel")
    assert "normalise" not in v1.params() and v1.name == "dctqa"
    assert np.array_equal(dctqa.Metric("pixel", normalise="mean").score(ref, dist), v1.score(ref, dist))
    assert not np.allclose(dctqa.Metric("pixel", normalise="weighted").score(ref, dist), v1.score(ref, dist))


def test_normalise_option_refuses_what_is_not_shipped():
    import dctqa

    with pytest.raises(InputError, match="unknown normalise 'log'"):
        dctqa.Metric("pixel", normalise="log")  # a research form, not a named variant
    with pytest.raises(InputError, match="spectral domain only"):
        dctqa.Metric("pixel", domain="pixel", normalise="weighted")


def test_find_variants_orders_by_crf_then_cap(tmp_path):
    for name in ("crf35_cap44k", "crf23", "crf35", "crf23_cap11k", "crf41"):
        (tmp_path / "vtest" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "vtest" / "sub" / f"{name}.mp4").write_bytes(b"")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "crf23.mp4").write_bytes(b"")
    found = scenes.find_variants(tmp_path, "vtest")
    assert list(found) == ["crf23", "crf23_cap11k", "crf35", "crf35_cap44k", "crf41"]
    assert list(scenes.find_variants(tmp_path, "vtest", ["crf41", "crf23"])) == ["crf23", "crf41"]
    with pytest.raises(InputError, match="no encoded variant of 'nothing'"):
        scenes.measure(["nothing.mp4"], tmp_path, "pixel", 8, tmp_path / "x.csv")


def test_the_one_command_reuses_a_measurement(tmp_path, capsys):
    windows, sf, mf = _synthetic()
    study = tmp_path / "study"
    keys = ["video", "variant", "crf", "maxrate_kbps", "cap_bpp", "bitrate_kbps", "window_start",
            "window_end", "n_det_frames", "n_metric_frames", "n_gt", "ap50", "ap", scenes.BASE]
    scenes.write_rows([{k: w.get(k, 13 if k.startswith("n_") else 1.0) for k in keys} for w in windows],
                      study / "windows.csv")
    scenes.write_rows(sf, study / "frames.csv")
    out = tmp_path / "out"
    scenes.write_rows(mf, out / "frames.csv")
    assert scenes.main(["--variants", str(tmp_path), "--study", str(study), "--out", str(out), "--reuse",
                        "--n-boot", "20"]) == 0
    printed = capsys.readouterr().out
    assert "relative: SRCC(AP) − PSNR" in printed and "target reached" in printed
    assert "--reuse" in (out / "report.md").read_text()


def test_score_command_reaches_the_weighted_variant(tmp_path, capsys):
    """`dctqa score --normalise weighted` logs the variant's Q (equal to Metric's) and names it;
    a domain the variant is not defined for exits 2 with the reason."""
    import json

    import imageio.v3 as iio

    from dctqa import Metric
    from dctqa.cli import main

    ref, dist = (f[0] for f in _frames(seed=3))  # one HxWx3 uint8 pair
    iio.imwrite(tmp_path / "r.png", ref)
    iio.imwrite(tmp_path / "d.png", dist)
    log = tmp_path / "w.json"
    assert main(["score", str(tmp_path / "r.png"), str(tmp_path / "d.png"), "--backbone", "pixel",
                 "--normalise", "weighted", "--json", str(log)]) == 0
    assert "variant=dctqa_weighted" in capsys.readouterr().out
    doc = json.loads(log.read_text())
    want = Metric(backbone="pixel", normalise="weighted").score(ref[None], dist[None])[0]
    assert doc["frames"][0]["metrics"]["dctqa"] == pytest.approx(float(want), rel=1e-9)
    assert main(["score", str(tmp_path / "r.png"), str(tmp_path / "d.png"), "--backbone", "pixel",
                 "--domain", "pixel", "--normalise", "weighted"]) == 2
    assert "spectral domain only" in capsys.readouterr().err
