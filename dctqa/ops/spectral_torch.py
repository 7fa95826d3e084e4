"""Torch fallback of the ``spectral_qk`` op: METRIC.md's DCT-II identity.

``A_k[u, v] = 4 |sum_c C_c[u, v] conj(G[k, c, u, v])|`` with ``C_c`` the unnormalised
DCT-II of channel ``c`` and ``G`` the ``2H x 2W`` DFT of the zero-padded filter,
cropped to ``u < H, v < W``. ``G`` depends only on the filters and the frame size; it
is built from its separable form (row phases x per-row DFTs of the filters) and kept in
a process-wide cache bounded in bytes (``DCTQA_SPECTRA_CACHE_MB``, default 1024).
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict

import torch

from ..constants import EPSILON
from ..settings import spectra_cache_bytes
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


class SpectraCache:
    """Thread-safe LRU of full ``G`` tensors keyed by (filters, H, W, device), bounded in bytes."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The bound given, else ``DCTQA_SPECTRA_CACHE_MB`` MiB read now (ConfigError if malformed)."""
        if self._max_bytes is not None:
            return self._max_bytes
        return spectra_cache_bytes()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(a.nbytes + b.nbytes for a, b in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    @staticmethod
    def key(filters: torch.Tensor, h: int, w: int) -> tuple:
        digest = hashlib.sha1(filters.detach().double().cpu().numpy().tobytes()).hexdigest()
        return (digest, tuple(filters.shape), h, w, str(filters.device))

    def get(self, filters: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Full ``G`` from the cache, building it if it fits the bound; ``None`` if it never fits."""
        k, c = filters.shape[:2]
        size = 2 * 4 * k * c * h * w
        max_bytes = self.max_bytes
        if size > max_bytes:
            return None
        key = self.key(filters, h, w)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = build_spectra(filters, h, w)
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            total = sum(a.nbytes + b.nbytes for a, b in self._items.values())
            while total > max_bytes and len(self._items) > 1:
                _, (a, b) = self._items.popitem(last=False)
                total -= a.nbytes + b.nbytes
        return value


SPECTRA_CACHE = SpectraCache()  # bound: DCTQA_SPECTRA_CACHE_MB, read on each use


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


def spectral_magnitudes_torch(c: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``A`` for DCT coefficients ``c`` ``[B, 3, H, W]`` -> ``[B, K, H, W]`` (same dtype as ``c``)."""
    b, _, h, w = c.shape
    k = filters.shape[0]
    full = SPECTRA_CACHE.get(filters.to(c.device), h, w)
    rows = max(1, min(h, _TILE_BYTES // max(1, 2 * 4 * k * 3 * w)))
    out = torch.empty((b, k, h, w), dtype=c.dtype, device=c.device)
    for u0 in range(0, h, rows):
        sl = slice(u0, min(h, u0 + rows))
        if full is not None:
            gr, gi = full[0][:, :, sl], full[1][:, :, sl]
        else:
            gr, gi = build_spectra(filters.to(c.device), h, w, sl)
        out[:, :, sl] = _combine(gr.to(c.dtype), gi.to(c.dtype), c[:, :, sl])
    return out


def spectral_qk_torch(co: torch.Tensor, cc: torch.Tensor, filters: torch.Tensor,
                      epsilon: float = EPSILON) -> torch.Tensor:
    """Per-filter ``Q_k``, ``[N, K]`` float64, from DCT coefficients of both frames.

    co, cc: ``[N, 3, H, W]`` float32 unnormalised DCT-II of the preprocessed reference and
    distorted frames; filters: ``K x 3 x kh x kw`` (METRIC.md's cross-correlation convention).
    Frames are processed in chunks so that magnitudes stay under about 512 MB.
    """
    n, _, h, w = co.shape
    k = filters.shape[0]
    per_frame = 2 * 4 * k * h * w
    step = max(1, _CHUNK_BYTES // per_frame)
    out = torch.empty((n, k), dtype=torch.float64, device=co.device)
    for i in range(0, n, step):
        ao = spectral_magnitudes_torch(co[i:i + step], filters)
        ac = spectral_magnitudes_torch(cc[i:i + step], filters)
        out[i:i + step] = ratio_qk_torch(ao, ac, epsilon)
    return out
