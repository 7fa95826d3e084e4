"""The leaky random-split model against the seen-split model on the frames both held out.

The two evaluations (eval-nr ``frames.csv``) hold different test frames, so their SROCCs are
not paired. Frames that are in the random split's test set *and* in a held-out window of the
seen split were trained on by neither model; the random model was trained on their neighbours
in the same window (the leak), the seen model on nothing of that window. This prints both
models' SROCC with true Q on those frames and the paired difference (random - seen), 95 %
intervals resampling content windows (dctqa's own machinery).

    python docs/results/nr/random/common_frames.py docs/results/nr/frames.csv \
        docs/results/nr/random/frames.csv > docs/results/nr/random/common_frames.csv
"""
from __future__ import annotations

import csv
import sys

import numpy as np

from dctqa.nr.evaluate import frame_metrics, paired_srocc_difference
from dctqa.study.stats import resample_counts


def read(path: str, model: str) -> dict:
    with open(path, newline="") as f:
        return {(r["video"], r["variant"], int(r["frame"])): r for r in csv.DictReader(f) if r["model"] == model}


def main(seen_csv: str, random_csv: str, n_boot: int = 500) -> None:
    seen, rand = read(seen_csv, "seen"), read(random_csv, "random")
    keys = sorted(set(seen) & set(rand))
    q = np.array([float(seen[k]["q"]) for k in keys])
    assert np.allclose(q, [float(rand[k]["q"]) for k in keys])
    a = np.array([float(rand[k]["dctqa_nr"]) for k in keys])
    b = np.array([float(seen[k]["dctqa_nr"]) for k in keys])
    clusters = [f"{v}:{f // 100}" for v, _, f in keys]
    counts = resample_counts(len(keys), n_boot, clusters=clusters)
    w = csv.writer(sys.stdout)
    w.writerow(["frames", "windows", "model", "srocc", "lo", "hi"])
    for name, p in (("random (leaky)", a), ("seen", b)):
        e, lo, hi = frame_metrics(q, p, counts)["srocc"]
        w.writerow([len(keys), len(set(clusters)), name, round(e, 4), round(lo, 4), round(hi, 4)])
    e, lo, hi = paired_srocc_difference(q, a, b, counts)
    w.writerow([len(keys), len(set(clusters)), "random - seen (paired)", round(e, 4), round(lo, 4), round(hi, 4)])


if __name__ == "__main__":
    main(*sys.argv[1:3])
