"""The three domains of METRIC.md as fast torch computations of ``Q_k``.

Each domain object turns two batches of preprocessed frames (``[N, 3, H, W]``
float32, detector channel order) into ``Q_k`` (``[N, K]`` float64) through
:mod:`dctqa.ops`, which picks the compiled op for the device or the torch fallback.
The spectral and pixel domains also take the RGB frames themselves
(:meth:`Domain.qk_frames`, the fused op ``spectral_qk_frames``: preprocessing and DCTs
in C++), which :class:`dctqa.Metric` uses whenever that op is built for the device.
"""
from __future__ import annotations

import torch

from .. import ops
from ..backbones import Backbone
from ..constants import EPSILON
from ..errors import InputError
from ..ops.dct import dct2
from .feature import StemModule, feature_magnitudes_torch

#: Bytes of the largest intermediate tensor (of one frame, float32) that one CPU computation
#: of the torch/op path may hold per frame pair in a chunk; a batch is split into chunks
#: that stay within it. Why: glibc's malloc serves an allocation above its mmap threshold
#: (dynamic, at most 32 MiB) by a fresh ``mmap`` and returns a freed heap top above twice
#: the threshold to the system, so a call whose tensors are larger page-faults all of its
#: memory anew on every call, and batch 8 of 768x576 frames in the feature domain ran slower
#: per pair than batch 1. 8 MiB is the measured frontier below which chunks ran without page
#: faults in steady state (benchmarks/test_bench_metric.py, figures in benchmarks/RESULTS.md).
CPU_CHUNK_BYTES = 8 << 20


class Domain:
    name: str = ""
    op: str = ""  # the dctqa.ops entry point this domain calls
    fused: bool = False  # whether qk_frames (dctqa.ops.spectral_qk_frames) serves this domain

    def pair_bytes(self, h: int, w: int) -> int:
        """Bytes of the largest float32 intermediate one frame pair of ``h x w`` needs on
        the torch/op path (the preprocessed frame, 3 planes; domains with larger ones override)."""
        return 3 * h * w * 4

    def chunk_pairs(self, h: int, w: int, device: torch.device, fused: bool) -> int:
        """Most frame pairs of ``h x w`` to compute at once for speed (>= 1).

        CPU, torch/op path: as many as keep :meth:`pair_bytes` within :data:`CPU_CHUNK_BYTES`,
        so that a larger batch is never slower per pair. The fused C++ op (``fused``) and
        CUDA (a caching allocator) take any batch: no limit there.
        """
        if fused or device.type != "cpu":
            return 1 << 30
        return max(1, CPU_CHUNK_BYTES // max(1, self.pair_bytes(h, w)))

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def qk_frames(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """``Q_k`` ``[N, K]`` float64 from RGB frames ``[N, 3, H, W]`` (uint8 or float 0..255)."""
        raise NotImplementedError(f"domain {self.name!r} has no fused path")


class SpectralDomain(Domain):
    """METRIC.md "spectral": the DCT-II identity with the backbone's filters at stride 1.

    normalise: the reduction of the ratio (:data:`dctqa.domains.normalised.FORMS`); ``"mean"``
    is metric version 1 (the ops, fused or not); any other form is computed in torch from the
    same spectra (:func:`dctqa.ops.spectral_torch.spectral_magnitudes_torch`) by
    :func:`dctqa.domains.normalised.normalised_qk`, never by the fused op.
    """

    name, op, fused = "spectral", "spectral_qk", True

    def __init__(self, backbone: Backbone, device: torch.device, epsilon: float = EPSILON,
                 normalise: str = "mean") -> None:
        from .normalised import FORMS

        if normalise not in FORMS:
            raise InputError(f"unknown normalisation {normalise!r}; expected one of {FORMS}")
        self.filters = torch.as_tensor(backbone.filters, dtype=torch.float32, device=device)
        self.preprocess = backbone.preprocess
        self.epsilon = epsilon
        self.normalise = normalise
        if normalise != "mean":
            self.fused, self.op = False, "torch"

    def pair_bytes(self, h: int, w: int) -> int:
        """The preprocessed frame (3 planes); with a normalised form, the ``K`` magnitude maps."""
        k = 3 if self.normalise == "mean" else max(3, self.filters.shape[0])
        return k * h * w * 4

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        if self.normalise == "mean":
            return ops.spectral_qk(dct2(xo), dct2(xc), self.filters, self.epsilon)
        from ..ops.spectral_torch import spectral_magnitudes_torch
        from .normalised import normalised_qk

        ao, ac = spectral_magnitudes_torch(dct2(xo), dct2(xc), filters=self.filters)
        return normalised_qk(ao, ac, self.normalise, self.epsilon)

    def qk_frames(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return ops.spectral_qk_frames(ref, dist, self.filters, self.preprocess, self.epsilon)


class PixelDomain(Domain):
    """METRIC.md "pixel": identity filters, so ``A_c = 4 |C_c|`` directly.

    The fused path runs the spectral op with the pixel backbone's identity bank (``K = 3``,
    ``1 x 1``), which gives the same ``4 |C_c|``.
    """

    name, op, fused = "pixel", "ratio_qk", True

    def __init__(self, epsilon: float = EPSILON, backbone: Backbone | None = None) -> None:
        from ..backbones import pixel_backbone

        bb = backbone if backbone is not None else pixel_backbone()
        self.filters = torch.as_tensor(bb.filters, dtype=torch.float32)
        self.preprocess = bb.preprocess
        self.epsilon = epsilon

    def qk_frames(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return ops.spectral_qk_frames(ref, dist, self.filters, self.preprocess, self.epsilon)

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

    def pair_bytes(self, h: int, w: int) -> int:
        """The larger of the padded frame (3 planes) and the ``K`` first-layer maps, float32."""
        s = self.stem.stem
        oh, ow = s.output_size(h, w)
        top, bottom, left, right = s.padding
        padded = 3 * (h + top + bottom + s.pad_to_multiple) * (w + left + right + s.pad_to_multiple)
        return 4 * max(padded, self.stem.weight.shape[0] * max(oh, 1) * max(ow, 1))

    def qk(self, xo: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        h, w = xo.shape[-2:]
        oh, ow = self.stem.stem.output_size(h, w)
        if oh < 1 or ow < 1:
            kh, kw = self.stem.stem.weight.shape[2:]
            raise InputError(f"frames of {w}x{h} pixels are smaller than the first layer's {kw}x{kh} kernel "
                             f"(after padding); the feature domain needs larger frames")
        return ops.ratio_qk(feature_magnitudes_torch(xo, self.stem),
                            feature_magnitudes_torch(xc, self.stem), self.epsilon)


def make_domain(name: str, backbone: Backbone, device: torch.device, epsilon: float = EPSILON,
                normalise: str = "mean") -> Domain:
    """Domain object ``name`` (``spectral``, ``feature`` or ``pixel``) for ``backbone`` on ``device``;
    ``normalise`` other than ``"mean"`` (version 1) only for ``spectral``."""
    if normalise != "mean" and name != "spectral":
        raise InputError(f"normalise={normalise!r} is defined for the spectral domain only, not {name!r}")
    if name == "spectral":
        return SpectralDomain(backbone, device, epsilon, normalise)
    if name == "pixel":
        return PixelDomain(epsilon, backbone if backbone.name == "pixel" else None)
    if name == "feature":
        return FeatureDomain(backbone, device, epsilon)
    raise InputError(f"unknown domain {name!r}; expected one of 'spectral', 'feature', 'pixel'")
