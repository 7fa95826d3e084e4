"""The work both engines run: plan a pair into segments, score a segment.

A :class:`SegmentScorer` holds one :class:`dctqa.Metric` (model, domain and spectra cache
loaded once); the local engine keeps one in the driver, the Ray engine one per actor.
Expected failures of a pair (missing, unreadable, damaged or mismatched files) come back as
a message in the result, so one bad pair never stops the others; anything else (a bug) raises.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..constants import DEFAULT_BACKBONE, METRIC_VERSION
from ..errors import DctqaError, InputError
from .segments import (DEFAULT_SEGMENT_FRAMES, VideoIndex, common_keyframes, index_video, iter_segment,
                       plan_segments)


@dataclass(frozen=True)
class ScoreOptions:
    """The scoring options of a run (as ``dctqa score`` takes them) and its segment size.

    frame_stride: score every N-th frame (>= 1). max_frames: source frames read per pair
    (``None``: all). segment_frames: scored frames per work unit. threads: CPU threads of each
    scorer: torch's intra-op threads and each of its two decoders' threads (so an actor that
    reserves N CPUs uses N); ``None`` leaves torch's default and ``DCTQA_DECODE_THREADS``.
    """

    backbone: str = DEFAULT_BACKBONE
    domain: str = "spectral"
    device: str = "cpu"
    weights: str | None = None
    batch_size: int = 8
    frame_stride: int = 1
    max_frames: int | None = None
    per_filter: bool = False
    segment_frames: int = DEFAULT_SEGMENT_FRAMES
    threads: int | None = None

    def check(self) -> "ScoreOptions":
        """Raise :class:`~dctqa.errors.InputError` for an out-of-range option; returns self."""
        for name, low in (("batch_size", 1), ("frame_stride", 1), ("segment_frames", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"{name} must be a whole number >= {low}, got {v!r}")
        for name in ("max_frames", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"{name} must be a whole number >= 1 or None, got {v!r}")
        return self

    def make(self) -> "SegmentScorer":
        """The scorer of these options (what an engine holds, one per actor)."""
        return SegmentScorer(self)

    def numbers_key(self) -> dict:
        """The options that change the numbers (the resume check compares them)."""
        d = asdict(self)
        for k in ("batch_size", "segment_frames", "threads", "device"):
            d.pop(k)
        return d


@dataclass
class PairPlan:
    """A pair's segments, or why it cannot be scored (``error``)."""

    key: str
    segments: list[tuple[int, int]] = field(default_factory=list)
    ref_index: VideoIndex | None = None
    dist_index: VideoIndex | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class SegmentResult:
    """Scores of one segment: ``numbers`` ``(n,)`` int64 source frame numbers, ``qk`` ``(n, K)``
    float64 per-filter Q_k (Q is their mean), or ``error``."""

    key: str
    start: int
    numbers: np.ndarray | None = None
    qk: np.ndarray | None = None
    error: str | None = None


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, DctqaError):
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return f"cannot access{where}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


class SegmentScorer:
    """One metric, many segments. ``options``: :class:`ScoreOptions`."""

    column = "dctqa"  # the value's column in frames.parquet and name in the logs

    def __init__(self, options: ScoreOptions) -> None:
        from ..metric import Metric

        if options.threads is not None:
            import torch

            torch.set_num_threads(options.threads)
        self.options = options
        self.metric = Metric(backbone=options.backbone, domain=options.domain, device=options.device,
                             weights=options.weights, batch_size=options.batch_size)

    def describe(self) -> dict:
        """``metric.params()`` plus the run's numbers-changing options (JSON-ready)."""
        return {**self.metric.params(), **self.options.numbers_key(), "metric_version": METRIC_VERSION}

    def plan(self, key: str, ref: str, dist: str) -> PairPlan:
        """Index both files (one demux pass each) and cut their common frames into segments."""
        try:
            ri, di = index_video(ref), index_video(dist)
            if (ri.width, ri.height) != (di.width, di.height):
                raise InputError(f"reference is {ri.width}x{ri.height} but distorted is {di.width}x{di.height}")
            n = min(ri.frames, di.frames)
            notes = []
            if ri.frames != di.frames:
                notes.append(f"frame counts differ: reference has {ri.frames}, distorted has {di.frames}; "
                             f"scored the first {n}")
            if self.options.max_frames is not None:
                n = min(n, self.options.max_frames)
            segs = plan_segments(n, self.options.segment_frames, self.options.frame_stride, common_keyframes(ri, di))
            return PairPlan(key, segs, ri, di, notes)
        except (DctqaError, OSError) as exc:
            return PairPlan(key, error=_message(exc))

    def score(self, key: str, ref: str, dist: str, ref_index: VideoIndex, dist_index: VideoIndex,
              start: int, stop: int) -> SegmentResult:
        """Q_k of every scored frame of source frames ``start .. stop - 1``, batch by batch
        (memory: one batch of frames, whatever the segment's length)."""
        stride, bs = self.options.frame_stride, self.metric.batch_size
        try:
            threads = self.options.threads
            its = (iter_segment(ref, ref_index, start, stop, stride, threads),
                   iter_segment(dist, dist_index, start, stop, stride, threads))
            out, batch = [], []
            for fr, fd in zip(*its):
                batch.append((fr, fd))
                if len(batch) == bs:
                    out.append(self._batch(batch))
                    batch = []
            if batch:
                out.append(self._batch(batch))
            for it in its:  # both iterators to their end: a missing frame raises
                for _ in it:
                    pass
            qk = np.concatenate(out) if out else np.zeros((0, self.metric.backbone.num_filters))
            first = -(-start // stride) * stride
            numbers = np.arange(first, stop, stride, dtype=np.int64)
            if len(numbers) != len(qk):
                raise DctqaError(f"segment {start}..{stop}: {len(qk)} frames scored, {len(numbers)} expected")
            return SegmentResult(key, start, numbers, qk)
        except (DctqaError, OSError) as exc:
            return SegmentResult(key, start, error=_message(exc))

    def _batch(self, batch: list) -> np.ndarray:
        ref = np.stack([p[0] for p in batch])
        dist = np.stack([p[1] for p in batch])
        return np.asarray(self.metric.score(ref, dist, per_filter=True), dtype=np.float64)


def input_stamp(path: str | os.PathLike) -> dict:
    """``{"size", "mtime_ns"}`` of a local file (what the resume check compares), ``{}`` if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
