"""End-to-end study runs: tables checked against independent computations."""
from __future__ import annotations

import csv
from types import SimpleNamespace
from typing import Any, Sequence

import av
import numpy as np
import pytest
from scipy import ndimage, stats

from dctqa import baselines as B
from dctqa.study.codec import EncodeSettings
from dctqa.study.detect.types import Detections, Detector
from dctqa.errors import InputError
from dctqa.io import read_frames
from dctqa.study import StudyConfig, run_study


class BrightBlobDetector(Detector):
    """A tiny detector: connected regions of luma > 170 are "persons" (COCO id 1);
    score = the region's mean luma / 255. Enough for AP to react to compression."""

    name = "test:bright-blobs"

    def settings(self) -> dict[str, Any]:
        return {"threshold": 170}

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for f in frames:
            y = B.luma(f)
            lab, n = ndimage.label(y > 170)
            boxes, scores = [], []
            for i, sl in enumerate(ndimage.find_objects(lab), start=1):
                if sl is None or (sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start) < 9:
                    continue
                boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                scores.append(min(1.0, float(y[lab == i].mean()) / 255))
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                                  np.ones(len(boxes), np.int64)))
        return out


def write_lossless(path, frames, fps=10):
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def blob_clip(n=40, h=96, w=128, seed=0):
    """Bright squares of varying size moving over a dark textured background."""
    rng = np.random.default_rng(seed)
    bg = ndimage.gaussian_filter(rng.normal(70, 40, (h, w, 3)), (1, 1, 0))
    frames = []
    for i in range(n):
        f = bg + rng.normal(0, 6, bg.shape)
        for k, size in enumerate((6, 9, 14)):
            x0, y0 = (7 + 5 * i + 37 * k) % (w - size), (9 + 3 * i + 29 * k) % (h - size)
            f[y0:y0 + size, x0:x0 + size] = 215 + 20 * np.sin(i + k)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def check_tables(result, out, target_metrics):
    """Window means from per-frame values, correlations against scipy on the same arrays."""
    rows = read_csv(out / "windows.csv")
    assert len(rows) == len(result.windows) > 0
    for row, r in zip(rows, result.windows):
        fr = result.frames[r["video"]][r["variant"]]
        sel = (fr["frame_indices"] >= r["window_start"]) & (fr["frame_indices"] < r["window_end"])
        assert int(row["n_metric_frames"]) == sel.sum() > 0
        for col in target_metrics:
            assert float(row[col]) == pytest.approx(np.nanmean(fr[col][sel]), rel=1e-5)
        want_global = 10 * np.log10(255 ** 2 / fr["mse"][sel].mean())
        assert float(row["psnr_global"]) == pytest.approx(min(100.0, want_global), rel=1e-5)
    corr = {(c["subset"], c["target"], c["metric"]): c for c in result.correlations}
    scored = result.analysis.selection.rows  # with ground truth, enough boxes, not a duplicate
    assert all(r["ap50"] is not None and not r["duplicate_reason"] for r in scored)
    y = np.array([r["ap50"] for r in scored])
    checked = 0
    for col in target_metrics:
        x = np.array([r[col] for r in scored])
        c = corr[("all", "ap50", col)]
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert c["srcc"] is None
            continue
        assert c["lcc"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)
        assert c["srcc"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
        assert c["krcc"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-9)
        assert c["srcc_lo"] <= c["srcc"] <= c["srcc_hi"]
        checked += 1
    assert checked >= 2
    csv_corr = read_csv(out / "correlations.csv")
    assert len(csv_corr) == len(result.correlations)
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "## Where the time goes" in report
    for png in ("ap50_vs_metrics.png", "per_crf.png"):
        assert (out / "plots" / png).stat().st_size > 1000


def test_synthetic_study_and_resume(tmp_path):
    clip = tmp_path / "blobs.mkv"
    write_lossless(clip, blob_clip())
    out = tmp_path / "study"
    cfg = StudyConfig(videos=[clip], out=out, encode=EncodeSettings(crfs=(20, 51), cap_bpp=(), preset="ultrafast"),
                      backbones=[], pixel=True, detector=BrightBlobDetector(), frame_stride=1, metric_stride=2,
                      window=10, n_boot=100, sensitivity_gt=(0.5, 0.7), sensitivity_pred=(0.0, 0.5))
    res = run_study(cfg)
    assert {r["variant"] for r in res.windows} == {"crf20", "crf51"}
    assert len(res.windows) == 2 * 4
    assert all(r["ap50"] is not None and 0 <= r["ap50"] <= 1 for r in res.windows)
    cols = ["dctqa_pixel", "psnr", "ssim", "blockiness", "blur", "noise", "contrast"]
    check_tables(res, out, cols)
    # per-frame values against independent computations on the decoded frames
    ref = read_frames(clip)
    for v in res.variants["blobs"]:
        dist = read_frames(v.path)
        fr = res.frames["blobs"][v.name]
        assert list(fr["frame_indices"]) == list(range(0, 40, 2))
        for k, f in enumerate(fr["frame_indices"][:4]):
            assert fr["psnr"][k] == pytest.approx(B.psnr_np(ref[f], dist[f]), abs=1e-3)
            assert fr["ssim"][k] == pytest.approx(B.ssim_np(ref[f], dist[f]), abs=1e-5)
            assert fr["noise"][k] == pytest.approx(B.noise_np(dist[f]), rel=1e-4)
    from dctqa.reference import score as reference_score

    crf51 = next(v for v in res.variants["blobs"] if v.crf == 51)
    dist = read_frames(crf51.path)
    assert res.frames["blobs"]["crf51"]["dctqa_pixel"][1] == pytest.approx(
        reference_score(ref[2], dist[2], backbone="pixel", domain="pixel"), rel=1e-4)
    # heavier compression: lower PSNR, higher (worse) dctqa
    mean = {v: np.mean(res.frames["blobs"][v]["psnr"]) for v in ("crf20", "crf51")}
    assert mean["crf51"] < mean["crf20"]
    assert np.mean(res.frames["blobs"]["crf51"]["dctqa_pixel"]) > np.mean(res.frames["blobs"]["crf20"]["dctqa_pixel"])

    # a rerun reuses every stage and gives the same tables
    before = (out / "windows.csv").read_text()
    score_files = sorted((out / "cache" / "score").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in score_files]
    res2 = run_study(cfg)
    assert (out / "windows.csv").read_text() == before
    assert [p.stat().st_mtime_ns for p in sorted((out / "cache" / "score").iterdir())] == mtimes
    assert res2.timings["metric"]["this_run_s"] == 0.0 and res2.timings["detection"]["this_run_s"] == 0.0
    assert res2.timings["encode"]["computed_s"] > 0
    # worker processes give the same numbers
    cfg_jobs = StudyConfig(**{**cfg.__dict__, "out": tmp_path / "study_jobs", "jobs": 2})
    run_study(cfg_jobs)
    assert (tmp_path / "study_jobs" / "windows.csv").read_text() == before
    # the analysis tables and the threshold grid (2 x 2 points, two targets)
    sens = read_csv(out / "sensitivity.csv")
    assert len(sens) == 8 and {(r["gt_score"], r["pred_score"]) for r in sens} >= {("0.5", "0"), ("0.7", "0.5")}
    assert read_csv(out / "differences.csv") and read_csv(out / "within.csv")
    report = (out / "report.md").read_text()
    for section in ("## Which windows count", "### Within content window", "## Sensitivity"):
        assert section in report

    # a prediction threshold filters the cached detections: no detector run, AP falls
    det_files = sorted((out / "cache" / "detect").glob("*.npz"))
    det_mtimes = [p.stat().st_mtime_ns for p in det_files]
    hi = run_study(StudyConfig(**{**cfg.__dict__, "pred_score_threshold": 0.9, "sensitivity_gt": (),
                                  "sensitivity_pred": ()}))
    assert [p.stat().st_mtime_ns for p in sorted((out / "cache" / "detect").glob("*.npz"))] == det_mtimes
    assert hi.sensitivity == [] and hi.correlations != res.correlations
    lo_ap = {(r["variant"], r["window_start"]): r["ap"] for r in res.windows}
    hi_ap = {(r["variant"], r["window_start"]): r["ap"] for r in hi.windows}
    assert all(hi_ap[k] <= lo_ap[k] + 1e-12 for k in lo_ap) and any(hi_ap[k] < lo_ap[k] for k in lo_ap)


def test_cli_encode_and_errors(tmp_path, capsys):
    from dctqa.cli import main

    clip = tmp_path / "c.mkv"
    write_lossless(clip, blob_clip(n=6, h=48, w=64))
    assert main(["encode", str(clip), "--out", str(tmp_path / "enc"), "--crf", "30", "--cap-kbps", "50",
                 "--preset", "ultrafast", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "crf30_cap50k" in printed and (tmp_path / "enc" / "crf30.mp4").is_file()
    assert main(["encode", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["study", str(clip), "--out", str(tmp_path / "s"), "--frame-stride", "2", "--metric-stride", "3",
                 "--detector", "onnx:" + str(tmp_path / "none.onnx"), "--backbone", "pixel", "--quiet"]) == 2
    assert "metric_stride" in capsys.readouterr().err


def test_config_errors(tmp_path):
    clip = tmp_path / "c.mkv"
    write_lossless(clip, blob_clip(n=3, h=32, w=32))
    with pytest.raises(InputError):
        StudyConfig(videos=[], out=tmp_path)
    with pytest.raises(InputError):
        StudyConfig(videos=[clip], out=tmp_path, baselines=("vmaf",))
    with pytest.raises(InputError):
        StudyConfig(videos=[clip], out=tmp_path, domains=("pixel",))
    for bad in ({"pred_score_threshold": 1.5}, {"sensitivity_gt": (0.5, -0.1)}, {"resampling": "rows"},
                {"min_gt": -1}, {"n_boot": -1}):
        with pytest.raises(InputError):
            StudyConfig(videos=[clip], out=tmp_path, **bad)


def test_vtest_study(vtest_path, yolox_path, tmp_path):
    """60 frames of vtest.avi, CRF 23 and 47, YOLOX-Nano as backbone and detector."""
    out = tmp_path / "study"
    model = f"onnx:{yolox_path}"
    cfg = StudyConfig(videos=[vtest_path], out=out,
                      encode=EncodeSettings(crfs=(23, 47), cap_bpp=(), preset="veryfast", max_frames=60),
                      backbones=[model], domains=("spectral",), pixel=True, detector=model, frame_stride=2,
                      metric_stride=4, window=20, n_boot=200, sensitivity_gt=(), sensitivity_pred=())
    res = run_study(cfg)
    assert len(res.windows) == 2 * 3
    cols = ["dctqa_spectral_yolox_nano", "dctqa_pixel", "psnr", "ssim", "blur"]
    check_tables(res, out, cols)
    by = {(r["variant"], r["window_start"]): r for r in res.windows}
    for start in (0, 20, 40):
        lo, hi = by[("crf23", start)], by[("crf47", start)]
        assert hi["dctqa_spectral_yolox_nano"] > lo["dctqa_spectral_yolox_nano"]
        assert hi["psnr"] < lo["psnr"]
        assert lo["n_gt"] > 0


# ----------------------------------------------------------------------------- the study-run seam (issue 20)

def test_column_names_come_from_one_function():
    """Every dctqa column, the NR target included, is built by scoring.column_name."""
    from dctqa.nr.data import target_column
    from dctqa.study.scoring import backbone_label, column_name, metric_specs

    assert column_name("spectral", "onnx:/x/models/yolox_nano.onnx") == "dctqa_spectral_yolox_nano"
    assert column_name("feature", "fasterrcnn_resnet50_fpn") == "dctqa_feature_fasterrcnn_resnet50_fpn"
    assert column_name("pixel", "anything") == "dctqa_pixel"
    assert backbone_label("onnx:m/YOLOX-nano v2.onnx") == "YOLOX_nano_v2"
    assert target_column("onnx:/x/resnet.onnx") == "dctqa_spectral_resnet"
    cfg = SimpleNamespace(backbones=["onnx:a/yolox_nano.onnx", "resnet50"], domains=("spectral", "feature"), pixel=True)
    assert [s.column for s in metric_specs(cfg)] == ["dctqa_spectral_yolox_nano", "dctqa_feature_yolox_nano",
                                                     "dctqa_spectral_resnet50", "dctqa_feature_resnet50", "dctqa_pixel"]
    with pytest.raises(InputError, match="same column name"):
        metric_specs(SimpleNamespace(backbones=["onnx:a/m.onnx", "onnx:b/m.onnx"], domains=("spectral",), pixel=False))


def _stage_lines(tmp_path, monkeypatch, capsys, nr: bool) -> list[str]:
    """The stage lines of run_study with every stage's work replaced (three variants of one
    video; with ``nr``, a no-reference model)."""
    from dctqa.progress import using_mode
    from dctqa.study import pipeline

    video = tmp_path / "v.mp4"
    video.write_bytes(b"never decoded")
    cfg = StudyConfig(videos=[video], out=tmp_path / "out", backbones=[], baselines=(), progress=True,
                      detector=object(), n_boot=200, sensitivity_gt=(), sensitivity_pred=())
    vs = [SimpleNamespace(name=f"crf{c}", path=video) for c in (23, 35, 47)]

    def fake_encode(run):
        run.variants, run.refs, run.hashes = {"v": vs}, {"v": video}, {"v": "0"}

    monkeypatch.setattr(pipeline, "_load_nr_model", lambda cfg: object() if nr else None)
    monkeypatch.setattr(pipeline, "encode_stage", fake_encode)
    monkeypatch.setattr(pipeline, "score_pair", lambda *args: ({"frame_indices": np.arange(2)}, {"decode": 0.5}))
    monkeypatch.setattr(pipeline, "nr_stage", lambda run, on_step: None)
    monkeypatch.setattr(pipeline, "_ap_stage", lambda *a: ({"windows": [], "detect_s": 0.0, "ap_s": 0.0},
                                                           {"cached": False}))
    monkeypatch.setattr(pipeline, "tables_stage", lambda run: None)
    monkeypatch.setattr(pipeline, "report_stage", lambda run: setattr(run, "result", run))
    with using_mode("log"):
        run = pipeline.run_study(cfg)
    assert run.cache_root == cfg.out / "cache" and set(run.frames["v"]) == {"crf23", "crf35", "crf47"}
    # the score stage's timings (0.5 s per variant, computed once, then cached) are in the meta, not an array
    assert run.timings["decode"]["computed_s"] == pytest.approx(1.5)
    assert all(not k.startswith("__") for k in run.frames["v"]["crf23"])
    return [e for e in capsys.readouterr().err.splitlines() if e.startswith("study: stage ")]


@pytest.mark.parametrize("nr", [False, True])
def test_each_stage_has_its_own_number(tmp_path, monkeypatch, capsys, nr):
    """The pipeline's stage tuple numbers the stage lines: 1..N once each, N = 5 with the
    no-reference stage (before issue 20 it and the score stage both said "stage 2/4")."""
    lines = _stage_lines(tmp_path, monkeypatch, capsys, nr)
    n = 5 if nr else 4
    assert [e.split()[2] for e in lines] == [f"{i}/{n}" for i in range(2, n + 1)]  # encode replaced: no line
    assert lines[0] == f"study: stage 2/{n} score every metric on 3 variants"
    if nr:
        assert lines[1].startswith("study: stage 3/5 no-reference prediction (dctqa_nr, 2 activation patches")
    assert lines[-1].startswith(f"study: stage {n}/{n} correlations")


def test_stage_cache_keeps_timings_out_of_the_arrays(tmp_path):
    """timed_arrays stores a compute's timings in the meta; the arrays hold only arrays, and a
    hit returns the same timings."""
    from dctqa.study.stages import StageCache

    cache = StageCache(tmp_path)
    arrs, meta = cache.timed_arrays("s", {"k": 1}, lambda: ({"a": np.arange(3)}, {"decode": 1.5}))
    again, meta2 = StageCache(tmp_path).timed_arrays("s", {"k": 1}, lambda: pytest.fail("recomputed"))
    assert list(again) == ["a"] and np.array_equal(again["a"], np.arange(3))
    assert meta["timings"] == meta2["timings"] == {"decode": 1.5} and meta2["cached"] and not meta["cached"]
    plain, pmeta = cache.arrays("s", {"k": 2}, lambda: {"b": np.zeros(1)})
    assert list(plain) == ["b"] and "timings" not in pmeta


def test_study_run_subset_shares_the_results(tmp_path):
    """A stage run on run.subset(...) sees only those videos and adds its results to the run."""
    from dctqa.study.run import StudyRun, run_stages

    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    cfg = StudyConfig(videos=[video], out=tmp_path / "out", backbones=[], baselines=("psnr",), pixel=False)
    run = StudyRun.start(cfg)
    run.variants = {"a": [SimpleNamespace(name="x")], "b": [SimpleNamespace(name="y")]}
    run.refs, run.hashes = {"a": video, "b": video}, {"a": "1", "b": "2"}

    seen = []

    def stage(r):
        for stem, v in r.pairs():
            r.frames.setdefault(stem, {})[v.name] = r.step
            r.add_time("t", 1.0, 0.5)
        seen.append({k: dict(v) for k, v in run.frames.items()})

    run_stages(run, (lambda r: stage(r.subset({"b"})), stage))
    assert seen == [{"b": {"y": "stage 1/2"}}, {"b": {"y": "stage 2/2"}, "a": {"x": "stage 2/2"}}]
    assert run.timings["t"] == {"computed_s": 3.0, "this_run_s": 1.5} and run.step == ""
