"""Torch fallback of the ``spectral_qk`` op: METRIC.md's DCT-II identity.

``A_k[u, v] = 4 |sum_c C_c[u, v] conj(G[k, c, u, v])|`` with ``C_c`` the unnormalised
DCT-II of channel ``c`` and ``G`` the ``2H x 2W`` DFT of the zero-padded filter,
cropped to ``u < H, v < W``. ``G`` depends only on the filters and the frame size; it
is built for each call from its separable form (row phases x per-row DFTs of the filters),
a tile of rows at a time, and not kept: dctqa's one cache of filter spectra is the compiled
ops' (:mod:`dctqa.ops.tuning`), and this path is the slow fallback.
"""
from __future__ import annotations

import math

import torch

from ..constants import EPSILON
from .ratio_torch import ratio_qk_torch

_TILE_BYTES = 128 << 20  # bytes of G (re + im, float32) built or sliced at a time
_CHUNK_BYTES = 512 << 20  # bytes of magnitudes (both frames) held at a time


def _phases(n_freq: int, taps: int, period: int, device: torch.device) -> torch.Tensor:
    """``exp(-2 pi i f t / period)`` for f < n_freq, t < taps, complex128 ``[n_freq, taps]``.

    The product ``f * t`` is reduced modulo ``period`` in integers first, so the angle is
    exact even for large frames.
    """
    f = torch.arange(n_freq, dtype=torch.int64, device=device)[:, None]
    t = torch.arange(taps, dtype=torch.int64, device=device)[None, :]
    ang = (f * t % period).double() * (-2.0 * math.pi / period)
    return torch.polar(torch.ones_like(ang), ang)


def build_spectra(filters: torch.Tensor, h: int, w: int, rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of ``G[k, c, u, v]`` for ``u`` in ``rows`` (default all), ``v < w``.

    filters: ``K x 3 x kh x kw`` float (any device). Returns two float32 tensors
    ``K x 3 x len(rows) x w`` on the filters' device, computed in float64.
    """
    rows = rows or slice(0, h)
    dev = filters.device
    hf = filters.double()
    kh, kw = hf.shape[-2:]
    pw = _phases(w, kw, 2 * w, dev)  # [v, j]
    gw = torch.einsum("kcij,vj->kciv", hf.to(torch.complex128), pw)  # [K, 3, kh, W]
    ph = _phases(h, kh, 2 * h, dev)[rows]  # [u, i]
    g = torch.einsum("ui,kciv->kcuv", ph, gw)
    return g.real.float().contiguous(), g.imag.float().contiguous()


def _combine(gr: torch.Tensor, gi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``4 |sum_c x_c conj(G_kc)|`` for x ``[B, 3, r, W]`` and G tile ``[K, 3, r, W]`` -> ``[B, K, r, W]``.

    Written as three fused multiply-adds per part (the sign of the imaginary part does
    not matter for the magnitude); an einsum here becomes a batched matmul of 1 x 3 by
    3 x K blocks, several times slower.
    """
    re = x[:, 0, None] * gr[None, :, 0]
    im = x[:, 0, None] * gi[None, :, 0]
    for c in range(1, x.shape[1]):
        re.addcmul_(x[:, c, None], gr[None, :, c])
        im.addcmul_(x[:, c, None], gi[None, :, c])
    return torch.hypot(re, im).mul_(4.0)


def spectral_magnitudes_torch(*frames: torch.Tensor, filters: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``A`` for each DCT batch in ``frames`` (each ``[B, 3, H, W]``) -> ``[B, K, H, W]`` (same
    dtype), every tile of ``G`` built once for all of them."""
    b, _, h, w = frames[0].shape
    k = filters.shape[0]
    dev, dtype = frames[0].device, frames[0].dtype
    rows = max(1, min(h, _TILE_BYTES // max(1, 2 * 4 * k * 3 * w)))
    outs = tuple(torch.empty((b, k, h, w), dtype=dtype, device=dev) for _ in frames)
    f = filters.to(dev)
    for u0 in range(0, h, rows):
        sl = slice(u0, min(h, u0 + rows))
        gr, gi = build_spectra(f, h, w, sl)
        gr, gi = gr.to(dtype), gi.to(dtype)
        for x, out in zip(frames, outs):
            out[:, :, sl] = _combine(gr, gi, x[:, :, sl])
    return outs


def spectral_qk_torch(co: torch.Tensor, cc: torch.Tensor, filters: torch.Tensor,
                      epsilon: float = EPSILON) -> torch.Tensor:
    """Per-filter ``Q_k``, ``[N, K]`` float64, from DCT coefficients of both frames.

    co, cc: ``[N, 3, H, W]`` float32 unnormalised DCT-II of the preprocessed reference and
    distorted frames; filters: ``K x 3 x kh x kw`` (METRIC.md's cross-correlation convention).
    Frames are processed in chunks so that magnitudes stay under about 512 MB; ``G`` is
    built once per chunk for both frames (never cached).
    """
    n, _, h, w = co.shape
    k = filters.shape[0]
    per_frame = 2 * 4 * k * h * w
    step = max(1, _CHUNK_BYTES // per_frame)
    out = torch.empty((n, k), dtype=torch.float64, device=co.device)
    for i in range(0, n, step):
        ao, ac = spectral_magnitudes_torch(co[i:i + step], cc[i:i + step], filters=filters)
        out[i:i + step] = ratio_qk_torch(ao, ac, epsilon)
    return out
