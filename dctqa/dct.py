"""2-D DCT-II of torch tensors via the FFT (CPU and CUDA; torch has no DCT of its own)."""
from __future__ import annotations

import math

import torch


def _dct_last(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-II over the last dim: ``C[u] = sum_n x[n] cos(pi (2n+1) u / 2N)``.

    Uses the even/odd reordering ``v = (x[0], x[2], ..., x[3], x[1])`` so that
    ``C[u] = Re(exp(-i pi u / 2N) FFT(v)[u])``, valid for every N >= 1.
    """
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spec = torch.fft.fft(v, dim=-1)
    u = torch.arange(n, device=x.device, dtype=torch.float64)
    ang = (-math.pi / (2 * n)) * u
    tw = torch.polar(torch.ones_like(ang), ang).to(spec.dtype)
    return (spec * tw).real


def dct2(x: torch.Tensor, norm: str | None = None) -> torch.Tensor:
    """2-D DCT-II over the last two dims of a real float tensor ``[..., H, W]``.

    ``norm=None``: METRIC.md's ``C[u, v] = sum_n sum_m x cos(pi(2n+1)u/2H) cos(pi(2m+1)v/2W)``
    (a quarter of SciPy's unnormalised ``dctn``). ``norm="ortho"``: SciPy's orthonormal DCT-II.
    Output has the input's shape and dtype.
    """
    if not x.is_floating_point():
        raise TypeError(f"dct2 needs a floating tensor, got {x.dtype}")
    y = _dct_last(x)
    y = _dct_last(y.transpose(-1, -2)).transpose(-1, -2)
    if norm is None:
        return y.contiguous()
    if norm != "ortho":
        raise ValueError(f"norm must be None or 'ortho', got {norm!r}")
    h, w = x.shape[-2:]
    fh = torch.full((h,), math.sqrt(2.0 / h), dtype=x.dtype, device=x.device)
    fh[0] = math.sqrt(1.0 / h)
    fw = torch.full((w,), math.sqrt(2.0 / w), dtype=x.dtype, device=x.device)
    fw[0] = math.sqrt(1.0 / w)
    return (y * fh[:, None] * fw[None, :]).contiguous()
