"""Where to cut the 224 x 224 patches the no-reference model looks at.

Three samplers, all seeded and all returning patch top-left corners ``(top, left)`` in frame
pixels, ``LongTensor [N, num, 2]``, every patch inside the frame:

* ``activation`` (the paper's, the default): the op :func:`dctqa.ops.sample_patches` (schema
  in ``csrc/sample_patches/``, CPU and CUDA kernels; :func:`dctqa.ops.patches_torch.sample_patches_torch`
  is its torch fallback and the written-out definition) turns first-layer activation maps
  into a probability map over patch centres and draws from it.
* ``uniform``: centres uniform over the positions where a patch fits.
* ``grid``: a fixed near-square grid of tiles spread evenly over the frame (no randomness).

The op's algorithm is written out in :mod:`dctqa.ops.patches_torch` (its torch fallback).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from ..ops import sample_patches
from ..ops.patches_torch import uniform01

SAMPLINGS = ("activation", "uniform", "grid")


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
