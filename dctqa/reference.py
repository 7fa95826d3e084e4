"""The literal reference implementation of METRIC.md (version 1), float64, NumPy/SciPy.

Slow on purpose: every step is written as the definition states it (symmetric
extension to 2H x 2W, circular cross-correlation, 2-D DFT, crop, ratio, lower median,
mean). It shares no numerical code with the fast paths, so tests comparing the two
mean something. Slow (its time per pair: benchmarks/RESULTS.md); use small frames in tests.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.fft

from .backbones import Backbone, get_backbone
from .constants import ABS_FLOOR, DEFAULT_BACKBONE, EPSILON
from .errors import InputError


def _check_frame(name: str, frame: np.ndarray) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{name}: expected an H x W x 3 RGB frame, got shape {a.shape}")
    if not (a.dtype == np.uint8 or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{name}: expected uint8 or float pixels, got {a.dtype}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: pixels hold NaN or infinity")
    return a


def preprocess(frame: np.ndarray, backbone: Backbone) -> np.ndarray:
    """RGB ``H x W x 3`` (uint8, or float in 0..255) -> ``3 x H x W`` float64 in the detector's input scale."""
    p = backbone.preprocess
    x = np.asarray(frame, dtype=np.float64)
    order = [0, 1, 2] if p.channel_order == "RGB" else [2, 1, 0]
    out = np.empty((3,) + x.shape[:2])
    for c in range(3):
        out[c] = (x[:, :, order[c]] * p.scale - p.mean[c]) / p.std[c]
    return out


def symmetric_extension(x: np.ndarray) -> np.ndarray:
    """``3 x H x W`` -> ``3 x 2H x 2W`` with ``E[n, m] = x[s_H(n), s_W(m)]``."""
    h, w = x.shape[-2:]
    sh = [n if n < h else 2 * h - 1 - n for n in range(2 * h)]
    sw = [m if m < w else 2 * w - 1 - m for m in range(2 * w)]
    return x[:, sh, :][:, :, sw]


def circular_cross_correlation(e: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``y[n, m] = sum_c sum_i sum_j e[c, (n+i) mod P, (m+j) mod Q] * h[c, i, j]`` for one filter."""
    y = np.zeros(e.shape[1:])
    _, kh, kw = h.shape
    for c in range(e.shape[0]):
        for i in range(kh):
            for j in range(kw):
                if h[c, i, j] != 0.0:
                    y += h[c, i, j] * np.roll(e[c], shift=(-i, -j), axis=(0, 1))
    return y


def spectral_magnitudes(x: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Spectral-domain magnitudes ``A_k[u, v]``, ``K x H x W`` float64.

    x: ``3 x H x W`` preprocessed frame; filters: ``K x 3 x kh x kw``.
    """
    x = np.asarray(x, dtype=np.float64)
    filters = np.asarray(filters, dtype=np.float64)
    h, w = x.shape[-2:]
    e = symmetric_extension(x)
    out = np.empty((filters.shape[0], h, w))
    for k in range(filters.shape[0]):
        y = circular_cross_correlation(e, filters[k])
        out[k] = np.abs(np.fft.fft2(y)[:h, :w])
    return out


def _activation(z: np.ndarray, name: str, slope: float) -> np.ndarray:
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "silu":
        return z / (1.0 + np.exp(-z))
    if name == "hardswish":
        return z * np.clip(z + 3.0, 0.0, 6.0) / 6.0
    if name == "leaky_relu":
        return np.where(z >= 0, z, slope * z)
    raise InputError(f"unknown activation {name!r}")


def first_layer(x: np.ndarray, backbone: Backbone) -> np.ndarray:
    """The detector's first-layer output ``f``, ``K x H' x W'`` float64 (direct convolution)."""
    stem = backbone.stem
    if stem is None:
        raise InputError(f"backbone {backbone.name!r} has no network layer; the feature domain needs one")
    c, h, w = x.shape
    m = stem.pad_to_multiple
    eh, ew = (-h) % m, (-w) % m
    top, bottom, left, right = stem.padding
    xp = np.zeros((c, h + eh + top + bottom, w + ew + left + right))
    xp[:, top:top + h, left:left + w] = x
    k, _, kh, kw = stem.weight.shape
    s = stem.stride
    oh = (xp.shape[1] - kh) // s + 1
    ow = (xp.shape[2] - kw) // s + 1
    if oh < 1 or ow < 1:
        raise InputError(f"frame {h}x{w} is smaller than the {kh}x{kw} first layer of {backbone.name!r}")
    f = np.zeros((k, oh, ow))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                patch = xp[ci, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
                f += stem.weight[:, ci, i, j][:, None, None] * patch[None]
    f = f * stem.scale[:, None, None] + stem.shift[:, None, None]
    return _activation(f, stem.activation, stem.negative_slope)


def feature_magnitudes(x: np.ndarray, backbone: Backbone) -> np.ndarray:
    """Feature-domain magnitudes ``|DCT-II_ortho(f_k)|``, ``K x H' x W'`` float64."""
    f = first_layer(x, backbone)
    return np.abs(scipy.fft.dctn(f, type=2, norm="ortho", axes=(1, 2)))


def ratio_reduce(ao: np.ndarray, ac: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Per-filter quality ``Q_k`` (shape ``(K,)``) from magnitudes ``K x ...`` of both frames."""
    ao = np.asarray(ao, dtype=np.float64).reshape(ao.shape[0], -1)
    ac = np.asarray(ac, dtype=np.float64).reshape(ac.shape[0], -1)
    n = ao.shape[1]
    q = np.empty(ao.shape[0])
    for k in range(ao.shape[0]):
        m = np.sort(ao[k])[(n - 1) // 2]  # lower median
        eps = epsilon * m + ABS_FLOOR
        # mean((ao + eps) / (ac + eps)) written as 1 + mean(r - 1), r - 1 = (ao - ac) / (ac + eps):
        # the same number, and exactly 1 for identical frames (every term is 0), as in
        # every implementation of dctqa.
        q[k] = 1.0 + np.mean((ao[k] - ac[k]) / (ac[k] + eps))
    return q


def magnitudes(frame: np.ndarray, backbone: Backbone, domain: str) -> np.ndarray:
    """Magnitudes ``A`` of one RGB frame in ``domain`` (METRIC.md)."""
    if domain == "pixel":
        backbone = get_backbone("pixel")
        return spectral_magnitudes(preprocess(frame, backbone), backbone.filters)
    if domain == "spectral":
        return spectral_magnitudes(preprocess(frame, backbone), backbone.filters)
    if domain == "feature":
        return feature_magnitudes(preprocess(frame, backbone), backbone)
    raise InputError(f"unknown domain {domain!r}; expected 'spectral', 'feature' or 'pixel'")


def score_filters(ref: np.ndarray, dist: np.ndarray, backbone: str | Backbone = DEFAULT_BACKBONE,
                  domain: str = "spectral", weights: str | os.PathLike | None = None,
                  epsilon: float = EPSILON) -> np.ndarray:
    """``Q_k`` for one pair of ``H x W x 3`` RGB frames (uint8 or float 0..255); shape ``(K,)``."""
    ref = _check_frame("reference", ref)
    dist = _check_frame("distorted", dist)
    if ref.shape != dist.shape:
        raise InputError(f"reference is {ref.shape} but distorted is {dist.shape}; sizes must match")
    bb = backbone if isinstance(backbone, Backbone) else get_backbone(
        "pixel" if domain == "pixel" else backbone, None if domain == "pixel" else weights)
    return ratio_reduce(magnitudes(ref, bb, domain), magnitudes(dist, bb, domain), epsilon)


def score(ref: np.ndarray, dist: np.ndarray, backbone: str | Backbone = DEFAULT_BACKBONE,
          domain: str = "spectral", weights: str | os.PathLike | None = None,
          epsilon: float = EPSILON) -> float:
    """Q for one pair of RGB frames: the mean of :func:`score_filters`. ``Q >= 0``; 1 for identical frames."""
    return float(np.mean(score_filters(ref, dist, backbone, domain, weights, epsilon)))
