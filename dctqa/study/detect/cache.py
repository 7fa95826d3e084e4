"""Detections of whole videos, cached on disk in the study's one stage cache.

One entry of stage ``detect`` of a :class:`~dctqa.study.stages.StageCache` rooted at
``cache_dir`` (``<cache_dir>/detect/<sha256 of the key>.npz``) per (video content,
detector, settings, frame stride): renaming or copying a video keeps its cache and
changing any detector setting misses it. Files are written atomically and embed their key,
so a foreign or unreadable file is recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ...errors import InputError, VideoError
from ...fileio import file_sha256, strict_json
from ...io import iter_frames, probe
from ...progress import progress as progress_bar
from ...settings import cache_root
from ..stages import StageCache
from .types import Detections, Detector

#: Bumped when what a cached entry means changes (it is part of every key).
CACHE_FORMAT = 1
#: The stage name of the detections in the stage cache.
STAGE = "detect"


def default_cache_dir() -> Path:
    """The cache root used when none is given: ``$DCTQA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/dctqa`` (``~/.cache/dctqa``); see :func:`dctqa.settings.cache_root`.
    Detections land in its ``detect/`` folder."""
    return cache_root()


def _frame_count(path: Path) -> int | None:
    """Frame count from the container header (for the progress bar only; may be absent)."""
    try:
        return int(probe(path).frames) or None
    except Exception:  # a missing count only costs the bar its total
        return None


def key_doc(video_sha256: str, detector: Detector, frame_stride: int) -> dict:
    """Everything that determines the cached detections (the stage key)."""
    return {"format": CACHE_FORMAT, "video_sha256": video_sha256, "detector": detector.name,
            "settings": detector.settings(), "frame_stride": int(frame_stride)}


def cache_key(video_sha256: str, detector: Detector, frame_stride: int) -> str:
    """Hex sha256 of :func:`key_doc` (the stage cache's file name; the study's AP keys use it)."""
    return hashlib.sha256(strict_json(key_doc(video_sha256, detector, frame_stride),
                                       sort_keys=True).encode()).hexdigest()


def _to_arrays(frame_indices: np.ndarray, dets: list[Detections]) -> dict[str, np.ndarray]:
    counts = np.array([len(d) for d in dets], dtype=np.int64)
    cat = (lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt))
    return {"frame_indices": np.asarray(frame_indices, dtype=np.int64), "counts": counts,
            "boxes": cat([d.boxes for d in dets], (0, 4), np.float32),
            "scores": cat([d.scores for d in dets], (0,), np.float32),
            "labels": cat([d.labels for d in dets], (0,), np.int64)}


def _from_arrays(z: dict[str, np.ndarray]) -> tuple[np.ndarray, list[Detections]]:
    fi, counts = z["frame_indices"], z["counts"]
    boxes, scores, labels = z["boxes"], z["scores"], z["labels"]
    if len(fi) != len(counts) or not (counts.sum() == len(boxes) == len(scores) == len(labels)):
        raise VideoError("inconsistent cached detections (array lengths differ)")
    ends = np.cumsum(counts)
    starts = ends - counts
    return fi, [Detections(boxes[a:b], scores[a:b], labels[a:b]) for a, b in zip(starts, ends)]


def lookup_detections(detector: Detector, video_path: str | os.PathLike, frame_stride: int,
                      cache_dir: str | os.PathLike) -> tuple[np.ndarray, list[Detections]] | None:
    """The cached detections of a video, or ``None`` when not cached (nothing is computed)."""
    video_sha = file_sha256(Path(video_path), memo_dir=Path(cache_dir))
    hit = StageCache(cache_dir).cached_arrays(STAGE, key_doc(video_sha, detector, frame_stride))
    return None if hit is None else _from_arrays(hit[0])


def _detect_all(detector: Detector, video_path: Path, frame_stride: int, progress: bool,
                batch_size: int) -> list[Detections]:
    """Run ``detector`` on every ``frame_stride``-th frame, ``batch_size`` frames per call."""
    n = _frame_count(video_path) if progress else None
    bar = progress_bar(None if n is None else -(-n // frame_stride), f"detect {video_path.name}",
                       unit="frame", enabled=progress)
    dets: list[Detections] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        out = detector.detect(batch)
        if len(out) != len(batch):
            raise RuntimeError(f"detector {detector.name} returned {len(out)} results for {len(batch)} frames")
        dets.extend(out)
        bar.update(len(batch))
        batch.clear()

    with bar:
        for frame in iter_frames(video_path, frame_stride):
            batch.append(frame)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    if not dets:
        raise VideoError(f"{str(video_path)!r} yielded no frames")
    return dets


def cached_detect(detector: Detector, video_path: str | os.PathLike, frame_stride: int = 1,
                  cache_dir: str | os.PathLike | None = None, progress: bool = False,
                  batch_size: int = 8) -> tuple[np.ndarray, list[Detections]]:
    """Detections on every ``frame_stride``-th frame of a video, from the cache when present.

    Returns ``frame_indices`` (F,) int64, the 0-based decode-order numbers of the sampled
    frames (0, stride, 2*stride, ...), and one :class:`Detections` per sampled frame.
    The cache key is the sha256 of the video's bytes (hashed once per path, size and
    mtime), ``detector.name``, ``detector.settings()`` and the stride; ``cache_dir`` (the
    stage cache's root) defaults to :func:`default_cache_dir`. An unreadable cache file is
    recomputed. Raises VideoError for videos that cannot be decoded, InputError for a bad stride.
    """
    if int(frame_stride) != frame_stride or frame_stride < 1:
        raise InputError(f"frame_stride must be a positive integer, got {frame_stride!r}")
    frame_stride = int(frame_stride)
    video_path = Path(video_path)
    if not video_path.is_file():
        raise VideoError(f"video {str(video_path)!r} does not exist")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = key_doc(file_sha256(video_path, memo_dir=cache_dir), detector, frame_stride)
    arrays, _ = StageCache(cache_dir).arrays(
        STAGE, key, lambda: detection_arrays(detector, video_path, frame_stride, progress, batch_size))
    return _from_arrays(arrays)


def detection_arrays(detector: Detector, video_path: str | os.PathLike, frame_stride: int = 1,
                     progress: bool = False, batch_size: int = 8) -> dict[str, np.ndarray]:
    """What :func:`cached_detect` stores for a video (computed, never cached): ``frame_indices``
    (F,), ``counts`` (F,) int64, ``boxes`` (D, 4) float32 pixels, ``scores`` (D,) float32 and
    ``labels`` (D,) int64 of all D detections, frame after frame."""
    video_path = Path(video_path)
    dets = _detect_all(detector, video_path, frame_stride, progress, batch_size)
    return _to_arrays(np.arange(len(dets), dtype=np.int64) * frame_stride, dets)


def store_detections(detector: Detector, video_path: str | os.PathLike, frame_stride: int,
                     cache_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` (:func:`detection_arrays` of the same detector, video and stride, from
    any process) where :func:`cached_detect` finds them; :class:`VideoError` when they do not
    hang together."""
    _from_arrays(arrays)  # checked before it is stored
    key = key_doc(file_sha256(Path(video_path), memo_dir=Path(cache_dir)), detector, int(frame_stride))
    StageCache(cache_dir).arrays(STAGE, key, lambda: arrays)
