"""Extra training-only content for the no-reference model (pan clips over scikit-image's
photographs, ``dctqa nr-data --extra-skimage``) and the paired comparison of two evaluations
(``dctqa eval-nr --paired-with``)."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from dctqa.cli import main
from dctqa.errors import InputError
from dctqa.nr.data import EXTRA_PREFIX, INDICATORS, build_dataset, load_dataset, split_rows
from dctqa.study.clips import SKIMAGE_PHOTOS, pan_frames, skimage_photo, write_pan_clip
from tests.helpers import make_video


def _rows(videos=("alpha", "beta"), frames=40, train_only=False) -> list[dict]:
    return [{"video": v, "variant": f"crf{c}", "frame": f, "train_only": train_only}
            for v in videos for c in (12, 48) for f in range(0, frames, 2)]


@pytest.mark.parametrize("split, fold", [("seen", None), ("unseen", "alpha"), ("unseen", "beta"), ("random", None)])
def test_extra_rows_only_ever_train(split, fold) -> None:
    own = _rows()
    extra = _rows((EXTRA_PREFIX + "coffee", EXTRA_PREFIX + "rocket"), train_only=True)
    for mixed in (own + extra, extra + own, [r for pair in zip(own, extra) for r in pair]):
        tr, te = split_rows(mixed, split, fold=fold, window=10, gap=1)
        assert not any(r["train_only"] for r in te)
        assert sum(r["train_only"] for r in tr) == len(extra)  # every extra row, in no test set
        tr0, te0 = split_rows(own, split, fold=fold, window=10, gap=1)  # the rest split exactly as without
        assert te == te0 and [r for r in tr if not r["train_only"]] == tr0
    with pytest.raises(InputError, match="--fold"):  # an extra clip is never a held-out video
        split_rows(own + extra, "unseen", fold=EXTRA_PREFIX + "coffee")


def test_pan_clip_checks_and_frames(tmp_path) -> None:
    photo = skimage_photo("chelsea")
    assert photo.dtype == np.uint8 and photo.shape[2] == 3
    f = pan_frames(photo, 5, (32, 48))
    assert f.shape == (5, 32, 48, 3)
    assert np.array_equal(f[0], photo[:32, :48]) and np.array_equal(f[-1], photo[-32:, -48:])
    with pytest.raises(InputError, match="does not fit"):
        pan_frames(photo, 5, (photo.shape[0] + 1, 48))
    with pytest.raises(InputError, match="at least 2"):
        pan_frames(photo, 1, (32, 48))
    with pytest.raises(InputError, match="unknown scikit-image photograph"):
        skimage_photo("lena")
    assert all(skimage_photo(n).shape[0] >= 288 and skimage_photo(n).shape[1] >= 384 for n in SKIMAGE_PHOTOS)
    from dctqa.io import read_frames

    clip = write_pan_clip(tmp_path / "c.mkv", "rocket", 3, (32, 48))
    assert np.array_equal(read_frames(tmp_path / "c.mkv"), clip)  # lossless


def test_cli_lists_every_photograph_and_refuses_bad_extras(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["nr-data", "--help"])
    helptext = capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
    assert all(n in helptext for n in SKIMAGE_PHOTOS)
    video = tmp_path / "v.mp4"
    make_video(video, np.zeros((4, 32, 32, 3), np.uint8), crf=30, preset="ultrafast")
    for extra, msg in (("lena", "unknown scikit-image photograph"), ("coffee,coffee", "listed twice")):
        assert main(["nr-data", str(video), "--out", str(tmp_path / "o"), "--extra-skimage", extra,
                     "--backbone", "pixel", "--quiet"]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    clash = tmp_path / f"{EXTRA_PREFIX}x.mp4"
    clash.write_bytes(video.read_bytes())
    assert main(["nr-data", str(clash), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "kept for the extra clips" in capsys.readouterr().err


def test_nr_data_builds_training_only_rows_for_a_clip(yolox_backbone, tmp_path) -> None:
    """One tiny video and one tiny pan clip, 2 variants, YOLOX-Nano's score stage; then the
    video's labels from a study-style frames.csv with the clip still scored (from the cache)."""
    from dctqa.study.codec import EncodeSettings

    g = np.random.default_rng(0)
    video = tmp_path / "tiny.mp4"
    make_video(video, g.integers(0, 256, (8, 64, 96, 3), dtype=np.uint8), crf=10, preset="ultrafast")
    enc = EncodeSettings(crfs=(20, 45), cap_bpp=(), preset="ultrafast")
    kw = dict(backbone=yolox_backbone, metric_stride=4, extra_skimage=["coffee"], extra_frames=8,
              extra_size=(64, 96), encode=enc)
    out = build_dataset([video], tmp_path / "d", **kw)
    rows, meta = load_dataset(out)
    extra = [r for r in rows if r["train_only"]]
    assert {r["video"] for r in extra} == {EXTRA_PREFIX + "coffee"} and len(extra) == 2 * 2  # 2 variants x frames 0, 4
    assert {r["frame"] for r in extra} == {0, 4} and all(r["q"] > 1.0 and math.isfinite(r["log_q"]) for r in extra)
    assert not any(r["train_only"] for r in rows if r["video"] == "tiny") and len(rows) == 8
    by_crf = {r["crf"]: r["q"] for r in extra if r["frame"] == 0}
    assert by_crf[45] > by_crf[20]  # harder compression, larger Q
    assert meta["extra"]["photos"] == ["coffee"] and meta["extra"]["train_only"] is True
    assert (out / "extra" / f"{EXTRA_PREFIX}coffee.mkv").is_file()
    tr, te = split_rows(rows, "unseen", fold="tiny")
    assert len(te) == 4 and all(r["train_only"] for r in tr)

    frames_csv = tmp_path / "frames.csv"  # the study table's layout for the video only
    col = meta["target"]
    with open(frames_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["video", "variant", "frame", col, *INDICATORS, "psnr"])
        w.writeheader()
        for r in rows:
            if not r["train_only"]:
                w.writerow({"video": r["video"], "variant": r["variant"], "frame": r["frame"], col: r["q"],
                            **{k: r[k] for k in (*INDICATORS, "psnr")}})
    again, meta2 = load_dataset(build_dataset([video], tmp_path / "d", labels_csv=frames_csv, **kw))
    assert meta2["labels_from"] == str(frames_csv)
    key = lambda r: (r["video"], r["variant"], r["frame"])  # noqa: E731
    assert sorted((key(r), round(r["q"], 4), r["train_only"]) for r in again) == \
        sorted((key(r), round(r["q"], 4), r["train_only"]) for r in rows)
