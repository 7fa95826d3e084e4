"""Reading frames from images and videos (anything FFmpeg reads) through PyAV.

Frames come out as ``H x W x 3`` uint8 RGB NumPy arrays, one at a time, so memory
stays bounded whatever the video's length.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
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


def iter_frames(path: str | os.PathLike, stride: int = 1, size: tuple[int, int] | None = None,
                max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield decoded frames of ``path`` as ``H x W x 3`` uint8 RGB arrays.

    stride: keep frames 0, stride, 2*stride, ... (source frame numbers).
    size: ``(height, width)`` to resize to (bicubic, FFmpeg's swscale), or ``None``.
    max_frames: stop after this many source frames.
    Raises :class:`VideoError` for unreadable/corrupt files and files with no frame,
    :class:`InputError` for grayscale or alpha sources.
    """
    import av

    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    with _open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        _check_pix_fmt(str(path), s.format.name if s.format else None)
        n = 0
        try:
            for frame in c.decode(s):
                if max_frames is not None and n >= max_frames:
                    break
                if n % stride == 0:
                    if size is None:
                        yield frame.to_ndarray(format="rgb24")
                    else:
                        yield frame.reformat(width=size[1], height=size[0], format="rgb24",
                                             interpolation="BICUBIC").to_ndarray()
                n += 1
        except av.error.FFmpegError as exc:
            raise VideoError(f"{str(path)!r}: decoding failed after {n} frames ({exc.strerror or exc})") from None
        if n == 0:
            raise VideoError(f"{str(path)!r} holds no decodable frame")


def read_frames(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None) -> np.ndarray:
    """All (or the first ``max_frames``) frames as one ``N x H x W x 3`` uint8 array; for short clips."""
    return np.stack(list(iter_frames(path, stride=stride, max_frames=max_frames)))
