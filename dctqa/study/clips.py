"""Source clips made from still photographs: a slow pan over one of scikit-image's bundled
colour photographs, written losslessly (FFV1) so it can be encoded and scored like a video.

Used by ``dctqa demo`` (its one clip) and by ``dctqa nr-data --extra-skimage`` (extra
training-only content for the no-reference model).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError

#: scikit-image's bundled colour photographs (no download needed), by the name used here.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle",
                  "retina", "rocket")


def skimage_photo(name: str) -> np.ndarray:
    """The bundled photograph ``name`` (one of :data:`SKIMAGE_PHOTOS`), ``H x W x 3`` uint8 RGB."""
    from skimage import data

    if name not in SKIMAGE_PHOTOS:
        raise InputError(f"unknown scikit-image photograph {name!r}; expected one of {', '.join(SKIMAGE_PHOTOS)}")
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def pan_frames(photo: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """``frames x h x w x 3`` windows of ``photo`` (``size = (h, w)`` pixels) moving in a straight
    line from its top-left to its bottom-right corner, whole-pixel steps."""
    h, w = size
    if frames < 2:
        raise InputError(f"a pan needs at least 2 frames, got {frames}")
    if not (0 < h <= photo.shape[0] and 0 < w <= photo.shape[1]):
        raise InputError(f"frame size {h}x{w} (height x width) does not fit the {photo.shape[0]}x{photo.shape[1]} "
                         "photograph")
    xs = np.linspace(0, photo.shape[1] - w, frames).round().astype(int)
    ys = np.linspace(0, photo.shape[0] - h, frames).round().astype(int)
    return np.stack([photo[y:y + h, x:x + w] for x, y in zip(xs, ys)])


def write_pan_clip(path: str | os.PathLike, photo: str = "coffee", frames: int = 40,
                   size: tuple[int, int] = (288, 384), fps: int = 10) -> np.ndarray:
    """Write a pan over the bundled photograph ``photo`` (:func:`pan_frames`) losslessly
    (FFV1 Matroska, atomically) to ``path`` at ``fps`` frames/s; returns the frames."""
    from .codec import write_lossless

    clip = pan_frames(skimage_photo(photo), frames, size)
    write_lossless(clip, path, fps)
    return clip


__all__ = ["SKIMAGE_PHOTOS", "skimage_photo", "pan_frames", "write_pan_clip"]
