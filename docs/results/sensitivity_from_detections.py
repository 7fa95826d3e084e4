"""Threshold sensitivity table from cached detections and an existing window table.

Used for docs/results/ because the fresh study run had not finished in time: the metric
values come from ``windows.csv`` (the committed study run), AP is recomputed for every
(ground-truth score, prediction score) pair from YOLOX-Nano detections on the same encoded
variants, cached by ``dctqa.study.detect.cache.cached_detect``. Only variants whose detections
are in the cache take part, and only uncapped ones whose fresh encode has the committed
bitrate (to 0.001 kbit/s): VBV-capped x264 encodes did not reproduce between runs (even one
whose bitrate matched, its cap binding, gave AP up to 0.2 away from the committed one), and
a window's metric values must come from the same encode as its AP. A full ``dctqa study`` run
writes the same table itself (``sensitivity.csv``) without these restrictions. Usage:

    python docs/results/sensitivity_from_detections.py WINDOWS_CSV VARIANTS_ROOT DET_CACHE OUT_CSV
"""
from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import numpy as np

from dctqa.study.detect import create_detector
from dctqa.study.detect.ap import window_ap
from dctqa.study.detect.cache import lookup_detections
from dctqa.study.detect.groundtruth import pseudo_ground_truth
from dctqa.settings import shared_dir
from dctqa.io import probe
from dctqa.study.analysis import AnalysisSettings, headline, load_windows_csv, metric_columns_of
from dctqa.study.config import DEFAULT_SENSITIVITY_GT, DEFAULT_SENSITIVITY_PRED, default_model
from dctqa.study.report import rows_to_csv

SOURCES = {"vtest": "vtest.avi", "car-detection": "car-detection.mp4", "bottle-detection": "bottle-detection.mp4"}


def cached(det, path: Path, cache: Path):
    return lookup_detections(det, path, 2, cache)


def main(windows_csv: str, variants_root: str, det_cache: str, out_csv: str) -> None:
    rows = load_windows_csv(windows_csv)
    committed = {(r["video"], r["variant"]): r["bitrate_kbps"] for r in rows}
    cache = Path(det_cache)
    det = create_detector(default_model())
    by_key = {(r["video"], r["variant"], r["window_start"]): r for r in rows}
    dets, videos = {}, []
    for stem, src in SOURCES.items():
        vdir = Path(glob.glob(f"{variants_root}/{stem}-*")[0])
        man = json.loads((vdir / "variants.json").read_text())
        ref_path = shared_dir() / "videos" / src
        same = [v for v in man["variants"] if v["maxrate_kbps"] is None
                and abs(v["bitrate_kbps"] - committed[(stem, v["name"])]) <= 1e-3]
        ref = cached(det, ref_path, cache)
        got = {v["name"]: cached(det, vdir / v["path"], cache) for v in same}
        got = {k: g for k, g in got.items() if g is not None}
        if ref is not None and got:
            dets[stem] = ({"__ref__": ref} | got, probe(ref_path))
            videos.append(stem)
            print(f"{stem}: {len(same)} of {len(man['variants'])} variants are uncapped and reproduced the committed bitrate, "
                  f"{len(got)} of them with detections cached:", " ".join(got), file=sys.stderr)
    print("videos with every detection cached:", videos, file=sys.stderr)
    metrics = metric_columns_of(rows)
    settings = AnalysisSettings(metrics=metrics)
    out = []
    for g in DEFAULT_SENSITIVITY_GT:
        for p in DEFAULT_SENSITIVITY_PRED:
            table = []
            for stem in videos:
                got, info = dets[stem]
                fi_r, ref = got["__ref__"]
                gt = pseudo_ground_truth(ref, g)
                for name, (fi, d) in got.items():
                    if name == "__ref__":
                        continue
                    assert np.array_equal(fi, fi_r)
                    if p > 0:
                        d = [x.select(x.scores >= p) for x in d]
                    for w in window_ap(gt, d, fi, window=100, image_size=(info.height, info.width)):
                        r = dict(by_key[(stem, name, w.start)], n_gt=w.n_gt, ap50=w.ap50, ap=w.ap)
                        table.append(r)
            if (g, p) == (0.5, 0.0):  # the committed run's setting: how far AP is from windows.csv's
                diff = np.array([abs(r["ap"] - by_key[(r["video"], r["variant"], r["window_start"])]["ap"])
                                 for r in table if r["ap"] is not None])
                print(f"|AP - windows.csv AP| at gt 0.5, pred 0 over {len(diff)} windows: max {diff.max():.3f}, "
                      f"mean {diff.mean():.4f}, {(diff > 1e-6).sum()} differ", file=sys.stderr)
            out += [dict(gt_score=g, pred_score=p, videos=" ".join(videos), **h)
                    for h in headline(table, videos, settings)]
            print(g, p, file=sys.stderr)
    Path(out_csv).write_text(rows_to_csv(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
