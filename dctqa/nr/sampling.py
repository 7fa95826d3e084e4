"""Where to cut the 224 x 224 patches the no-reference model looks at.

Three samplers, all seeded and all returning patch top-left corners ``(top, left)`` in frame
pixels, ``LongTensor [N, num, 2]``, every patch inside the frame:

* ``activation`` (the paper's, the default): the op ``dctqa::sample_patches`` (schema in
  ``csrc/sample_patches/``, CPU and CUDA kernels; :func:`sample_patches_torch` is its torch
  fallback and the written-out definition) turns first-layer activation maps into a
  probability map over patch centres and draws from it.
* ``uniform``: centres uniform over the positions where a patch fits.
* ``grid``: a fixed near-square grid of tiles spread evenly over the frame (no randomness).

The op's algorithm, for ``act`` ``[N, C, h, w]`` (cell ``(i, j)`` centred on frame pixel
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

from ..errors import InputError

SAMPLINGS = ("activation", "uniform", "grid")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_fake_registered = False


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


# ----------------------------------------------------------------- the op's fallback
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


# ----------------------------------------------------------------- dispatch
def _register_fake() -> None:
    global _fake_registered
    if _fake_registered:
        return

    def fake(act, height, width, stride, offset, patch, num, seed, sigma):
        torch._check(act.dim() == 4, lambda: "act must be 4-D [N, C, h, w]")
        return (act.new_empty((act.shape[0], act.shape[2], act.shape[3])),
                act.new_empty((act.shape[0], num, 2), dtype=torch.int64))

    try:
        torch.library.register_fake("dctqa::sample_patches", fake)
    except RuntimeError as exc:  # already registered (module reloaded)
        if "already" not in str(exc).lower():
            raise
    _fake_registered = True


def implementation_for(device: torch.device | str) -> str:
    """``"cuda-op"``, ``"cpp-op"`` or ``"torch"``: what :func:`sample_patches` runs on ``device``."""
    from .. import ops

    if ops._disabled():
        return "torch"
    dev = torch.device(device)
    key = {"cuda": "CUDA", "cpu": "CPU"}.get(dev.type)
    if key and ops._has_kernel("sample_patches", key):
        _register_fake()
        return "cuda-op" if key == "CUDA" else "cpp-op"
    return "torch"


def sample_patches(act: torch.Tensor, height: int, width: int, *, stride: int = 1, offset: int = 0,
                   patch: int = 224, num: int = 2, seed: int = 0, sigma: float = 8.0,
                   impl: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation-map patch sampling (module docstring): ``(prob [N, h, w] float32,
    corners [N, num, 2] int64)``; ``impl`` forces ``"op"`` or ``"torch"`` (default: the op
    when it has a kernel for ``act``'s device)."""
    if not isinstance(act, torch.Tensor) or act.dim() != 4 or not act.is_floating_point():
        raise InputError(f"act must be a float tensor [N, C, h, w], got "
                         f"{getattr(act, 'shape', type(act).__name__)}")
    if min(act.shape[1:]) < 1:
        raise InputError(f"act has an empty dimension: {tuple(act.shape)}")
    if not (1 <= patch <= min(height, width)):
        raise InputError(f"a {patch}x{patch} patch does not fit a {height}x{width} frame")
    if stride < 1 or offset < 0 or num < 0 or not (0 <= sigma <= 1e4):
        raise InputError(f"need stride >= 1, offset >= 0, num >= 0, 0 <= sigma <= 1e4; got "
                         f"{stride}, {offset}, {num}, {sigma}")
    if not bool(torch.isfinite(act).all()):
        raise InputError("activation maps contain NaN or infinity")
    chosen = implementation_for(act.device) if impl in (None, "op") else "torch"
    if impl == "op" and chosen == "torch":
        raise InputError(f"no compiled sample_patches kernel for {act.device}")
    if chosen == "torch":
        return sample_patches_torch(act, height, width, stride, offset, patch, num, seed, sigma)
    return torch.ops.dctqa.sample_patches(act.to(torch.float32), int(height), int(width), int(stride),
                                          int(offset), int(patch), int(num), int(seed), float(sigma))


def uniform_corners(n: int, height: int, width: int, patch: int, num: int, seed: int) -> torch.Tensor:
    """``[n, num, 2]`` corners uniform over every position where the patch fits."""
    u = uniform01(seed, n, 2 * num).reshape(n, num, 2)
    span = np.array([height - patch + 1, width - patch + 1], dtype=np.float64)
    return torch.as_tensor(np.minimum(np.floor(u * span), span - 1).astype(np.int64))


def grid_corners(n: int, height: int, width: int, patch: int, num: int) -> torch.Tensor:
    """``[n, num, 2]`` corners of ``num`` tiles on a near-square grid spread over the frame
    (``floor(sqrt(num))`` rows from top to bottom edge, filled row by row; a lone tile on an
    axis is centred)."""
    rows = max(1, int(math.isqrt(num)))
    cols = max(1, math.ceil(num / rows))

    def spread(span: int, k: int) -> np.ndarray:
        return np.array([span // 2]) if k == 1 else np.rint(np.linspace(0, span, k)).astype(np.int64)

    ys, xs = spread(height - patch, rows), spread(width - patch, cols)
    grid = np.array([(y, x) for y in ys for x in xs][:num], dtype=np.int64).reshape(num, 2)
    return torch.as_tensor(np.broadcast_to(grid, (n, num, 2)).copy())


def patch_corners(sampling: str, height: int, width: int, patch: int, num: int, seed: int = 0,
                  act: torch.Tensor | None = None, stride: int = 1, offset: int = 0,
                  sigma: float = 8.0, n: int = 1) -> torch.Tensor:
    """Corners ``[N, num, 2]`` (CPU int64) from one of :data:`SAMPLINGS`; ``activation`` needs
    ``act`` (``N`` = its batch size), the others take ``n``."""
    if sampling not in SAMPLINGS:
        raise InputError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")
    if not (1 <= patch <= min(height, width)):
        raise InputError(f"a {patch}x{patch} patch does not fit a {height}x{width} frame")
    if num < 1:
        raise InputError(f"need at least one patch, got {num}")
    if sampling == "activation":
        if act is None:
            raise InputError("activation sampling needs the activation maps")
        return sample_patches(act, height, width, stride=stride, offset=offset, patch=patch, num=num,
                              seed=seed, sigma=sigma)[1].cpu()
    if sampling == "uniform":
        return uniform_corners(n, height, width, patch, num, seed)
    return grid_corners(n, height, width, patch, num)
