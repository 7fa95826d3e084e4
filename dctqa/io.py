"""Reading frames from images and videos (anything FFmpeg reads) through PyAV.

Frames come out as ``H x W x 3`` uint8 RGB NumPy arrays, one at a time, so memory
stays bounded whatever the video's length.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError, VideoError

_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif",
                  "pgm_pipe", "ppm_pipe", "pgmyuv_pipe", "qoi_pipe", "j2k_pipe", "dpx_pipe", "exr_pipe",
                  "sgi_pipe", "pam_pipe", "pbm_pipe", "pcx_pipe", "psd_pipe", "sunrast_pipe", "xbm_pipe"}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the first video stream.

    ``frames`` is the container's frame count, or ``None`` where it does not store one;
    ``fps`` is frames per second (``None`` for still images).
    """

    path: str
    width: int
    height: int
    frames: int | None
    fps: float | None
    codec: str
    pix_fmt: str | None
    is_image: bool


def _open(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.exists():
        raise VideoError(f"{str(p)!r}: no such file")
    if p.is_dir():
        raise VideoError(f"{str(p)!r} is a directory, expected an image or video file")
    if not p.is_file():  # reading a FIFO or device would wait forever or never end
        raise VideoError(f"{str(p)!r} is not a regular file (a FIFO, socket or device); expected an image "
                         f"or video file")
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise VideoError(f"{str(p)!r}: FFmpeg cannot read it as an image or video ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{str(p)!r} has no video stream")
    return container


def _check_pix_fmt(path: str, pix_fmt: str | None) -> None:
    if pix_fmt is None:
        return
    if pix_fmt.startswith(("gray", "ya", "mono")):
        raise InputError(f"{path!r} is grayscale ({pix_fmt}); dctqa needs 3 colour channels. "
                         f"Convert it to RGB first (e.g. ffmpeg -i IN -pix_fmt rgb24 OUT.png)")
    if pix_fmt in ("rgba", "bgra", "argb", "abgr", "rgba64le", "rgba64be") or pix_fmt.startswith(("yuva", "gbrap")):
        raise InputError(f"{path!r} has an alpha channel ({pix_fmt}); dctqa needs opaque RGB frames. "
                             f"Flatten it onto a background first (e.g. ffmpeg -i IN -pix_fmt rgb24 OUT.png)")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Stream facts of ``path`` without decoding it. Raises :class:`VideoError`."""
    with _open(path) as c:
        s = c.streams.video[0]
        is_image = c.format.name in _IMAGE_FORMATS or any(n in _IMAGE_FORMATS for n in c.format.name.split(","))
        rate = s.average_rate or s.guessed_rate
        return VideoInfo(path=str(path), width=int(s.width), height=int(s.height),
                         frames=(1 if is_image else (int(s.frames) or None)),
                         fps=None if is_image or not rate else float(Fraction(rate)),
                         codec=s.codec_context.name, pix_fmt=s.format.name if s.format else None,
                         is_image=is_image)


@dataclass
class DecodeReport:
    """What went wrong while decoding one file (filled by :func:`iter_frames`).

    errors: decoder/demuxer failures and packets or frames FFmpeg flagged corrupt.
    missing_frames: frames the container announces (frame count, duration, or a cut
    transport-stream packet) that never decoded: truncation.
    notes: one line per problem (the first 20), for logs.
    frames: frames decoded (after ``max_frames``), set when the file has been read to its end.
    """

    path: str
    errors: int = 0
    missing_frames: int = 0
    notes: list[str] = field(default_factory=list)
    frames: int | None = None

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.missing_frames == 0

    def summary(self) -> str:
        return (f"{self.path!r}: {self.errors} decode error(s), {self.missing_frames} frame(s) missing "
                f"({'; '.join(self.notes[:3])}{'; ...' if len(self.notes) > 3 else ''})")


_MAX_NOTES = 20  # a long damaged video must not grow the report without bound


def _problem(report: DecodeReport, ignore: bool, note: str, errors: int = 0, missing: int = 0) -> None:
    report.errors += errors
    report.missing_frames += missing
    if len(report.notes) < _MAX_NOTES:
        report.notes.append(note)
    if not ignore:
        raise VideoError(f"{report.path!r} is damaged: {note}. Repair or re-encode it, or pass "
                         f"ignore_decode_errors=True (--ignore-decode-errors) to score the frames that decode")


def _truncation(c, s, n: int, last_end: float | None, report: DecodeReport, ignore: bool) -> None:
    """Compare what decoded with what the container announces (called only after a full decode)."""
    path = report.path
    fmt = c.format.name
    if "mpegts" in fmt:
        size = os.path.getsize(path)
        if size % 188 and size % 192 and size % 204:
            _problem(report, ignore, f"the transport stream ends inside a packet ({size} bytes): it was cut",
                     missing=1)
            return
    declared = int(s.frames or 0)
    if declared > n:
        _problem(report, ignore, f"the container announces {declared} frames but only {n} decoded",
                 missing=declared - n)
        return
    rate = s.average_rate or s.guessed_rate
    if "mpegts" in fmt or last_end is None or not rate or len(c.streams) != 1 or c.duration is None:
        return  # transport streams estimate their duration from the file size: nothing to compare
    duration = c.duration / 1e6
    start = (c.start_time or 0) / 1e6
    gap = (duration + start - last_end) * float(rate)
    if gap > 1.5:
        _problem(report, ignore, f"the container lasts {duration:.2f} s but the frames end at "
                                 f"{last_end - start:.2f} s (about {int(round(gap))} frames missing)",
                 missing=int(round(gap)))


def iter_frames(path: str | os.PathLike, stride: int = 1, size: tuple[int, int] | None = None,
                max_frames: int | None = None, ignore_decode_errors: bool = False,
                report: DecodeReport | None = None) -> Iterator[np.ndarray]:
    """Yield decoded frames of ``path`` as ``H x W x 3`` uint8 RGB arrays.

    stride: keep frames 0, stride, 2*stride, ... (source frame numbers).
    size: ``(height, width)`` to resize to (bicubic, FFmpeg's swscale), or ``None``.
    max_frames: stop after this many source frames (>= 1).
    Damage is treated alike in every container: a decoder or demuxer error, a packet or
    frame FFmpeg flags as corrupt, or truncation (fewer frames than the container's frame
    count or duration announce, a transport stream cut inside a packet) raises
    :class:`VideoError`; with ``ignore_decode_errors=True`` the frames that decode are
    yielded and the problems are counted in ``report`` (a :class:`DecodeReport`).
    Raises :class:`VideoError` for unreadable files and files with no frame,
    :class:`InputError` for grayscale or alpha sources and bad arguments.
    """
    import av

    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"stride must be an integer >= 1, got {stride!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):
        raise InputError(f"max_frames must be an integer >= 1 (or None for all frames), got {max_frames!r}")
    report = report if report is not None else DecodeReport(str(path))
    with _open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        _check_pix_fmt(str(path), s.format.name if s.format else None)
        n = 0
        last_end = None
        shape = None
        stopped = False
        demux = c.demux(s)
        while not stopped:
            try:
                packet = next(demux, None)
                if packet is None:
                    break
                if packet.is_corrupt:
                    _problem(report, ignore_decode_errors, f"packet at {packet.pts} flagged corrupt", errors=1)
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                _problem(report, ignore_decode_errors,
                         f"decoding failed after {n} frames ({exc.strerror or exc})", errors=1)
                continue
            for frame in frames:
                if max_frames is not None and n >= max_frames:
                    stopped = True
                    break
                if shape is None:
                    shape = (frame.width, frame.height)
                elif (frame.width, frame.height) != shape:
                    _problem(report, ignore_decode_errors, f"frame {n} is {frame.width}x{frame.height}, the "
                                                           f"stream started at {shape[0]}x{shape[1]}", errors=1)
                    continue  # dropped (only reached with ignore_decode_errors)
                if frame.is_corrupt:
                    _problem(report, ignore_decode_errors, f"frame {n} decoded with errors (flagged corrupt)",
                             errors=1)
                if frame.pts is not None and frame.time_base is not None:
                    rate = s.average_rate or s.guessed_rate
                    last_end = float(frame.pts * frame.time_base) + (1.0 / float(rate) if rate else 0.0)
                if n % stride == 0:
                    if size is None:
                        yield frame.to_ndarray(format="rgb24")
                    else:
                        yield frame.reformat(width=size[1], height=size[0], format="rgb24",
                                             interpolation="BICUBIC").to_ndarray()
                n += 1
        report.frames = n
        if n == 0:
            why = f" ({'; '.join(report.notes[:2])})" if report.notes else ""
            raise VideoError(f"{str(path)!r} holds no decodable frame{why}")
        if not stopped:
            _truncation(c, s, n, last_end, report, ignore_decode_errors)


def read_frames(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
                ignore_decode_errors: bool = False) -> np.ndarray:
    """All (or the first ``max_frames``) frames as one ``N x H x W x 3`` uint8 array; for short clips."""
    return np.stack(list(iter_frames(path, stride=stride, max_frames=max_frames,
                                     ignore_decode_errors=ignore_decode_errors)))


class FramePairs:
    """Two videos (or images) walked in step, in batches: the one paired-frame iterator.

    Iterating yields ``(ref, dist, numbers)``: ``B x H x W x 3`` uint8 RGB batches of at
    most ``batch_size`` frame pairs and the ``(B,)`` int64 source frame numbers, frames
    ``0, stride, 2*stride, ...`` of both files; ``size`` resizes the distorted frames
    (see :func:`iter_frames`, as are ``max_frames`` and ``ignore_decode_errors``).
    Memory stays bounded by one batch whatever the length.

    Mismatched frame counts (the one policy): the common frames are yielded, the longer
    file is still decoded to its end so that both counts are exact, and a warning says
    so; after the iteration ``ref_frames`` / ``dist_frames`` hold both counts and
    ``notes`` the warning and any damage summaries (of ``reports``) for logs. With
    ``strict=True`` (the study: a variant must hold every frame of its reference) the same
    finding raises :class:`VideoError` instead of warning, after the common frames, as does a
    pair of frames of different sizes.
    """

    def __init__(self, ref_path: str | os.PathLike, dist_path: str | os.PathLike, batch_size: int, *,
                 stride: int = 1, size: tuple[int, int] | None = None, max_frames: int | None = None,
                 ignore_decode_errors: bool = False, strict: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.reports = (DecodeReport(str(ref_path)), DecodeReport(str(dist_path)))
        self._its = tuple(iter_frames(p, stride=stride, size=sz, max_frames=max_frames,
                                      ignore_decode_errors=ignore_decode_errors, report=r)
                          for p, sz, r in ((ref_path, None, self.reports[0]), (dist_path, size, self.reports[1])))
        self.batch_size, self.stride, self.strict = batch_size, stride, strict
        self.ref_frames: int | None = None
        self.dist_frames: int | None = None
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        ref_it, dist_it = self._its
        k = 0
        while True:
            pairs = []
            while len(pairs) < self.batch_size:
                fr, fd = next(ref_it, None), next(dist_it, None)
                if fr is None or fd is None:
                    break
                if self.strict and fr.shape != fd.shape:
                    raise VideoError(f"{self.reports[1].path!r} is {fd.shape[1]}x{fd.shape[0]}, its reference "
                                     f"{fr.shape[1]}x{fr.shape[0]}")
                pairs.append((fr, fd))
            if pairs:
                numbers = np.arange(k, k + len(pairs), dtype=np.int64) * self.stride
                k += len(pairs)
                yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), numbers
            if len(pairs) < self.batch_size:
                break
        for rest in (ref_it, dist_it):  # the longer file to its end: exact counts, truncation checked
            for _ in rest:
                pass
        self._finish()

    def _finish(self) -> None:
        self.ref_frames, self.dist_frames = (r.frames for r in self.reports)
        self.notes = [f"damaged input, scored what decodes: {r.summary()}" for r in self.reports if not r.clean]
        if self.ref_frames != self.dist_frames:
            if self.strict:
                raise VideoError(f"{self.reports[1].path!r} and its reference {self.reports[0].path!r} hold different "
                                 f"numbers of frames (sampled every {self.stride}: {self.dist_frames} and "
                                 f"{self.ref_frames})")
            msg = (f"frame counts differ: reference has {self.ref_frames}, distorted has {self.dist_frames}; "
                   f"scored the first {min(self.ref_frames, self.dist_frames)}")
            warnings.warn(msg, stacklevel=3)
            self.notes.append(msg)
