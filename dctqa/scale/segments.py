"""Frame segments: a video pair cut into runs of frames that decode and score on their own.

A segment is the source frames ``start .. stop - 1`` (presentation order, 0-based, as
:func:`dctqa.io.iter_frames` numbers them). It is decoded by seeking to the last keyframe at
or before ``start`` and dropping the frames before ``start``, so the frames (and therefore
every per-frame Q) are exactly those one pass over the whole file gives. A file whose
timestamps cannot place every frame (no or repeated timestamps, a still image) is decoded
from its first frame instead: slower, the same frames.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError, VideoError
from ..io import set_decode_threads, shown_path

#: Scored frames per segment by default (``--segment-frames``).
DEFAULT_SEGMENT_FRAMES = 256


@dataclass(frozen=True)
class VideoIndex:
    """Where the frames of one video file are, from one demux pass (no decoding).

    frames: frames the file holds (packets that carry one). width / height: pixels.
    pts: the frames' presentation timestamps in presentation order (stream time base), or
    ``None`` when they cannot place every frame (then segments decode from frame 0).
    keyframes: presentation indices of the keyframes, ascending (``(0,)`` without ``pts``).
    """

    path: str
    frames: int
    width: int
    height: int
    pts: tuple[int, ...] | None
    keyframes: tuple[int, ...]

    def seek_point(self, start: int) -> int | None:
        """Presentation index of the last keyframe at or before frame ``start``, or ``None``
        when the file must be decoded from its beginning."""
        if self.pts is None or start == 0:
            return None
        i = bisect.bisect_right(self.keyframes, start) - 1
        return None if i < 0 or self.keyframes[i] == 0 else self.keyframes[i]


def _open(path: str | os.PathLike):
    import av

    shown = shown_path(path)
    if not os.path.isfile(path):
        raise VideoError(f"{shown!r} is not a file (missing, or a folder or device)")
    try:
        c = av.open(os.fspath(path))
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot open {shown!r}: {exc.strerror or exc}") from None
    if not c.streams.video:
        c.close()
        raise VideoError(f"{shown!r} holds no video stream")
    return c


def index_video(path: str | os.PathLike) -> VideoIndex:
    """One demux pass over ``path`` (a local file): its frame count and keyframes.

    Raises :class:`~dctqa.errors.VideoError` for a missing, unreadable or empty file or a
    packet flagged corrupt.
    """
    import av

    shown = shown_path(path)
    with _open(path) as c:
        s = c.streams.video[0]
        stamps, keys, usable = [], [], True
        try:
            for p in c.demux(s):
                if p.size == 0:
                    continue  # the demuxer's flush packet
                if p.is_corrupt:
                    raise VideoError(f"{shown!r} is damaged: packet at {p.pts} flagged corrupt")
                if p.pts is None:
                    usable = False
                stamps.append(p.pts)
                keys.append(bool(p.is_keyframe))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{shown!r} is damaged: demuxing failed ({exc.strerror or exc})") from None
        width, height = int(s.width), int(s.height)
    if not stamps:
        raise VideoError(f"{shown!r} holds no frame")
    if usable and len(set(stamps)) == len(stamps):
        order = sorted(stamps)
        rank = {t: i for i, t in enumerate(order)}
        keyframes = tuple(sorted(rank[t] for t, k in zip(stamps, keys) if k))
        return VideoIndex(shown, len(stamps), width, height, tuple(order), keyframes or (0,))
    return VideoIndex(shown, len(stamps), width, height, None, (0,))


def plan_segments(frames: int, segment_frames: int, stride: int = 1,
                  keyframes: Sequence[int] = ()) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` source-frame ranges covering frames ``0 .. frames - 1``, each
    holding about ``segment_frames`` scored frames (every ``stride``-th).

    ``keyframes``: presentation indices where both files of the pair can start decoding
    (see :func:`common_keyframes`). A cut moves back to the last of them at or before its
    nominal place when that keeps the segment at least half as long, so that a segment
    decodes no frame it then drops; otherwise it stays put (and its segment decodes from
    the keyframe before it). The scores do not depend on where the cuts are.
    """
    if segment_frames < 1 or stride < 1:
        raise InputError(f"segment_frames and stride must be >= 1, got {segment_frames} and {stride}")
    span = segment_frames * stride
    keys = sorted(set(keyframes))
    cuts, start = [], 0
    while start < frames:
        stop = min(start + span, frames)
        if stop < frames:
            i = bisect.bisect_right(keys, stop) - 1
            if i >= 0 and keys[i] >= start + max(1, span // 2):
                stop = keys[i]
        cuts.append((start, stop))
        start = stop
    return cuts


def common_keyframes(*indexes: VideoIndex) -> tuple[int, ...]:
    """Presentation indices that are keyframes of every one of ``indexes`` (empty when a
    file's timestamps cannot place its frames: such a file decodes from frame 0 anyway)."""
    if any(ix.pts is None for ix in indexes):
        return ()
    common = set(indexes[0].keyframes)
    for ix in indexes[1:]:
        common &= set(ix.keyframes)
    return tuple(sorted(common))


def _frame_array(frame, shown: str, shape: tuple[int, int]) -> np.ndarray:
    if frame.is_corrupt:
        raise VideoError(f"{shown!r} is damaged: a frame decoded with errors (flagged corrupt)")
    if (frame.width, frame.height) != shape:
        raise VideoError(f"{shown!r} changes frame size mid-stream ({frame.width}x{frame.height})")
    return frame.to_ndarray(format="rgb24")


def iter_segment(path: str | os.PathLike, index: VideoIndex, start: int, stop: int,
                 stride: int = 1, threads: int | None = None) -> Iterator[np.ndarray]:
    """Frames ``start <= i < stop`` with ``i % stride == 0`` of ``path``, ``H x W x 3`` uint8 RGB,
    in order: exactly the frames :func:`dctqa.io.iter_frames` yields for those numbers.
    ``threads``: decoder threads (:func:`dctqa.io.set_decode_threads`; ``None``: the setting).

    Raises :class:`~dctqa.errors.VideoError` when a frame of the range does not decode.
    """
    import av

    if not 0 <= start < stop <= index.frames:
        raise InputError(f"segment {start}..{stop} is outside the {index.frames} frames of {index.path!r}")
    expected = start
    try:
        frames = _decode_from(path, index, start, threads)
        for i, frame in frames:
            if i < start:
                continue
            if i != expected:
                raise VideoError(f"{index.path!r}: frame {expected} did not decode (got frame {i} next)")
            if i % stride == 0:
                yield _frame_array(frame, index.path, (index.width, index.height))
            expected += 1
            if expected >= stop:
                return
    except av.error.FFmpegError as exc:
        raise VideoError(f"{index.path!r} is damaged: decoding failed after frame {expected} "
                         f"({exc.strerror or exc})") from None
    raise VideoError(f"{index.path!r}: only {expected} of {index.frames} frames decode (truncated?)")


def _decode_from(path, index: VideoIndex, start: int, threads: int | None) -> Iterator[tuple[int, object]]:
    """``(presentation index, frame)`` from the keyframe before ``start`` (or frame 0) on."""
    key = index.seek_point(start)
    with _open(path) as c:
        s = c.streams.video[0]
        set_decode_threads(s, threads)
        if key is None:
            yield from enumerate(c.decode(s))
            return
        rank = {t: i for i, t in enumerate(index.pts)}
        c.seek(index.pts[key], stream=s, backward=True, any_frame=False)
        first, fallback = True, False
        for frame in c.decode(s):
            i = rank.get(frame.pts)
            if first and (i is None or i > start):
                fallback = True  # the seek did not land where the index says: decode from the start
                break
            if i is None:
                raise VideoError(f"{index.path!r}: a frame with an unknown timestamp ({frame.pts}) decoded")
            first = False
            yield i, frame
    if not fallback:
        return
    yield from _decode_from(path, VideoIndex(index.path, index.frames, index.width, index.height, None, (0,)),
                            start, threads)
