"""``dctqa.Metric``: the object an application holds to score frame pairs.

One ``Metric`` per (backbone, domain, device); it is reusable and safe to call from
several threads (it holds no per-call state; the only shared state, the cache of
filter spectra, is locked).
"""
from __future__ import annotations

import logging
import contextlib
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import ops
from . import progress as _progress
from .backbones import Backbone, get_backbone
from .constants import DEFAULT_BACKBONE, DOMAINS, EPSILON, METRIC_VERSION
from .domains import make_domain
from .errors import InputError, ResourceError
from .ops.preprocess import _copy_is_async, preprocess_torch  # noqa: F401  (_copy_is_async: tests)
from .registry import DCTQA_METRICS, NORMALISED_METRICS, metric_info
from . import settings
from .values import is_int

_log = logging.getLogger(__name__)

#: Devices a Metric can run on (and frames may live on).
SUPPORTED_DEVICES = ("cpu", "cuda")
#: Float pixels must lie in this range (0..255 plus a little resampling overshoot), in units of
#: ``data_range / 255`` (with ``data_range=1.0``: -1/255 .. 256/255).
PIXEL_RANGE = (-1.0, 256.0)
#: The ``data_range`` of 8-bit pixels, the scale the metric is defined on (METRIC.md).
DATA_RANGE_8BIT = 255.0
#: Rough peak bytes of host/GPU memory per pixel of one frame pair (batch 1, spectral), for messages.
_BYTES_PER_PIXEL = 100

FrameBatch = Any  # ndarray HxWx3 / NxHxWx3, torch Tensor [N,]3xHxW, or a sequence of HxWx3 arrays


@dataclass
class VideoScore:
    """Per-frame scores of a video pair.

    q: ``(n,)`` float64, Q of each scored frame pair (frame ``frame_numbers[i]`` of both).
    q_filters: ``(n, K)`` per-filter ``Q_k`` or ``None``.
    ref_frames / dist_frames: frames decoded from each file (after ``max_frames``).
    ref_fps / dist_fps: each file's frame rate (frames/s; ``None`` for still images or an
    unknown rate). Frames are paired by index whatever the rates; different rates add a
    warning.
    """

    q: np.ndarray
    frame_numbers: np.ndarray
    ref_frames: int
    dist_frames: int
    q_filters: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    decode_errors: int = 0  # with ignore_decode_errors: damage counted in both files (see io.DecodeReport)
    missing_frames: int = 0
    ref_fps: float | None = None
    dist_fps: float | None = None


#: Frame rates that differ by more than this fraction are reported as different.
FPS_TOLERANCE = 1e-3


def frame_rate_note(ref_fps: float | None, dist_fps: float | None) -> str | None:
    """A warning when the two frame rates (frames/s) differ, else ``None``: pairs are made
    by frame index, so at other rates frame ``i`` of each file shows another instant."""
    if ref_fps is None or dist_fps is None or not (ref_fps > 0 and dist_fps > 0):
        return None
    if abs(ref_fps - dist_fps) <= FPS_TOLERANCE * max(ref_fps, dist_fps):
        return None
    return (f"the reference runs at {ref_fps:g} frames/s and the distorted file at {dist_fps:g} frames/s; "
            f"frames are paired by index, so frame i of each shows a different instant (resample one "
            f"to the other's rate first for a meaningful score)")


def check_data_range(data_range: object) -> float:
    """``data_range`` as a float: the value of a white float pixel (255.0, or 1.0 for floats in
    0..1), a finite number > 0; else :class:`InputError`."""
    from .values import is_real

    if not is_real(data_range) or data_range <= 0:
        raise InputError(f"data_range must be a finite number > 0 (255.0 for float pixels in 0..255, 1.0 for "
                         f"float pixels in 0..1), got {data_range!r}")
    return float(data_range)


def _looks_unit_range(hi: float, data_range: float) -> bool:
    """Whether floats whose largest pixel is ``hi`` look like 0..1 while ``data_range`` says 0..255.
    An all-zero (black) batch is 0 in both ranges, so it is never refused."""
    return data_range == DATA_RANGE_8BIT and 0.0 < hi <= 1.0


def _check_float_values(name: str, t: torch.Tensor, data_range: float) -> None:
    """:class:`InputError` for NaN/inf, pixels outside ``0..data_range`` (plus the resampling
    overshoot of :data:`PIXEL_RANGE`), or frames that look like 0..1 under ``data_range=255``.
    Reads two numbers on the host (a device sync for CUDA frames)."""
    lo, hi = (float(v) for v in torch.aminmax(t))  # one pass; NaN or inf show in the extremes
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name}: pixels hold NaN or infinity")
    f = data_range / DATA_RANGE_8BIT
    if lo < PIXEL_RANGE[0] * f or hi > PIXEL_RANGE[1] * f:
        raise InputError(f"{name}: float pixels range from {lo:g} to {hi:g}; expected values in 0..{data_range:g} "
                         f"(data_range={data_range:g}; at most {PIXEL_RANGE[0] * f:g}..{PIXEL_RANGE[1] * f:g} is "
                         f"accepted for resampling overshoot)")
    if _looks_unit_range(hi, data_range):
        raise InputError(f"{name}: float frames in 0..1 (largest pixel {hi:g}) but data_range=255 expects 0..255; "
                         f"pass data_range=1.0 for float frames in 0..1 (a frame that really is 0..255 and nearly "
                         f"black: pass it as uint8)")


def value_flags(t: torch.Tensor, unit_check: bool) -> torch.Tensor:
    """``(N,)`` bool on ``t``'s device, computed there without reading anything on the host:
    whether each frame of a float batch ``[N, 3, H, W]`` *already scaled to 0..255* (as
    :func:`_as_nchw` returns it) passes :func:`_check_float_values`: finite and within
    :data:`PIXEL_RANGE`; with ``unit_check`` (``data_range=255``) the 0..1 look is judged on the
    whole batch, as there, and fails every frame of it."""
    mn, mx = t.amin(dim=(1, 2, 3)), t.amax(dim=(1, 2, 3))
    ok = torch.isfinite(mn) & torch.isfinite(mx) & (mn >= PIXEL_RANGE[0]) & (mx <= PIXEL_RANGE[1])
    if unit_check:
        top = mx.max()
        ok &= ~((top > 0.0) & (top <= 1.0))
    return ok


def _as_nchw(name: str, frames: FrameBatch, max_pixels: int | None = None,
             data_range: float = DATA_RANGE_8BIT, check_values: bool = True, scale: bool = True) -> torch.Tensor:
    """Validate one batch and return it as ``[N, 3, H, W]`` (uint8, or float in 0..255: float
    frames are scaled by ``255 / data_range``). Tensors are detached (no gradient flows).

    The frame size is checked against ``max_pixels`` before any copy or scan of the pixels.
    ``check_values=False`` leaves out the checks of float pixel values (they read the values on
    the host); the caller then checks them with :func:`value_flags`. ``scale=False`` returns
    float frames unscaled (in ``0..data_range``, checked all the same).
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputError(f"{name}: empty list of frames")
        arrays = [np.asarray(f.cpu() if isinstance(f, torch.Tensor) else f) for f in frames]
        shapes = sorted({a.shape for a in arrays})
        if len(shapes) > 1:
            raise InputError(f"{name}: the frames of the list differ in shape ({', '.join(map(str, shapes[:4]))}); "
                             f"every frame must be H x W x 3 of one size")
        if max_pixels is not None and arrays[0].ndim >= 2:
            _check_size(arrays[0].shape[:2], max_pixels)
        frames = np.stack(arrays)
    if isinstance(frames, np.ndarray):
        a = frames
        if a.ndim == 2 or (a.ndim in (3, 4) and a.shape[-1] == 1):
            raise InputError(f"{name}: grayscale frame of shape {a.shape}; expected H x W x 3 RGB "
                             f"(repeat the channel: np.stack([g, g, g], -1))")
        if a.ndim not in (3, 4) or a.shape[-1] != 3:
            what = "RGBA (drop or composite the alpha channel)" if a.ndim in (3, 4) and a.shape[-1] == 4 else ""
            raise InputError(f"{name}: expected H x W x 3 or N x H x W x 3 RGB, got shape {a.shape} {what}".rstrip())
        if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"{name}: expected uint8 or float pixels (0..255), got {a.dtype}")
        if max_pixels is not None:
            _check_size(a.shape[-3:-1], max_pixels)
        t = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 3 else a)).permute(0, 3, 1, 2)
    elif isinstance(frames, torch.Tensor):
        if frames.layout != torch.strided:
            raise InputError(f"{name}: sparse or other non-dense tensor ({frames.layout}); pass a dense tensor "
                             f"(.to_dense())")
        if frames.device.type not in SUPPORTED_DEVICES:
            raise InputError(f"{name}: tensor on device {frames.device}; expected a tensor on one of "
                             f"{SUPPORTED_DEVICES}")
        t = frames.detach()
        t = t[None] if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[1] != 3:
            raise InputError(f"{name}: expected a tensor [N, 3, H, W] (RGB, channels first), got {tuple(frames.shape)}")
        if t.dtype != torch.uint8 and not t.is_floating_point():
            raise InputError(f"{name}: expected a uint8 or float tensor (0..255), got {t.dtype}")
        if max_pixels is not None:
            _check_size(tuple(t.shape), max_pixels)
    else:
        raise InputError(f"{name}: expected a NumPy array or torch tensor, got {type(frames).__name__}")
    if t.shape[0] == 0 or t.shape[2] == 0 or t.shape[3] == 0:
        raise InputError(f"{name}: empty batch or zero-sized frame, shape {tuple(t.shape)}")
    if t.is_floating_point():
        if check_values:
            _check_float_values(name, t, data_range)
        if scale and data_range != DATA_RANGE_8BIT:
            t = t * (DATA_RANGE_8BIT / data_range)
    return t


def _check_size(shape: tuple[int, ...], max_pixels: int) -> None:
    """:class:`ResourceError`, before any allocation, when ``H x W`` exceeds ``max_pixels``."""
    h, w = int(shape[-2]), int(shape[-1])
    if h * w > max_pixels:
        raise ResourceError(f"frames of {w}x{h} = {h * w} pixels exceed the size limit of {max_pixels} pixels "
                            f"per frame; scale the frames down, or raise the limit with Metric(max_pixels=...) "
                            f"or DCTQA_MAX_PIXELS (about {_BYTES_PER_PIXEL} bytes of memory per pixel are needed)")


def _rss_safe_numpy(t: torch.Tensor) -> np.ndarray:
    """An owned float64 NumPy array with the values of ``t`` (blocking copy to the host).

    No view of a torch tensor is kept: a list of such views held by a long video kept
    every batch's torch allocations alive and memory grew with the video's length."""
    return t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def check_device(device: object) -> torch.device:
    """``device`` as a torch.device of a supported type with hardware present, else InputError."""
    if not isinstance(device, (str, torch.device)):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"bad device {device!r}: {exc}") from None
    if dev.type not in SUPPORTED_DEVICES:
        raise InputError(f"device {str(dev)!r} is not supported; expected 'cpu' or 'cuda[:N]'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(dev)!r} requested but torch sees no CUDA GPU; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(dev)!r} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    return dev


def _check_path(name: str, path: object) -> None:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InputError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    if not os.fspath(path):
        raise InputError(f"{name} is an empty path")


_OOM_TYPES: tuple[type[BaseException], ...] = (MemoryError, getattr(torch, "OutOfMemoryError",
                                                                     torch.cuda.OutOfMemoryError))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, _OOM_TYPES):
        return True
    msg = str(exc)
    return isinstance(exc, RuntimeError) and ("not enough memory" in msg or "can't allocate memory" in msg
                                              or "out of memory" in msg.lower())


class Metric:
    """The dctqa full-reference metric, ready to score.

    Args:
        backbone: a name from :func:`dctqa.backbones.backbone_names` (``onnx:PATH`` for
            any ONNX detector) or a :class:`~dctqa.backbones.Backbone`. Ignored (set to
            ``pixel``) when ``domain="pixel"``.
        domain: ``"spectral"`` (default, the paper's), ``"feature"`` or ``"pixel"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        weights: detector weights file for torchvision backbones (else torchvision's cache).
        epsilon: relative floor of the ratio (METRIC.md: 0.01).
        normalise: ``"mean"`` (default: metric version 1, the paper's) or ``"weighted"``, the
            named variant ``dctqa_weighted`` (spectral domain only; docs/metric.md, issue 25).
        batch_size: frame pairs computed together (bounds memory).
        max_pixels: largest frame (H x W pixels) accepted; larger frames raise
            :class:`~dctqa.errors.ResourceError` before anything is allocated. ``None``:
            ``DCTQA_MAX_PIXELS`` or 2^25 (33.5 MP, 8K UHD fits). A batch is also split so
            that no more than ``max_pixels`` pixels per frame pair are processed at once when
            frames are large (same results, bounded memory).
        data_range: the value of a white pixel in *float* frames: ``255.0`` (default, floats in
            0..255) or ``1.0`` (floats in 0..1, scaled by 255 before scoring); any finite
            number > 0 works the same way. With ``255.0``, a float batch whose largest pixel
            is in ``(0, 1]`` looks like 0..1 and is refused (:class:`InputError`, "pass
            data_range=1.0"); an all-zero batch is black in both ranges and accepted. uint8
            frames are 0..255 by their type and ignore ``data_range``.

    ``Q >= 0``; ``Q = 1`` for identical frames; higher means more of the frequency content
    the detector's filters respond to was lost (worse for detection): ``lower_better``.
    The order matters: the first argument of every scoring call is the *reference* (the
    original), the second the *distorted* (compressed) frame; swapped, Q changes completely
    and nothing can tell.

    Not differentiable: no gradient flows through Q (frames that require grad are detached,
    and results never require grad); use it for evaluation, not as a training loss.
    """

    @property
    def name(self) -> str:
        """Registry name of this metric: ``dctqa``, ``dctqa_feature`` or ``dctqa_pixel`` (by domain),
        or the named variant of ``normalise`` (``dctqa_weighted``)."""
        if self.normalise != "mean":
            return NORMALISED_METRICS[self.normalise]
        return DCTQA_METRICS[self.domain_name]

    @property
    def lower_better(self) -> bool:
        """``True``: lower Q = less damage (the registry's fact for :attr:`name`)."""
        return metric_info(self.name).lower_better

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, domain: str = "spectral",
                 device: str | torch.device = "cpu", weights: str | os.PathLike | None = None,
                 epsilon: float = EPSILON, batch_size: int = 8, max_pixels: int | None = None,
                 data_range: float = DATA_RANGE_8BIT, normalise: str = "mean") -> None:
        if domain not in DOMAINS:
            raise InputError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
        if normalise != "mean" and normalise not in NORMALISED_METRICS:
            raise InputError(f"unknown normalise {normalise!r}; expected 'mean' (metric version 1) or one of "
                             f"{tuple(NORMALISED_METRICS)} (docs/metric.md)")
        self.normalise = normalise
        if not (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool)
                and np.isfinite(epsilon) and epsilon >= 0):
            raise InputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        if not is_int(batch_size) or batch_size < 1:
            raise InputError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if max_pixels is None:
            max_pixels = settings.max_pixels()
        elif not is_int(max_pixels) or max_pixels < 1:
            raise InputError(f"max_pixels must be a whole number >= 1 or None, got {max_pixels!r}")
        self.max_pixels = int(max_pixels)
        self.data_range = check_data_range(data_range)
        self.device = check_device(device)
        if domain == "pixel":
            backbone = "pixel"
            weights = None
        self.backbone = backbone if isinstance(backbone, Backbone) else get_backbone(backbone, weights)
        self.domain_name = domain
        self.epsilon = float(epsilon)
        self.batch_size = int(batch_size)
        self._domain = make_domain(domain, self.backbone, self.device, self.epsilon, normalise)
        _log.debug("dctqa.Metric ready: backbone %s, domain %s, device %s, implementation %s",
                   self.backbone.name, domain, self.device, self.implementation)

    @property
    def _use_fused(self) -> bool:
        return self._domain.fused and ops.implementation_for(self.device, ops.FUSED_OP) != "torch"

    @property
    def implementation(self) -> str:
        """Which implementation computes scores: ``cpp-fused`` (the whole metric from the
        frames in one op), ``cuda-op``, ``cpp-op`` (preprocessing and DCTs in torch/SciPy,
        then the op) or ``torch``."""
        if self._use_fused:
            return ops.implementation_for(self.device, ops.FUSED_OP)
        if self._domain.op == "torch":  # a normalised form: torch over the spectra
            return "torch"
        return ops.implementation_for(self.device, self._domain.op)

    def params(self) -> dict:
        """JSON-ready description of everything that determines the numbers."""
        return {"metric": self.name, "metric_version": METRIC_VERSION, "backbone": self.backbone.name,
                "domain": self.domain_name, "epsilon": self.epsilon, "device": str(self.device),
                "implementation": self.implementation, "lower_better": self.lower_better,
                "backbone_details": self.backbone.describe(),
                **({"normalise": self.normalise} if self.normalise != "mean" else {})}

    def __repr__(self) -> str:
        return (f"Metric(backbone={self.backbone.name!r}, domain={self.domain_name!r}, "
                f"device={str(self.device)!r}, implementation={self.implementation!r})")

    def _step(self, h: int, w: int) -> int:
        """Frame pairs per computation: ``batch_size``, fewer when ``step * H * W`` would
        exceed ``max_pixels`` (so large frames never pile up in one batch) or the domain's
        fastest chunk (:meth:`dctqa.domains.Domain.chunk_pairs`: a larger batch is never slower per pair)."""
        return max(1, min(self.batch_size, self.max_pixels // max(1, h * w),
                          self._domain.chunk_pairs(h, w, self.device, self._use_fused)))

    @torch.inference_mode()
    def _qk(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        p = self.backbone.preprocess
        out = []
        step = self._step(ref.shape[2], ref.shape[3])
        if self._use_fused:  # frames go to the op as they are (uint8, any strides)
            for i in range(0, ref.shape[0], step):
                out.append(self._domain.qk_frames(ref[i:i + step].to(self.device),
                                                  dist[i:i + step].to(self.device)))
            return torch.cat(out)
        for i in range(0, ref.shape[0], step):
            xo = preprocess_torch(ref[i:i + step], p, self.device)
            xc = preprocess_torch(dist[i:i + step], p, self.device)
            out.append(self._domain.qk(xo, xc))
        return torch.cat(out)

    def _qk_host(self, ref: torch.Tensor, dist: torch.Tensor) -> np.ndarray:
        """``[N, K]`` Q_k as an owned float64 array; out-of-memory becomes ResourceError."""
        return _rss_safe_numpy(self._qk_checked(ref, dist))

    def _qk_checked(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` Q_k on the Metric's device; out-of-memory becomes ResourceError."""
        try:
            return self._qk(ref, dist)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            where = "GPU" if self.device.type == "cuda" else "host"
            _log.warning("dctqa.Metric: out of %s memory (%s)", where, type(exc).__name__)
            raise ResourceError(f"out of {where} memory scoring {ref.shape[0]} frame pair(s) of "
                                f"{ref.shape[3]}x{ref.shape[2]} ({type(exc).__name__}); use a smaller "
                                f"batch_size (now {self.batch_size}), lower max_pixels (now {self.max_pixels}) "
                                f"or scale the frames down") from None

    def score(self, ref: FrameBatch, dist: FrameBatch, per_filter: bool = False) -> np.ndarray:
        """Q of each frame pair, as a NumPy array on the host.

        ref: the *reference* (original, uncompressed) frames; dist: the *distorted*
        (compressed) frames, in that order (swapped, Q is meaningless). RGB,
        ``H x W x 3`` or ``N x H x W x 3`` uint8 (or float in ``0..data_range``) NumPy
        arrays, or ``[N, 3, H, W]`` tensors, same shape. Not differentiable (tensors are
        detached).
        Returns ``(N,)`` float64 (``(N, K)`` per-filter ``Q_k`` with ``per_filter=True``), an
        array that owns its data (no view of a torch tensor). Raises :class:`InputError` for
        bad frames (float frames that look like 0..1 under ``data_range=255`` included) and
        :class:`ResourceError` for frames over ``max_pixels`` (before any allocation) or when
        memory runs out. For tensors in and out without a host sync: :meth:`score_tensor`.
        """
        r = _as_nchw("reference", ref, self.max_pixels, self.data_range)
        d = _as_nchw("distorted", dist, self.max_pixels, self.data_range)
        if tuple(r.shape) != tuple(d.shape):
            raise InputError(f"reference frames are {tuple(r.shape)} (N, 3, H, W) but distorted are "
                             f"{tuple(d.shape)}; sizes and counts must match")
        qk = self._qk_host(r, d)
        if qk.shape[1] == 0 or not np.isfinite(qk).all():  # never pass NaN off as a score
            raise InputError(f"the metric produced no finite value (Q_k of shape {qk.shape}); "
                             f"please report this input")
        return qk if per_filter else qk.mean(axis=1)

    def score_tensor(self, ref: torch.Tensor, dist: torch.Tensor, *, per_filter: bool = False,
                     data_range: float | None = None, defer_checks: bool | None = None) -> torch.Tensor:
        """Q of each frame pair as a tensor on the frames' device (what :func:`dctqa.functional.score` calls).

        ref: the *reference* (original) frames, dist: the *distorted* (compressed) frames, in
        that order; ``[N, 3, H, W]`` (or ``[3, H, W]``) uint8 or float tensors in
        ``0..data_range``, same shape, one device. data_range: ``None`` = the Metric's.
        Returns ``(N,)`` float64 (``(N, K)`` with ``per_filter``), same values as :meth:`score`,
        never requiring grad.

        defer_checks (default: ``True`` for CUDA frames, ``False`` for CPU frames): ``False``
        checks float pixel values on the host and raises :class:`InputError` like :meth:`score`.
        ``True`` reads nothing on the host: the value checks run on the device and a pair that
        fails them (NaN/inf pixels, pixels out of range, a float batch that looks like 0..1
        under ``data_range=255``) gets ``NaN`` in its place, and only that pair (its frames
        are zeroed before scoring). Shapes and dtypes always raise at once. uint8 frames
        need no value check. No host sync on this Metric's side when the frames are on its
        CUDA device; frames on another device are copied to it (and the result back).
        """
        dr = self.data_range if data_range is None else check_data_range(data_range)
        for name, t in (("reference", ref), ("distorted", dist)):
            if not isinstance(t, torch.Tensor):
                raise InputError(f"{name}: score_tensor takes torch tensors [N, 3, H, W], got "
                                 f"{type(t).__name__}; use Metric.score for NumPy arrays")
        if ref.device != dist.device:
            raise InputError(f"reference frames are on {ref.device} but distorted are on {dist.device}")
        defer = ref.device.type == "cuda" if defer_checks is None else bool(defer_checks)
        r = _as_nchw("reference", ref, self.max_pixels, dr, check_values=not defer)
        d = _as_nchw("distorted", dist, self.max_pixels, dr, check_values=not defer)
        if tuple(r.shape) != tuple(d.shape):
            raise InputError(f"reference frames are {tuple(r.shape)} (N, 3, H, W) but distorted are "
                             f"{tuple(d.shape)}; sizes and counts must match")
        ok = None
        if defer and (r.is_floating_point() or d.is_floating_point()):
            ok = torch.ones(r.shape[0], dtype=torch.bool, device=r.device)
            for t in (r, d):
                if t.is_floating_point():
                    ok &= value_flags(t, dr == DATA_RANGE_8BIT)
            keep = ok.view(-1, 1, 1, 1)
            r, d = (torch.where(keep, t, 0) if t.is_floating_point() else t for t in (r, d))
        with ops.deferred_finite_check() if defer else contextlib.nullcontext():
            qk = self._qk_checked(r, d).to(device=ref.device, dtype=torch.float64)
        if ok is not None:
            qk = torch.where(ok.to(qk.device)[:, None], qk, math.nan)
        elif not defer and (qk.shape[1] == 0 or not bool(torch.isfinite(qk).all())):
            raise InputError(f"the metric produced no finite value (Q_k of shape {tuple(qk.shape)}); "
                             f"please report this input")
        return qk.clone() if per_filter else qk.mean(dim=1)

    def score_video(self, ref_path: str | os.PathLike, dist_path: str | os.PathLike, *,
                    scale: bool = False, frame_stride: int = 1, max_frames: int | None = None,
                    per_filter: bool = False, progress: bool = False,
                    ignore_decode_errors: bool = False, hwaccel: str | None = None,
                    on_batch: Any = None) -> VideoScore:
        """Stream two videos (or images) and score their common frames.

        ref_path: the *reference* (original) file; dist_path: the *distorted* (compressed)
        file, in that order (swapped, Q is meaningless).

        Frames are decoded and scored ``batch_size`` at a time, so memory does not grow
        with the length. Different resolutions raise :class:`InputError` unless
        ``scale=True`` (the distorted frames are resized to the reference, bicubic).
        Different frame counts: the common frames are scored and a warning is issued and
        recorded in the result. A damaged or truncated file raises
        :class:`~dctqa.errors.VideoError` unless ``ignore_decode_errors=True``: then the
        frames that decode are scored and the damage is counted in ``decode_errors`` /
        ``missing_frames`` and described in ``warnings``. Paths may be rtsp/http(s) URLs;
        ``hwaccel``: decoding (:func:`dctqa.io.iter_frames`). ``on_batch(ref, dist, numbers)``,
        if given, is called with every scored batch (``B x H x W x 3`` uint8, frame numbers).
        """
        from . import io

        _check_path("ref_path", ref_path)
        _check_path("dist_path", dist_path)
        if not is_int(frame_stride) or frame_stride < 1:
            raise InputError(f"frame_stride must be a whole number >= 1 (1 = every frame), got {frame_stride!r}")
        if max_frames is not None and (not is_int(max_frames) or max_frames < 1):
            raise InputError(f"max_frames must be a whole number >= 1 or None (all frames), got {max_frames!r}")
        ri, di = io.probe(ref_path), io.probe(dist_path)
        _check_size((ri.height, ri.width), self.max_pixels)
        rate_note = frame_rate_note(ri.fps, di.fps)
        if rate_note:  # said before the scoring starts; recorded in the result as well
            warnings.warn(rate_note, stacklevel=2)
        size = None
        if (ri.height, ri.width) != (di.height, di.width):
            if not scale:
                raise InputError(f"reference is {ri.width}x{ri.height} but distorted is {di.width}x{di.height}; "
                                 f"pass scale=True (--scale) to resize the distorted frames to the reference")
            size = (ri.height, ri.width)
        pairs = io.FramePairs(ref_path, dist_path, self.batch_size, stride=frame_stride, size=size,
                              max_frames=max_frames, ignore_decode_errors=ignore_decode_errors, hwaccel=hwaccel)
        total = None if ri.frames is None or di.frames is None else min(ri.frames, di.frames)
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        qs, numbers = [], []
        with _progress.progress(total, "scoring", unit="frame", enabled=progress) as bar:
            for ref, dist, batch_numbers in pairs:
                qs.append(self.score(ref, dist, per_filter=True))
                if on_batch is not None:
                    on_batch(ref, dist, batch_numbers)
                numbers.append(batch_numbers)
                bar.update(len(batch_numbers) * frame_stride)
        qk = np.concatenate(qs) if qs else np.zeros((0, self.backbone.num_filters))
        notes = list(pairs.notes) + ([rate_note] if rate_note else [])
        return VideoScore(q=qk.mean(axis=1), frame_numbers=np.concatenate(numbers) if numbers else np.zeros(0, np.int64),
                          ref_frames=pairs.ref_frames, dist_frames=pairs.dist_frames,
                          q_filters=qk if per_filter else None, warnings=notes,
                          decode_errors=sum(r.errors for r in pairs.reports),
                          missing_frames=sum(r.missing_frames for r in pairs.reports),
                          ref_fps=ri.fps, dist_fps=di.fps)


def backends(metric: Metric | None = None) -> dict:
    """Which implementations are available here, and which one ``metric`` uses.

    ``spectra_cache``: the compiled ops' cache of filter spectra (``bytes``, ``entries``,
    ``hits``, ``misses``, ``max_bytes``), or ``None`` without the extension.
    """
    info = dict(ops.available())
    info["spectra_cache"] = ops.tuning.spectra_cache_info()
    if metric is not None:
        info["metric"] = repr(metric)
        info["implementation"] = metric.implementation
    return info
