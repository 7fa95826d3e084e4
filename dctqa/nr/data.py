"""Labelled frames for the no-reference model, from the study's encode and score stages.

``build_dataset(videos, out)`` runs (or reuses, through the study's stage cache under
``out/cache``) the study's ``encode`` stage (25 variants per video by default) and ``score``
stage (every ``metric_stride``-th frame), and writes ``out/labels.csv`` (one row per labelled
frame: ``video, variant, crf, frame, path, q, log_q`` and the blockiness, blur, noise,
contrast and PSNR indicators of the ridge baseline) and ``out/dataset.json`` (metric version,
backbone and its sha256, target column). Point ``out`` at a hard-link copy of a finished
study (``cp -al STUDY_OUT DIR``) to reuse its encodes and scores, or pass ``labels_csv`` (a
study's ``frames.csv``) to take the scores from it instead of the score stage.

Extra training-only content (``extra_skimage``): slow pans over scikit-image's bundled colour
photographs (:mod:`dctqa.study.clips`, as ``dctqa demo`` makes its clip), written to
``out/extra/skimage-NAME.mkv`` and put through the same encode and score stages (always the
score stage: a study's ``frames.csv`` has no rows for them). Their rows have ``train_only = 1``;
every split puts them in the training set and never in a test set.

Splits by content (:func:`split_rows`): *unseen* holds one video out; *seen* holds out every
4th window of 100 source frames of each video (all variants), dropping training frames
within ``gap`` frames of a held-out window; *random* (the paper's protocol, leaky: near-
identical neighbouring frames land on both sides) holds out a random quarter of frames.
Training-only rows are set aside first and added to the training set after (so a dataset
without them splits exactly as before).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import InputError
from ..fileio import parse_number, read_csv_rows, read_json, strict_json

if TYPE_CHECKING:
    from ..study.codec import EncodeSettings

DATA_FORMAT = 1
INDICATORS = ("blockiness", "blur", "noise", "contrast")
SPLITS = ("unseen", "seen", "random")
EXTRA_PREFIX = "skimage-"  # video name of an extra clip: EXTRA_PREFIX + photograph name
#: The domain of the study's dctqa column the model learns to predict.
TARGET_DOMAIN = "spectral"


def target_column(backbone: str) -> str:
    """The study's column holding the target Q for ``backbone``: dctqa in the spectral domain
    (:func:`dctqa.study.scoring.column_name`, e.g. ``dctqa_spectral_yolox_nano``)."""
    from ..study.scoring import column_name

    return column_name(TARGET_DOMAIN, backbone)


def backbone_identity(backbone: str, cache_root: Path | None = None) -> str:
    """sha256 of an ``onnx:PATH`` backbone's file, else the torchvision name
    (:func:`dctqa.study.scoring.model_identity`)."""
    from ..study.scoring import model_identity

    return model_identity(backbone, cache_root or Path(os.environ.get("TMPDIR", "/tmp")))


def _csv_labels(path: Path, variants: dict, column: str) -> dict:
    """Per (stem, variant) arrays read from a study's ``frames.csv``."""

    got: dict[tuple[str, str], dict[str, list]] = {}
    rows = read_csv_rows(path, "a study's frames.csv (--labels)", required=("video", "variant", "frame", column))
    for i, row in enumerate(rows):
        d = got.setdefault((row["video"], row["variant"]), {})
        for k, val in row.items():
            if k not in ("video", "variant"):
                d.setdefault(k, []).append(parse_number(val, float, empty=math.nan,
                                                        where=f"{str(path)!r} row {i + 2}, column {k!r}"))
    out = {}
    for stem, vs in variants.items():
        for v in vs:
            if (stem, v.name) not in got:
                raise InputError(f"{path} has no rows for video {stem!r} variant {v.name!r}")
            d = got[(stem, v.name)]
            missing = [k for k in INDICATORS + ("psnr",) if k not in d]
            if missing:
                raise InputError(f"{path} lacks the column(s) {missing} (a study's frames.csv expected)")
            out[(stem, v.name)] = {k: np.asarray(val) for k, val in d.items()}
    return out


def write_extra_clips(out: Path, photos: Sequence[str], frames: int = 40,
                      size: tuple[int, int] = (288, 384)) -> list[Path]:
    """Write one pan clip per scikit-image photograph in ``photos`` to ``out/extra/skimage-NAME.mkv``
    (``frames`` frames of ``size = (h, w)`` pixels, 10 frames/s); returns their paths."""
    from ..study.clips import SKIMAGE_PHOTOS, skimage_photo, write_pan_clip

    if len(set(photos)) != len(photos):
        raise InputError(f"extra photographs listed twice: {list(photos)}")
    if frames < 2:
        raise InputError(f"extra clips need at least 2 frames, got {frames}")
    for name in photos:  # every check before the first file is written
        if name not in SKIMAGE_PHOTOS:
            raise InputError(f"unknown scikit-image photograph {name!r}; expected 'all' or names from "
                             f"{', '.join(SKIMAGE_PHOTOS)}")
        shape = skimage_photo(name).shape
        if not (0 < size[0] <= shape[0] and 0 < size[1] <= shape[1]):
            raise InputError(f"extra clip frames of {size[0]}x{size[1]} (height x width) do not fit the "
                             f"{shape[0]}x{shape[1]} photograph {name!r}")
    paths = []
    for name in photos:
        path = out / "extra" / f"{EXTRA_PREFIX}{name}.mkv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pan_clip(path, name, frames, size)
        paths.append(path)
    return paths


def build_dataset(videos: Sequence[str | os.PathLike], out: str | os.PathLike, *, backbone: str | None = None,
                  metric_stride: int = 4, labels_csv: str | os.PathLike | None = None,
                  extra_skimage: Sequence[str] = (), extra_frames: int = 40,
                  extra_size: tuple[int, int] = (288, 384), encode: EncodeSettings | None = None,
                  progress: bool = False) -> Path:
    """Write ``out/labels.csv`` and ``out/dataset.json`` (module docstring); returns ``out``.

    extra_skimage: names from :data:`dctqa.study.clips.SKIMAGE_PHOTOS` to add as training-only
    pan clips of ``extra_frames`` frames of ``extra_size = (h, w)`` pixels. encode: the study's
    :class:`~dctqa.study.codec.EncodeSettings` (default: its 25 variants)."""
    from ..backbones import check_backbone
    from ..fileio import OutputSet
    from ..log import csv_text
    from ..study.codec import EncodeSettings
    from ..study.config import StudyConfig, default_model

    backbone = backbone or default_model()
    check_backbone(backbone)  # before any encode
    if not (isinstance(metric_stride, int) and metric_stride >= 1):
        raise InputError(f"metric_stride must be an integer >= 1, got {metric_stride!r}")
    if labels_csv is not None:  # its header now; its rows once the variants are known
        read_csv_rows(labels_csv, "a study's frames.csv (--labels)",
                      required=("video", "variant", "frame", target_column(backbone)))
    out = Path(out)
    stems = [Path(v).stem for v in videos]
    clash = [s for s in stems if s.startswith(EXTRA_PREFIX)]
    if clash:
        raise InputError(f"video names starting with {EXTRA_PREFIX!r} are kept for the extra clips: {clash}")
    cfg = StudyConfig(videos=list(videos), out=out, backbones=[backbone], metric_stride=metric_stride,
                      frame_stride=math.gcd(2, metric_stride), progress=progress, encode=encode or EncodeSettings())
    inputs = [*cfg.videos, labels_csv]
    with OutputSet(inputs=inputs) as outputs:  # on failure: the folder goes if nothing finished in it
        outputs.make_dir(out, keep_work=True)
        for name in ("labels.csv", "dataset.json"):
            outputs.add(out / name)
        extra = write_extra_clips(out, list(extra_skimage), extra_frames, extra_size) if extra_skimage else []
        rows, meta = _build(cfg, backbone, labels_csv, extra, extra_skimage, extra_frames, extra_size)
        outputs.write_text(out / "labels.csv", csv_text(rows))
        outputs.write_text(out / "dataset.json", strict_json(meta, indent=2) + "\n")
    return cfg.out


def _build(cfg, backbone: str, labels_csv, extra: list[Path], extra_skimage, extra_frames: int, extra_size
           ) -> tuple[list[dict], dict]:
    """The label rows and the ``dataset.json`` document: the study's encode stage on every
    video, then the labels: ``labels_csv``'s rows for the videos given, if any, and the
    study's score stage for the others."""
    from ..constants import METRIC_VERSION
    from ..study.pipeline import encode_stage, score_stage
    from ..study.run import StudyRun, run_stages

    cfg.videos += extra  # after the checks of the videos given (their stems cannot clash: prefix above)
    column = target_column(backbone)
    extra_stems = {p.stem for p in extra}
    run = StudyRun.start(cfg, label="nr-data")
    per: dict[tuple[str, str], dict] = {}

    def label_stage(run: StudyRun) -> None:
        if labels_csv is not None:
            own = {s: vs for s, vs in run.variants.items() if s not in extra_stems}
            per.update(_csv_labels(Path(labels_csv), own, column))
        to_score = run if labels_csv is None else run.subset(extra_stems)
        if to_score.variants:
            score_stage(to_score)  # the study's score stage
        per.update({(stem, name): {"frame": arrs["frame_indices"], **arrs}
                    for stem, scored in run.frames.items() for name, arrs in scored.items()})

    run_stages(run, (encode_stage, label_stage))
    rows = _label_rows(run.variants, per, column, extra_stems)
    meta = {"format": DATA_FORMAT, "metric_version": METRIC_VERSION, "backbone": backbone,
            "backbone_sha256": backbone_identity(backbone, run.cache_root), "target": column,
            "metric_stride": cfg.metric_stride, "videos": run.hashes, "labels_from": str(labels_csv or "score stage"),
            "extra": ({"source": "scikit-image", "photos": list(extra_skimage), "frames": extra_frames,
                       "size": list(extra_size), "labels_from": "score stage", "train_only": True}
                      if extra else None),
            "rows": len(rows)}
    return rows, meta


def _label_rows(variants: dict, per: dict, column: str, extra_stems: set[str]) -> list[dict]:
    """One row per labelled frame (module docstring), ``train_only`` 1 for the extra clips."""
    rows = []
    for stem, vs in variants.items():
        for v in vs:
            d = per[(stem, v.name)]
            for i, fr in enumerate(d["frame"]):
                q = float(d[column][i])
                if not (math.isfinite(q) and q > 0):
                    raise InputError(f"{stem}/{v.name} frame {int(fr)}: target Q {q} is not a positive number")
                rows.append({"video": stem, "variant": v.name, "crf": v.crf, "frame": int(fr),
                             "path": str(Path(v.path).resolve()), "q": q, "log_q": math.log(q),
                             **{k: float(d[k][i]) for k in INDICATORS + ("psnr",)},
                             "train_only": int(stem in extra_stems)})
    return rows


def load_dataset(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict]:
    """``(rows, meta)`` of a folder written by :func:`build_dataset`."""
    p = Path(path)
    if not (p / "labels.csv").is_file() or not (p / "dataset.json").is_file():
        raise InputError(f"{str(p)!r} is not an nr-data folder (labels.csv and dataset.json expected); "
                         "make one with `dctqa nr-data VIDEO... --out DIR`")
    meta = read_json(p / "dataset.json", "an nr-data dataset.json")
    if not isinstance(meta, dict) or meta.get("format") != DATA_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{p}/dataset.json has format {got!r}, expected {DATA_FORMAT}")
    for key in ("target", "backbone"):
        if not isinstance(meta.get(key), str):
            raise InputError(f"{p}/dataset.json lacks {key!r} (a string); make the folder again with `dctqa nr-data`")
    rows = read_csv_rows(p / "labels.csv", "an nr-data labels.csv",
                         required=("video", "variant", "frame", "path", "q") + INDICATORS + ("psnr",))
    for i, r in enumerate(rows):
        where = f"{str(p / 'labels.csv')!r} row {i + 2}"
        r["frame"] = parse_number(r["frame"], int, where=f"{where}, column 'frame'")
        for k in ("q", "log_q", "crf") + INDICATORS + ("psnr",):
            r[k] = parse_number(r.get(k), float, empty=math.nan, where=f"{where}, column {k!r}")
        if not (math.isfinite(r["q"]) and r["q"] > 0):
            raise InputError(f"{where}: target q {r['q']} is not a positive number")
        if math.isnan(r["log_q"]):
            r["log_q"] = math.log(r["q"])
        r["train_only"] = r.get("train_only") not in (None, "", "0")  # absent in older folders: none
    return rows, meta


def window_key(row: dict, window: int = 100) -> tuple[str, int]:
    """The content window of a labelled frame: (video, frame // window)."""
    return row["video"], row["frame"] // window


def split_rows(rows: list[dict], split: str, *, fold: str | None = None, window: int = 100, gap: int = 10,
               every: int = 4, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` rows for ``split`` (module docstring). ``fold``: the held-out video
    (unseen split). Seen: windows ``k`` with ``k % every == every - 1`` are the test set.
    Rows with ``train_only`` set always go to the training set (after the others)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {SPLITS}")
    extra = [r for r in rows if r.get("train_only")]
    if extra:
        train, test = split_rows([r for r in rows if not r.get("train_only")], split, fold=fold, window=window,
                                 gap=gap, every=every, seed=seed)
        return train + extra, test
    if split == "unseen":
        videos = sorted({r["video"] for r in rows})
        if fold not in videos:
            raise InputError(f"the unseen split needs --fold, one of {videos}; got {fold!r}")
        return [r for r in rows if r["video"] != fold], [r for r in rows if r["video"] == fold]
    if split == "random":
        rng = np.random.default_rng(seed)
        test = rng.random(len(rows)) < 1.0 / every
        return [r for r, t in zip(rows, test) if not t], [r for r, t in zip(rows, test) if t]
    train, test = [], []
    for r in rows:
        k = r["frame"] // window
        if k % every == every - 1:
            test.append(r)
            continue
        pos = r["frame"] - k * window  # distance to the neighbouring held-out windows
        near_next = (k + 1) % every == every - 1 and pos >= window - gap
        near_prev = (k - 1) % every == every - 1 and k > 0 and pos < gap
        if not (near_next or near_prev):
            train.append(r)
    return train, test
