"""Torch fallback of the ``sample_patches`` op (``csrc/sample_patches/``) and its written-out
definition: activation maps to a probability map over patch centres, then seeded draws.

For ``act`` ``[N, C, h, w]`` (cell ``(i, j)`` centred on frame pixel
``(i*stride + offset, j*stride + offset)`` of a ``height x width`` frame):

1. importance ``m = mean_c |act|`` (``C = 1`` passes a non-negative map in directly);
2. Gaussian smoothing, ``sigma`` cells, taps to ``ceil(3 sigma)``, separable (columns
   first), each output divided by the sum of the taps that fall inside the map;
3. cells whose centred ``patch x patch`` square would leave the frame get 0 (on an axis
   where no cell qualifies, every cell is allowed and its corner clamped inside);
4. normalised to sum 1 (float32 ``prob``); a map with no mass becomes uniform over the
   allowed cells;
5. draw ``j`` of frame ``n``: ``u = top 53 bits of mix64(mix64(seed) + n*num + j) / 2^53``
   (SplitMix64's finaliser), then the inverse CDF: the first row whose cumulative row sum
   exceeds ``u * total``, then the first cell of that row whose running sum exceeds the rest.
   Sums run in float64, row by row, left to right, so CPU, CUDA and this fallback agree.
"""
from __future__ import annotations

import math

import numpy as np
import torch

# ----------------------------------------------------------------- random numbers
def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform01(seed: int, n_frames: int, num: int) -> np.ndarray:
    """``[n_frames, num]`` float64 uniforms in [0, 1), the op's counter-based generator."""
    s = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    idx = np.arange(n_frames * num, dtype=np.uint64).reshape(n_frames, num)
    with np.errstate(over="ignore"):
        x = _mix64(idx + s)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


# ----------------------------------------------------------------- geometry
def _axis(cells: int, size: int, stride: int, offset: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(valid [cells] bool, clamped corner [cells] int64) of one axis (step 3 above)."""
    raw = np.arange(cells, dtype=np.int64) * stride + offset - patch // 2
    valid = (raw >= 0) & (raw <= size - patch)
    if not valid.any():
        valid[:] = True
    return valid, np.clip(raw, 0, size - patch)


def _gauss_taps(sigma: float) -> np.ndarray:
    r = int(math.ceil(3.0 * sigma)) if sigma > 0 else 0
    k = np.arange(r + 1, dtype=np.float64)
    w = np.exp(-(k * k) / (2.0 * sigma * sigma)) if r > 0 else np.ones(1)
    w[0] = 1.0
    return np.concatenate([w[:0:-1], w])  # -r..r


def _smooth(m: torch.Tensor, taps: np.ndarray) -> torch.Tensor:
    """Border-renormalised separable smoothing of ``m`` [N, h, w] float64 (columns first)."""
    r = (len(taps) - 1) // 2
    if r == 0:
        return m
    k = torch.as_tensor(taps, dtype=m.dtype, device=m.device)
    x = m[:, None]
    ones = torch.ones_like(x[:1])
    kx, ky = k.view(1, 1, 1, -1), k.view(1, 1, -1, 1)
    x = torch.nn.functional.conv2d(x, kx, padding=(0, r)) / torch.nn.functional.conv2d(ones, kx, padding=(0, r))
    x = torch.nn.functional.conv2d(x, ky, padding=(r, 0)) / torch.nn.functional.conv2d(ones, ky, padding=(r, 0))
    return x[:, 0]


def sample_patches_torch(act: torch.Tensor, height: int, width: int, stride: int, offset: int, patch: int,
                         num: int, seed: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch/NumPy definition of ``dctqa::sample_patches`` (module docstring); same outputs:
    ``prob`` float32 ``[N, h, w]`` and ``corners`` int64 ``[N, num, 2]`` on ``act``'s device."""
    n, _, h, w = act.shape
    vy, cy = _axis(h, height, stride, offset, patch)
    vx, cx = _axis(w, width, stride, offset, patch)
    mask = torch.as_tensor(vy[:, None] & vx[None, :], device=act.device)
    s = _smooth(act.detach().to(torch.float64).abs().mean(1), _gauss_taps(sigma)) * mask
    total = s.sum(dim=(1, 2), keepdim=True)
    empty = ~(total > 0)
    s = torch.where(empty, mask.to(s.dtype).expand_as(s), s)
    prob = (s / s.sum(dim=(1, 2), keepdim=True)).to(torch.float32)
    corners = np.zeros((n, num, 2), dtype=np.int64)
    if num > 0 and n > 0:
        p = prob.cpu().to(torch.float64)
        row_cum = torch.cumsum(p, dim=2).numpy()  # sequential running sums per row
        cdf = np.cumsum(row_cum[:, :, -1], axis=1)
        u = uniform01(seed, n, num)
        for f in range(n):
            target = u[f] * cdf[f, -1]
            ys = np.minimum(np.searchsorted(cdf[f], target, side="right"), h - 1)
            rest = target - np.where(ys > 0, cdf[f, np.maximum(ys - 1, 0)], 0.0)
            for j, (y, t) in enumerate(zip(ys, rest)):
                x = int(np.searchsorted(row_cum[f, y], t, side="right"))
                if x >= w:  # rounding: the last positive cell of the row
                    x = int(np.flatnonzero(p[f, y].numpy() > 0)[-1])
                corners[f, j] = (cy[y], cx[x])
    return prob, torch.as_tensor(corners, device=act.device)
