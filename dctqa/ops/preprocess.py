"""METRIC.md's preprocessing ``P`` in torch (the detector's input from RGB pixels); the fused
op's fallback and the unfused path of :class:`dctqa.Metric` use it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..backbones.base import Preprocess


def _copy_is_async(src: torch.device, dst: torch.device) -> bool:
    """Whether a copy ``src -> dst`` may be issued with ``non_blocking=True``.

    Only host -> GPU copies: the GPU stream orders them before any kernel that reads the
    result. A copy *to the host* must block: with ``non_blocking=True`` the host buffer
    is returned before the transfer ends and is read half-written (wrong Q, issue 7).
    """
    return src.type == "cpu" and dst.type == "cuda"


def preprocess_torch(t: torch.Tensor, p: "Preprocess", device: torch.device | str) -> torch.Tensor:
    """``[N, 3, H, W]`` RGB 0..255 (any strides) -> contiguous float32 detector input on ``device``.

    METRIC.md's ``P``: channel ``c`` of the output is ``pixel[order[c]] * scale / std_c - mean_c / std_c``,
    one gathered copy and at most one affine pass per plane.
    """
    n, _, h, w = t.shape
    device = torch.device(device)
    src = t.to(device=device, non_blocking=_copy_is_async(t.device, device))
    out = torch.empty((n, 3, h, w), dtype=torch.float32, device=device)
    for c, s in enumerate(p.channel_index):
        plane = out[:, c]
        plane.copy_(src[:, s])
        a, b = p.scale / p.std[c], -p.mean[c] / p.std[c]
        if a != 1.0:
            plane.mul_(a)
        if b != 0.0:
            plane.add_(b)
    return out
