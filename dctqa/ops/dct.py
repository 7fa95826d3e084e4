"""2-D DCT-II of torch tensors (torch has no DCT of its own).

CPU tensors go through SciPy's pocketfft DCT (native real transforms, multithreaded);
other devices use a real FFT with Makhoul's reordering.
"""
from __future__ import annotations

import math

import torch


def _dct_last_fft(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-II over the last dim, ``C[u] = sum_n x[n] cos(pi (2n+1) u / 2N)``.

    With ``v = (x[0], x[2], ..., x[3], x[1])`` and ``z[u] = exp(-i pi u / 2N) RFFT(v)[u]``:
    ``C[u] = Re z[u]`` for ``u <= N/2`` and ``C[N-u] = -Im z[u]`` for the rest (valid for
    every N >= 1).
    """
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spec = torch.fft.rfft(v, dim=-1)
    h = spec.shape[-1]
    u = torch.arange(h, device=x.device, dtype=torch.float64)
    tw = torch.polar(torch.ones_like(u), (-math.pi / (2 * n)) * u).to(spec.dtype)
    z = spec * tw
    out = torch.empty_like(x)
    out[..., :h] = z.real
    if n > h:
        out[..., h:] = -z.imag[..., 1:n - h + 1].flip(-1)
    return out


def _ortho_scale(y: torch.Tensor) -> torch.Tensor:
    h, w = y.shape[-2:]
    fh = torch.full((h,), math.sqrt(2.0 / h), dtype=y.dtype, device=y.device)
    fh[0] = math.sqrt(1.0 / h)
    fw = torch.full((w,), math.sqrt(2.0 / w), dtype=y.dtype, device=y.device)
    fw[0] = math.sqrt(1.0 / w)
    return y * fh[:, None] * fw[None, :]


def dct2(x: torch.Tensor, norm: str | None = None) -> torch.Tensor:
    """2-D DCT-II over the last two dims of a real float tensor ``[..., H, W]``.

    ``norm=None``: METRIC.md's ``C[u, v] = sum_n sum_m x cos(pi(2n+1)u/2H) cos(pi(2m+1)v/2W)``
    (a quarter of SciPy's unnormalised ``dctn``). ``norm="ortho"``: SciPy's orthonormal DCT-II.
    Output: contiguous, same shape, dtype and device as the input.
    """
    if not x.is_floating_point():
        raise TypeError(f"dct2 needs a floating tensor, got {x.dtype}")
    if norm not in (None, "ortho"):
        raise ValueError(f"norm must be None or 'ortho', got {norm!r}")
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        import scipy.fft

        y = scipy.fft.dctn(x.numpy(), type=2, axes=(-2, -1), norm=norm,
                           workers=max(1, torch.get_num_threads()))
        y = torch.from_numpy(y)
        return y.mul_(0.25) if norm is None else y
    return _dct2_fft(x, norm)


def _dct2_fft(x: torch.Tensor, norm: str | None = None) -> torch.Tensor:
    """:func:`dct2` through two real FFTs (any device)."""
    y = _dct_last_fft(x)
    y = _dct_last_fft(y.transpose(-1, -2)).transpose(-1, -2).contiguous()
    return y if norm is None else _ortho_scale(y).contiguous()
