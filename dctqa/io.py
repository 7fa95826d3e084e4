"""Reading frames from images, videos (anything FFmpeg reads) and network streams, through PyAV.

Frames come out as ``H x W x 3`` uint8 RGB NumPy arrays, one at a time, so memory
stays bounded whatever the video's length.

Inputs are local files or ``rtsp://``, ``http://`` and ``https://`` URLs (a camera
server's streams): a URL gets its own checks (scheme, host, port) and a bounded timeout
(:data:`NETWORK_TIMEOUT_S`), so an unreachable host, a refused connection or a 404 is an
error with the reason, never a hang. A live stream never ends: pass ``max_frames``.
Decoding may use a hardware decoder (``hwaccel``, see :func:`hwaccel_devices`).
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import numpy as np

from .errors import InputError, VideoError

_log = logging.getLogger(__name__)

_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif",
                  "pgm_pipe", "ppm_pipe", "pgmyuv_pipe", "qoi_pipe", "j2k_pipe", "dpx_pipe", "exr_pipe",
                  "sgi_pipe", "pam_pipe", "pbm_pipe", "pcx_pipe", "psd_pipe", "sunrast_pipe", "xbm_pipe"}

#: URL schemes accepted as inputs (FFmpeg's network protocols); any other ``scheme://`` is refused.
URL_SCHEMES = ("rtsp", "http", "https")
#: Seconds a network input may take to open, and to deliver the next data, before it is an error.
NETWORK_TIMEOUT_S = 10.0
#: ``hwaccel`` values besides a device type: ``auto`` (the first usable device, else software,
#: logged) and ``none`` (software decoding, the default).
HWACCEL_MODES = ("auto", "none")

#: Largest frame stride (frame numbers are int64).
MAX_STRIDE = 2**31 - 1

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


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


def is_url(path: object) -> bool:
    """Whether ``path`` is a ``scheme://...`` string (a URL, supported or not), not a file path."""
    return isinstance(path, str) and _URL.match(path) is not None


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError:  # malformed: hide whatever stands between '//' and '@'
        return re.sub(r"//[^/@]*@", "//***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{parts.username}:***@{netloc[-1]}").geturl()


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as messages and logs show it: a file path as given, a URL without its password."""
    return _redacted(path) if is_url(path) else str(path)


def check_url(url: str) -> str:
    """Check a URL input before any connection; returns its scheme (``rtsp``, ``http`` or ``https``).

    Raises :class:`InputError` for a scheme other than :data:`URL_SCHEMES`, a URL without a
    host, or a bad port.
    """
    shown = _redacted(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InputError(f"{shown!r}: malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise InputError(f"{shown!r}: unsupported URL scheme {scheme + '://'!r}; inputs are local files or "
                         f"{', '.join(s + '://' for s in URL_SCHEMES)} URLs")
    if not parts.hostname:
        raise InputError(f"{shown!r}: the URL names no host (expected {scheme}://HOST[:PORT]/PATH)")
    try:
        parts.port
    except ValueError:
        raise InputError(f"{shown!r}: bad port in the URL (expected a number in 0..65535)") from None
    return scheme


def _url_error(shown: str, exc: Exception, timeout: float) -> VideoError:
    """The message for a network input that FFmpeg could not open (never 'no such file')."""
    import av

    why = exc.strerror if isinstance(exc, av.error.FFmpegError) and exc.strerror else str(exc)
    if isinstance(exc, (av.error.ExitError, av.error.TimeoutError)):
        why = f"no answer within {timeout:g} s (host unreachable or stream silent)"
    elif isinstance(exc, ConnectionRefusedError):
        why = "connection refused (is the server running, and is the port right?)"
    elif isinstance(exc, (av.error.HTTPNotFoundError, FileNotFoundError)):
        why = f"the server has no such stream ({why})"
    elif isinstance(exc, av.error.HTTPError):
        why = f"the server refused the request ({why})"
    return VideoError(f"{shown!r}: cannot open the network stream: {why}")


def _url_options(scheme: str, timeout: float) -> dict[str, str]:
    """FFmpeg protocol options bounding each network read (microseconds): ``rw_timeout`` for
    HTTP(S), ``timeout`` (socket I/O) for RTSP; PyAV's own ``timeout`` bounds the open."""
    us = str(max(1, int(timeout * 1e6)))
    return {"timeout": us} if scheme == "rtsp" else {"rw_timeout": us}


def _open_url(url: str, hwaccel, timeout: float | None):
    import av

    scheme = check_url(url)
    shown = _redacted(url)
    timeout = NETWORK_TIMEOUT_S if timeout is None else float(timeout)
    try:
        container = av.open(url, options=_url_options(scheme, timeout), timeout=(timeout, timeout),
                            hwaccel=hwaccel)
    except (av.error.FFmpegError, OSError) as exc:
        raise _url_error(shown, exc, timeout) from None
    _check_video_stream(container, shown)
    return container


def _open(path: str | os.PathLike, device_type: str | None = None, timeout: float | None = None):
    """The open PyAV container of a file or URL (its first video stream checked present);
    ``device_type``: a hardware decoding device type from :func:`resolve_hwaccel`, or ``None``."""
    import av

    accel = _hwaccel_object(device_type)
    if is_url(path):
        return _open_url(path, accel, timeout)
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{str(p)!r}: no such file")
    if p.is_dir():
        raise VideoError(f"{str(p)!r} is a directory, expected an image or video file")
    if not p.is_file():  # reading a FIFO or device would wait forever or never end
        raise VideoError(f"{str(p)!r} is not a regular file (a FIFO, socket or device); expected an image "
                         f"or video file")
    try:
        container = av.open(str(p), hwaccel=accel)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{str(p)!r}: FFmpeg cannot read it as an image or video ({exc.strerror or exc})") from None
    _check_video_stream(container, str(p))
    return container


def _check_video_stream(container, shown: str) -> None:
    """:class:`VideoError` (the container closed) without a video stream, or when the first one
    has no decoder parameters (a header cut short or damaged)."""
    if not container.streams.video:
        container.close()
        raise VideoError(f"{shown!r} has no video stream")
    if container.streams.video[0].codec_context is None:
        container.close()
        raise VideoError(f"{shown!r}: its video stream has no decoder parameters (the header is cut short or "
                         f"damaged); repair or re-encode it")


#: Decoders tried when checking whether a device type works (the first with a config for it).
_PROBE_DECODERS = ("h264", "hevc", "vp9", "av1", "mpeg2video", "mpeg4", "vp8", "mjpeg")
_DEVICES: dict[str, str | None] | None = None
_AUTO_LOGGED = False


def _probe_device(device_type: str) -> str | None:
    """``None`` when a ``device_type`` decoding device can be created here, else the reason."""
    import av
    from av.codec.hwaccel import HWAccel

    for name in _PROBE_DECODERS:
        try:
            codec = av.codec.Codec(name, "r")
            configs = [c for c in codec.hardware_configs if c.device_type.name == device_type and c.is_supported]
        except (av.error.FFmpegError, ValueError):
            continue
        if configs:
            try:
                HWAccel(device_type, allow_software_fallback=False).create(codec)
            except (av.error.FFmpegError, OSError, RuntimeError) as exc:
                return f"no {device_type} device ({getattr(exc, 'strerror', None) or exc})"
            return None
    return f"no decoder of this FFmpeg build uses {device_type} devices"


def hwaccel_devices() -> dict[str, str | None]:
    """Hardware decoding device types of PyAV's FFmpeg build: ``type -> None`` when a device of
    that type works here, else the reason it does not. Probed once per process."""
    global _DEVICES
    if _DEVICES is None:
        from av.codec.hwaccel import hwdevices_available

        _DEVICES = {t: _probe_device(t) for t in hwdevices_available()}
    return dict(_DEVICES)


def _availability() -> str:
    devices = hwaccel_devices()
    usable = [t for t, why in devices.items() if why is None]
    details = "; ".join(f"{t}: {why}" for t, why in devices.items() if why is not None)
    return (f"usable here: {', '.join(usable) or 'none'} (FFmpeg is built with: {', '.join(devices) or 'none'}"
            f"{'; ' + details if details else ''})")


def resolve_hwaccel(hwaccel: str | None) -> str | None:
    """The hardware device type that decoding will use, or ``None`` for software.

    hwaccel: ``None`` or ``"none"`` (software), ``"auto"`` (the first usable device type of
    :func:`hwaccel_devices`, else software, said in the ``dctqa.io`` log) or a device type
    such as ``"cuda"`` (:class:`InputError` listing what is usable when it is unknown or has
    no working device).
    """
    if hwaccel is None or hwaccel == "none":
        return None
    if not isinstance(hwaccel, str):
        raise InputError(f"hwaccel must be a string (auto, none or a device type), got {type(hwaccel).__name__}")
    devices = hwaccel_devices()
    if hwaccel == "auto":
        usable = [t for t, why in devices.items() if why is None]
        if not usable:
            global _AUTO_LOGGED
            if not _AUTO_LOGGED:  # once per process
                _AUTO_LOGGED = True
                _log.info("hwaccel=auto: no hardware decoder works here, decoding in software; %s", _availability())
            return None
        return usable[0]
    if hwaccel not in devices:
        raise InputError(f"unknown hwaccel {hwaccel!r}; expected auto, none or a device type; {_availability()}")
    if devices[hwaccel] is not None:
        raise InputError(f"hwaccel {hwaccel!r} is not available: {devices[hwaccel]}; use --hwaccel auto or none; "
                         f"{_availability()}")
    return hwaccel


def _hwaccel_object(device_type: str | None):
    if device_type is None:
        return None
    from av.codec.hwaccel import HWAccel

    return HWAccel(device_type, allow_software_fallback=True)


def _check_pix_fmt(path: str, pix_fmt: str | None) -> None:
    if pix_fmt is None:
        return
    if pix_fmt.startswith(("gray", "ya", "mono")):
        raise InputError(f"{path!r} is grayscale ({pix_fmt}); dctqa needs 3 colour channels. "
                         f"Convert it to RGB first (e.g. ffmpeg -i IN -pix_fmt rgb24 OUT.png)")
    if pix_fmt in ("rgba", "bgra", "argb", "abgr", "rgba64le", "rgba64be") or pix_fmt.startswith(("yuva", "gbrap")):
        raise InputError(f"{path!r} has an alpha channel ({pix_fmt}); dctqa needs opaque RGB frames. "
                             f"Flatten it onto a background first (e.g. ffmpeg -i IN -pix_fmt rgb24 OUT.png)")


def probe(path: str | os.PathLike, timeout: float | None = None) -> VideoInfo:
    """Stream facts of ``path`` (a file or URL) without decoding it. Raises :class:`VideoError`
    (:class:`InputError` for a malformed URL); ``timeout``: seconds for a network input
    (default :data:`NETWORK_TIMEOUT_S`)."""
    with _open(path, timeout=timeout) as c:
        s = c.streams.video[0]
        is_image = c.format.name in _IMAGE_FORMATS or any(n in _IMAGE_FORMATS for n in c.format.name.split(","))
        rate = s.average_rate or s.guessed_rate
        return VideoInfo(path=shown_path(path), width=int(s.width), height=int(s.height),
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
    decoder: ``"software"`` or the hardware device type that decoded the stream (see
    ``hwaccel``), set when decoding starts.
    """

    path: str
    errors: int = 0
    missing_frames: int = 0
    notes: list[str] = field(default_factory=list)
    frames: int | None = None
    decoder: str | None = None

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
    if "mpegts" in fmt and not is_url(path):
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


def _check_frame_args(stride: object, max_frames: object) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= MAX_STRIDE:
        raise InputError(f"stride must be an integer in 1..{MAX_STRIDE}, got {stride!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):
        raise InputError(f"max_frames must be an integer >= 1 (or None for all frames), got {max_frames!r}")


def iter_frames(path: str | os.PathLike, stride: int = 1, size: tuple[int, int] | None = None,
                max_frames: int | None = None, ignore_decode_errors: bool = False,
                report: DecodeReport | None = None, hwaccel: str | None = None,
                timeout: float | None = None) -> Iterator[np.ndarray]:
    """Yield decoded frames of ``path`` (a file or an rtsp/http(s) URL) as ``H x W x 3`` uint8 RGB arrays.

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
    hwaccel: ``None``/``"none"`` (software), ``"auto"`` or a device type (:func:`resolve_hwaccel`);
    a stream whose codec has no hardware decoder of that type decodes in software (logged).
    timeout: seconds a network input may stay silent (default :data:`NETWORK_TIMEOUT_S`).
    """
    import av

    _check_frame_args(stride, max_frames)
    report = report if report is not None else DecodeReport(shown_path(path))
    device_type = resolve_hwaccel(hwaccel)
    with _open(path, device_type, timeout) as c:
        s = c.streams.video[0]
        set_decode_threads(s)
        report.decoder = _decoder(s, device_type, report.path)
        _check_pix_fmt(report.path, s.format.name if s.format else None)
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
                what = "the stream stopped" if is_url(path) else "decoding failed"
                _problem(report, ignore_decode_errors, f"{what} after {n} frames ({exc.strerror or exc})", errors=1)
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
            raise VideoError(f"{report.path!r} holds no decodable frame{why}")
        if not stopped:
            _truncation(c, s, n, last_end, report, ignore_decode_errors)


def read_frames(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
                ignore_decode_errors: bool = False, hwaccel: str | None = None,
                timeout: float | None = None) -> np.ndarray:
    """All (or the first ``max_frames``) frames as one ``N x H x W x 3`` uint8 array; for short clips.

    path: a file or an rtsp/http(s) URL (a live stream needs ``max_frames``); ``hwaccel`` and
    ``timeout`` as :func:`iter_frames` takes them.
    """
    return np.stack(list(iter_frames(path, stride=stride, max_frames=max_frames,
                                     ignore_decode_errors=ignore_decode_errors, hwaccel=hwaccel,
                                     timeout=timeout)))


def _decoder(stream, device_type: str | None, path: str) -> str:
    """What decodes ``stream``: ``device_type`` when its codec has a hardware decoder of that
    type, else ``"software"`` (logged when a device type was asked for)."""
    ctx = stream.codec_context
    if device_type is not None and ctx.is_hwaccel:
        return device_type
    if device_type is not None:
        _log.info("%s: codec %s has no %s hardware decoder; decoding in software",
                  _redacted(path) if is_url(path) else path, ctx.name, device_type)
    return "software"


def set_decode_threads(stream, threads: int | None = None) -> None:
    """Threads of ``stream``'s decoder: ``threads`` (>= 1), else ``DCTQA_DECODE_THREADS``;
    0 = FFmpeg's automatic choice (frame and slice threads, about one per core). Frames and
    their order are the same whatever the count."""
    from . import settings

    n = settings.decode_threads() if threads is None else threads
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = int(n)


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
    pair of frames of different sizes. ``hwaccel``: decoding of both (:func:`iter_frames`).
    """

    def __init__(self, ref_path: str | os.PathLike, dist_path: str | os.PathLike, batch_size: int, *,
                 stride: int = 1, size: tuple[int, int] | None = None, max_frames: int | None = None,
                 ignore_decode_errors: bool = False, strict: bool = False, hwaccel: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.reports = (DecodeReport(shown_path(ref_path)), DecodeReport(shown_path(dist_path)))
        self._its = tuple(iter_frames(p, stride=stride, size=sz, max_frames=max_frames,
                                      ignore_decode_errors=ignore_decode_errors, report=r, hwaccel=hwaccel)
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
