"""Feature domain, fast torch path: ``|DCT-II_ortho(f_k)|`` of the real first-layer maps."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backbones import Stem
from ..ops.dct import dct2


class StemModule:
    """The first layer of a :class:`~dctqa.backbones.Stem` as float32 torch tensors on one device."""

    def __init__(self, stem: Stem, device: torch.device) -> None:
        self.stem = stem
        self.weight = torch.as_tensor(stem.weight, dtype=torch.float32, device=device)
        self.scale = torch.as_tensor(stem.scale, dtype=torch.float32, device=device)[:, None, None]
        self.shift = torch.as_tensor(stem.shift, dtype=torch.float32, device=device)[:, None, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, 3, H, W]`` preprocessed float32 -> maps ``[N, K, H', W']``."""
        s = self.stem
        h, w = x.shape[-2:]
        m = s.pad_to_multiple
        top, bottom, left, right = s.padding
        x = F.pad(x, (left, right + (-w) % m, top, bottom + (-h) % m))
        z = F.conv2d(x, self.weight, stride=s.stride)
        z.mul_(self.scale).add_(self.shift)  # in place: no new maps-sized tensor per step
        if s.activation == "relu":
            return F.relu_(z)
        if s.activation == "silu":
            return F.silu(z, inplace=True)
        if s.activation == "hardswish":
            return F.hardswish(z, inplace=True)
        if s.activation == "leaky_relu":
            return F.leaky_relu_(z, s.negative_slope)
        return z


def feature_magnitudes_torch(x: torch.Tensor, stem: StemModule) -> torch.Tensor:
    """``[N, 3, H, W]`` preprocessed frames -> ``[N, K, H', W']`` feature-domain magnitudes."""
    return dct2(stem(x), norm="ortho").abs_()
