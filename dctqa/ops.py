"""The one place that knows whether the compiled ops exist for a device.

(Initial version by the lead: torch fallbacks only. The kernels' owner extends it.)
"""
from __future__ import annotations

import os

import torch


def _ext_error() -> str | None:
    try:
        from . import _C  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def available() -> dict:
    err = _ext_error()
    return {"reference": True, "torch": True, "cpp": False, "cuda": False,
            "cuda_device": torch.cuda.is_available(), "extension_error": err}


def implementation_for(device: torch.device | str, op: str = "spectral_qk") -> str:
    return "torch"


def spectral_qk(co: torch.Tensor, cc: torch.Tensor, filters: torch.Tensor, epsilon: float) -> torch.Tensor:
    from .domains.spectral import spectral_qk_torch

    return spectral_qk_torch(co, cc, filters, epsilon)


def ratio_qk(ao: torch.Tensor, ac: torch.Tensor, epsilon: float) -> torch.Tensor:
    from .reduction import ratio_qk_torch

    return ratio_qk_torch(ao, ac, epsilon)
