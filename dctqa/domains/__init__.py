"""The three domains of METRIC.md as fast torch computations of ``Q_k``.

Each domain object turns two batches of preprocessed frames (``[N, 3, H, W]``
float32, detector channel order) into ``Q_k`` (``[N, K]`` float64) through
:mod:`dctqa.ops`, which picks the compiled op for the device or the torch fallback.
"""
from __future__ import annotations

import torch

from .. import ops
from ..backbones import Backbone
from ..constants import EPSILON
from ..dct import dct2
from ..errors import InputError
from .feature import StemModule, feature_magnitudes_torch


class Domain:
    name: str = ""
    op: str = ""  # the dctqa.ops entry point this domain calls

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class SpectralDomain(Domain):
    """METRIC.md "spectral": the DCT-II identity with the backbone's filters at stride 1."""

    name, op = "spectral", "spectral_qk"

    def __init__(self, backbone: Backbone, device: torch.device, epsilon: float = EPSILON) -> None:
        self.filters = torch.as_tensor(backbone.filters, dtype=torch.float32, device=device)
        self.epsilon = epsilon

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        return ops.spectral_qk(dct2(xo), dct2(xc), self.filters, self.epsilon)


class PixelDomain(Domain):
    """METRIC.md "pixel": identity filters, so ``A_c = 4 |C_c|`` directly."""

    name, op = "pixel", "ratio_qk"

    def __init__(self, epsilon: float = EPSILON) -> None:
        self.epsilon = epsilon

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        return ops.ratio_qk(4.0 * dct2(xo).abs_(), 4.0 * dct2(xc).abs_(), self.epsilon)


class FeatureDomain(Domain):
    """METRIC.md "feature": ``|DCT-II_ortho|`` of the real first-layer maps."""

    name, op = "feature", "ratio_qk"

    def __init__(self, backbone: Backbone, device: torch.device, epsilon: float = EPSILON) -> None:
        if backbone.stem is None:
            raise InputError(f"backbone {backbone.name!r} has no network layer; the feature domain needs "
                             f"a detector backbone (torchvision name or onnx:PATH)")
        self.stem = StemModule(backbone.stem, device)
        self.epsilon = epsilon

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        h, w = xo.shape[-2:]
        oh, ow = self.stem.stem.output_size(h, w)
        if oh < 1 or ow < 1:
            kh, kw = self.stem.stem.weight.shape[2:]
            raise InputError(f"frames of {w}x{h} pixels are smaller than the first layer's {kw}x{kh} kernel "
                             f"(after padding); the feature domain needs larger frames")
        return ops.ratio_qk(feature_magnitudes_torch(xo, self.stem),
                            feature_magnitudes_torch(xc, self.stem), self.epsilon)


def make_domain(name: str, backbone: Backbone, device: torch.device, epsilon: float = EPSILON) -> Domain:
    """Domain object ``name`` (``spectral``, ``feature`` or ``pixel``) for ``backbone`` on ``device``."""
    if name == "spectral":
        return SpectralDomain(backbone, device, epsilon)
    if name == "pixel":
        return PixelDomain(epsilon)
    if name == "feature":
        return FeatureDomain(backbone, device, epsilon)
    raise InputError(f"unknown domain {name!r}; expected one of 'spectral', 'feature', 'pixel'")
