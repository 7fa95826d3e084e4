"""Detections of whole videos, cached on disk.

One ``.npz`` per (video content, detector, settings, frame stride) under ``cache_dir``;
the file name is the sha256 of that key, so renaming or copying a video keeps its cache
and changing any detector setting misses it. Files are written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError, VideoError
from ..fileio import atomic_output, file_sha256
from ..io import iter_frames, probe
from ..progress import progress as progress_bar
from ..settings import cache_root
from .types import Detections, Detector

#: Bumped when the layout of the cache files changes.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``<cache root>/detections``: ``$DCTQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/dctqa``
    (``~/.cache/dctqa``); see :func:`dctqa.settings.cache_root`."""
    return cache_root() / "detections"


def _frame_count(path: Path) -> int | None:
    """Frame count from the container header (for the progress bar only; may be absent)."""
    try:
        return int(probe(path).frames) or None
    except Exception:  # a missing count only costs the bar its total
        return None


def cache_key(video_sha256: str, detector: Detector, frame_stride: int) -> str:
    """Hex sha256 of everything that determines the cached detections."""
    doc = {"format": CACHE_FORMAT, "video_sha256": video_sha256, "detector": detector.name,
           "settings": detector.settings(), "frame_stride": int(frame_stride)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def save_detections(path: Path, frame_indices: np.ndarray, dets: list[Detections], meta: dict) -> None:
    """Write detections to ``path`` (.npz) through a temporary file and ``os.replace``."""
    counts = np.array([len(d) for d in dets], dtype=np.int64)
    cat = (lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt))
    with atomic_output(path, "wb") as fh:
        np.savez(fh, frame_indices=np.asarray(frame_indices, dtype=np.int64), counts=counts,
                 boxes=cat([d.boxes for d in dets], (0, 4), np.float32),
                 scores=cat([d.scores for d in dets], (0,), np.float32),
                 labels=cat([d.labels for d in dets], (0,), np.int64),
                 meta=np.array(json.dumps(meta, sort_keys=True)))


def load_detections(path: Path) -> tuple[np.ndarray, list[Detections], dict]:
    """Read a file written by :func:`save_detections`: (frame_indices, detections, meta)."""
    with np.load(path, allow_pickle=False) as z:
        fi, counts = z["frame_indices"], z["counts"]
        boxes, scores, labels = z["boxes"], z["scores"], z["labels"]
        meta = json.loads(str(z["meta"]))
    if len(fi) != len(counts) or not (counts.sum() == len(boxes) == len(scores) == len(labels)):
        raise ValueError("inconsistent array lengths")
    ends = np.cumsum(counts)
    starts = ends - counts
    dets = [Detections(boxes[a:b], scores[a:b], labels[a:b]) for a, b in zip(starts, ends)]
    return fi, dets, meta


def cached_detect(detector: Detector, video_path: str | os.PathLike, frame_stride: int = 1,
                  cache_dir: str | os.PathLike | None = None, progress: bool = False,
                  batch_size: int = 8) -> tuple[np.ndarray, list[Detections]]:
    """Detections on every ``frame_stride``-th frame of a video, from the cache when present.

    Returns ``frame_indices`` (F,) int64, the 0-based decode-order numbers of the sampled
    frames (0, stride, 2*stride, ...), and one :class:`Detections` per sampled frame.
    The cache key is the sha256 of the video's bytes (hashed once per path, size and
    mtime), ``detector.name``, ``detector.settings()`` and the stride; ``cache_dir``
    defaults to :func:`default_cache_dir`. An unreadable cache file is recomputed.
    Raises VideoError for videos that cannot be decoded, InputError for a bad stride.
    """
    if int(frame_stride) != frame_stride or frame_stride < 1:
        raise InputError(f"frame_stride must be a positive integer, got {frame_stride!r}")
    frame_stride = int(frame_stride)
    video_path = Path(video_path)
    if not video_path.is_file():
        raise VideoError(f"video {str(video_path)!r} does not exist")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    video_sha = file_sha256(video_path, memo_dir=cache_dir)
    key = cache_key(video_sha, detector, frame_stride)
    target = cache_dir / f"{key}.npz"
    if target.is_file():
        try:
            fi, dets, meta = load_detections(target)
            if meta.get("key") == key:
                return fi, dets
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or foreign file: recompute and overwrite

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
    fi = np.arange(len(dets), dtype=np.int64) * frame_stride
    meta = {"key": key, "video": str(video_path), "video_sha256": video_sha, "detector": detector.name,
            "settings": detector.settings(), "frame_stride": frame_stride, "format": CACHE_FORMAT}
    save_detections(target, fi, dets, meta)
    return fi, dets
