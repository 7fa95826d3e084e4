"""The data a backbone contributes to the metric: filter bank, preprocessing, stem."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BackboneError, InputError

ACTIVATIONS = ("identity", "relu", "silu", "hardswish", "leaky_relu")


@dataclass(frozen=True)
class Preprocess:
    """How a detector turns RGB uint8 pixels into its input.

    ``x = (pixel[channel_order] * scale - mean) / std``, per channel, in the
    detector's channel order. ``mean`` and ``std`` are in the scaled units.
    """

    channel_order: str = "RGB"  # "RGB" or "BGR"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InputError("mean and std need exactly 3 values, one per colour channel")
        if any(s <= 0 for s in self.std) or not self.scale > 0:
            raise InputError(f"std and scale must be positive, got std={self.std}, scale={self.scale}")

    @property
    def channel_index(self) -> tuple[int, int, int]:
        """Indices into an RGB array that give the detector's channel order."""
        return (0, 1, 2) if self.channel_order == "RGB" else (2, 1, 0)

    def as_dict(self) -> dict:
        return {"channel_order": self.channel_order, "scale": self.scale,
                "mean": list(self.mean), "std": list(self.std)}


IMAGENET = Preprocess("RGB", 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True, eq=False)
class Stem:
    """The detector's first layer as the network computes it (feature domain).

    ``f_k = act(scale_k * conv(x, weight, stride, zero padding) + shift_k)``.
    ``padding`` is ``(top, bottom, left, right)`` zero rows/columns; before that the
    frame gets extra zero rows/columns at the bottom/right so that H and W become
    multiples of ``pad_to_multiple`` (a Focus stem needs even sizes).
    """

    weight: np.ndarray  # K x 3 x kh x kw, float64, on the image
    stride: int
    padding: tuple[int, int, int, int]
    scale: np.ndarray  # (K,) float64, folded normalisation
    shift: np.ndarray  # (K,) float64, bias + folded normalisation
    activation: str
    pad_to_multiple: int = 1
    negative_slope: float = 0.01  # leaky_relu only

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(f"unknown activation {self.activation!r}; expected one of {ACTIVATIONS}")
        w = np.asarray(self.weight)
        if w.ndim != 4 or w.shape[1] != 3 or 0 in w.shape:
            raise BackboneError(f"first layer weight must be K x 3 x kh x kw with K, kh, kw >= 1, "
                                f"got shape {w.shape}")
        if int(self.stride) < 1:
            raise BackboneError(f"first layer stride must be >= 1, got {self.stride}")
        if len(self.padding) != 4 or any(int(p) < 0 for p in self.padding):
            raise BackboneError(f"first layer padding must be 4 values >= 0 (top, bottom, left, right), "
                                f"got {self.padding}")
        if int(self.pad_to_multiple) < 1:
            raise BackboneError(f"pad_to_multiple must be >= 1, got {self.pad_to_multiple}")

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Size ``(H', W')`` of the maps for an ``h x w`` frame; ``(0, 0)`` or less if the kernel
        is larger than the padded frame."""
        m = int(self.pad_to_multiple)
        top, bottom, left, right = (int(p) for p in self.padding)
        kh, kw = self.weight.shape[2:]
        ph, pw = h + (-h) % m + top + bottom, w + (-w) % m + left + right
        s = int(self.stride)
        return ((ph - kh) // s + 1 if ph >= kh else 0, (pw - kw) // s + 1 if pw >= kw else 0)


@dataclass(frozen=True, eq=False)
class Backbone:
    """Filter bank ``h`` (spectral domain), preprocessing ``P`` and optional stem.

    Attributes:
        name: the name it was created from (e.g. ``fasterrcnn_resnet50_fpn``).
        filters: K x 3 x kh x kw float64, channel ``c`` in the detector's order, used
            at stride 1 by the spectral domain (biases ignored).
        preprocess: see :class:`Preprocess`.
        stem: the real first layer for the feature domain, or ``None`` (pixel).
        source: where the weights came from (file, cache path, "identity").
    """

    name: str
    filters: np.ndarray
    preprocess: Preprocess
    stem: Stem | None
    source: str
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.filters
        if f.ndim != 4 or f.shape[1] != 3:
            raise InputError(f"filter bank must be K x 3 x kh x kw, got shape {f.shape}")
        if f.shape[0] == 0 or f.shape[2] == 0 or f.shape[3] == 0:
            raise BackboneError(f"filter bank of backbone {self.name!r} is empty (shape {f.shape}): "
                                f"Q is undefined without filters; expected K, kh, kw >= 1")
        if not np.isfinite(f).all():
            raise InputError(f"filter bank of backbone {self.name!r} holds NaN or infinity")

    @property
    def num_filters(self) -> int:
        return int(self.filters.shape[0])

    def describe(self) -> dict:
        """JSON-ready summary for logs."""
        k, c, kh, kw = self.filters.shape
        return {"name": self.name, "filters": [k, c, kh, kw], "source": self.source,
                "preprocess": self.preprocess.as_dict(),
                "stem": None if self.stem is None else {
                    "kernel": list(self.stem.weight.shape[2:]), "stride": self.stem.stride,
                    "activation": self.stem.activation},
                **self.details}
