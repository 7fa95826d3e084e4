"""Torch fallback of the ``ratio_qk`` op: METRIC.md's ratio/median/mean reduction (also the
last step of the spectral fallback)."""
from __future__ import annotations

import torch

from ..constants import ABS_FLOOR, EPSILON


def lower_median(a: torch.Tensor) -> torch.Tensor:
    """Lower median over the last dim: the value of 0-based rank ``floor((n-1)/2)``."""
    n = a.shape[-1]
    return torch.kthvalue(a, (n - 1) // 2 + 1, dim=-1).values


def ratio_qk_torch(ao: torch.Tensor, ac: torch.Tensor, epsilon: float = EPSILON) -> torch.Tensor:
    """Per-filter quality ``Q_k`` from magnitudes.

    ao, ac: ``[N, K, ...]`` magnitudes (>= 0) of reference and distorted frames, any
    float dtype, same shape. Returns ``[N, K]`` float64:
    ``mean((ao + eps_k) / (ac + eps_k))`` with ``eps_k = epsilon * lower_median(ao_k) + 1e-12``,
    computed as ``1 + mean((ao - ac) / (ac + eps_k))`` (the same number): every term is
    exactly 0 where ``ao == ac``, so identical frames give exactly 1, as in every implementation.
    """
    if ao.shape != ac.shape:
        raise ValueError(f"magnitude shapes differ: {tuple(ao.shape)} vs {tuple(ac.shape)}")
    n, k = ao.shape[:2]
    ao = ao.flatten(2)  # [N, K, M] (flatten, unlike reshape(n, k, -1), takes N or K = 0)
    ac = ac.flatten(2)
    eps = (epsilon * lower_median(ao).double() + ABS_FLOOR).to(ao.dtype)[..., None]
    return ((ao - ac) / (ac + eps)).double().mean(dim=-1) + 1.0
