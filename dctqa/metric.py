"""``dctqa.Metric``: the object an application holds to score frame pairs.

One ``Metric`` per (backbone, domain, device); it is reusable and safe to call from
several threads (it holds no per-call state; the only shared state, the cache of
filter spectra, is locked).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import ops
from .backbones import Backbone, get_backbone
from .constants import DEFAULT_BACKBONE, DOMAINS, EPSILON, METRIC_VERSION
from .domains import make_domain
from .preprocess import preprocess_torch
from .errors import InputError

FrameBatch = Any  # ndarray HxWx3 / NxHxWx3, torch Tensor [N,]3xHxW, or a sequence of HxWx3 arrays


@dataclass
class VideoScore:
    """Per-frame scores of a video pair.

    q: ``(n,)`` float64, Q of each scored frame pair (frame ``frame_numbers[i]`` of both).
    q_filters: ``(n, K)`` per-filter ``Q_k`` or ``None``.
    ref_frames / dist_frames: frames decoded from each file (after ``max_frames``).
    """

    q: np.ndarray
    frame_numbers: np.ndarray
    ref_frames: int
    dist_frames: int
    q_filters: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def _as_nchw(name: str, frames: FrameBatch) -> torch.Tensor:
    """Validate one batch and return it as ``[N, 3, H, W]`` (uint8 or float in 0..255)."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputError(f"{name}: empty list of frames")
        frames = np.stack([np.asarray(f) for f in frames])
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
        t = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 3 else a)).permute(0, 3, 1, 2)
    elif isinstance(frames, torch.Tensor):
        t = frames[None] if frames.ndim == 3 else frames
        if t.ndim != 4 or t.shape[1] != 3:
            raise InputError(f"{name}: expected a tensor [N, 3, H, W] (RGB, channels first), got {tuple(frames.shape)}")
        if t.dtype != torch.uint8 and not t.is_floating_point():
            raise InputError(f"{name}: expected a uint8 or float tensor (0..255), got {t.dtype}")
    else:
        raise InputError(f"{name}: expected a NumPy array or torch tensor, got {type(frames).__name__}")
    if t.shape[0] == 0 or t.shape[2] == 0 or t.shape[3] == 0:
        raise InputError(f"{name}: empty batch or zero-sized frame, shape {tuple(t.shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: pixels hold NaN or infinity")
    return t


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
        batch_size: frame pairs computed together (bounds memory).

    ``Q >= 0``; ``Q = 1`` for identical frames; higher means more of the frequency content
    the detector's filters respond to was lost (worse for detection): ``lower_better``.
    """

    lower_better = True
    name = "dctqa"

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, domain: str = "spectral",
                 device: str | torch.device = "cpu", weights: str | os.PathLike | None = None,
                 epsilon: float = EPSILON, batch_size: int = 8) -> None:
        if domain not in DOMAINS:
            raise InputError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
        if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon >= 0):
            raise InputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"bad device {device!r}: {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but torch sees no CUDA GPU; use device='cpu'")
        if domain == "pixel":
            backbone = "pixel"
            weights = None
        self.backbone = backbone if isinstance(backbone, Backbone) else get_backbone(backbone, weights)
        self.domain_name = domain
        self.epsilon = float(epsilon)
        self.batch_size = int(batch_size)
        self._domain = make_domain(domain, self.backbone, self.device, self.epsilon)

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
        return ops.implementation_for(self.device, self._domain.op)

    def params(self) -> dict:
        """JSON-ready description of everything that determines the numbers."""
        return {"metric": self.name, "metric_version": METRIC_VERSION, "backbone": self.backbone.name,
                "domain": self.domain_name, "epsilon": self.epsilon, "device": str(self.device),
                "implementation": self.implementation, "lower_better": self.lower_better,
                "backbone_details": self.backbone.describe()}

    def __repr__(self) -> str:
        return (f"Metric(backbone={self.backbone.name!r}, domain={self.domain_name!r}, "
                f"device={str(self.device)!r}, implementation={self.implementation!r})")

    @torch.inference_mode()
    def _qk(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        p = self.backbone.preprocess
        out = []
        if self._use_fused:  # frames go to the op as they are (uint8, any strides)
            for i in range(0, ref.shape[0], self.batch_size):
                out.append(self._domain.qk_frames(ref[i:i + self.batch_size].to(self.device),
                                                  dist[i:i + self.batch_size].to(self.device)))
            return torch.cat(out)
        for i in range(0, ref.shape[0], self.batch_size):
            xo = preprocess_torch(ref[i:i + self.batch_size], p, self.device)
            xc = preprocess_torch(dist[i:i + self.batch_size], p, self.device)
            out.append(self._domain.qk(xo, xc))
        return torch.cat(out)

    def score(self, ref: FrameBatch, dist: FrameBatch, per_filter: bool = False) -> np.ndarray:
        """Q of each frame pair.

        ref, dist: RGB frames, ``H x W x 3`` or ``N x H x W x 3`` uint8 (or float 0..255)
        NumPy arrays, or ``[N, 3, H, W]`` tensors, same shape.
        Returns ``(N,)`` float64 (``(N, K)`` per-filter ``Q_k`` with ``per_filter=True``).
        """
        r = _as_nchw("reference", ref)
        d = _as_nchw("distorted", dist)
        if tuple(r.shape) != tuple(d.shape):
            raise InputError(f"reference frames are {tuple(r.shape)} (N, 3, H, W) but distorted are "
                             f"{tuple(d.shape)}; sizes and counts must match")
        qk = self._qk(r, d).cpu().numpy()
        if not np.isfinite(qk).all():  # cannot happen for finite input; never pass NaN off as a score
            raise InputError("the metric produced a non-finite value; please report this input")
        return qk if per_filter else qk.mean(axis=1)

    def score_video(self, ref_path: str | os.PathLike, dist_path: str | os.PathLike, *,
                    scale: bool = False, frame_stride: int = 1, max_frames: int | None = None,
                    per_filter: bool = False, progress: bool = False) -> VideoScore:
        """Stream two videos (or images) and score their common frames.

        Frames are decoded and scored ``batch_size`` at a time, so memory does not grow
        with the length. Different resolutions raise :class:`InputError` unless
        ``scale=True`` (the distorted frames are resized to the reference, bicubic).
        Different frame counts: the common frames are scored and a warning is issued and
        recorded in the result.
        """
        from . import io

        ri, di = io.probe(ref_path), io.probe(dist_path)
        size = None
        if (ri.height, ri.width) != (di.height, di.width):
            if not scale:
                raise InputError(f"reference is {ri.width}x{ri.height} but distorted is {di.width}x{di.height}; "
                                 f"pass scale=True (--scale) to resize the distorted frames to the reference")
            size = (ri.height, ri.width)
        ref_it = io.iter_frames(ref_path, max_frames=max_frames)
        dist_it = io.iter_frames(dist_path, size=size, max_frames=max_frames)
        total = None if ri.frames is None or di.frames is None else min(ri.frames, di.frames)
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc="scoring", leave=False)
        qs, numbers = [], []
        n_ref = n_dist = 0
        batch_r, batch_d, batch_n = [], [], []
        try:
            while True:
                fr = next(ref_it, None)
                fd = next(dist_it, None)
                n_ref += fr is not None
                n_dist += fd is not None
                if fr is None or fd is None:
                    break
                idx = n_ref - 1
                if idx % frame_stride == 0:
                    batch_r.append(fr)
                    batch_d.append(fd)
                    batch_n.append(idx)
                if len(batch_r) == self.batch_size:
                    qs.append(self.score(np.stack(batch_r), np.stack(batch_d), per_filter=True))
                    numbers += batch_n
                    if bar is not None:
                        bar.update(len(batch_r) * frame_stride)
                    batch_r, batch_d, batch_n = [], [], []
            if batch_r:
                qs.append(self.score(np.stack(batch_r), np.stack(batch_d), per_filter=True))
                numbers += batch_n
            # count the rest of the longer stream
            rest = ref_it if fr is not None else dist_it if fd is not None else None
            if rest is not None:
                extra = sum(1 for _ in rest)
                if fr is not None:
                    n_ref += extra
                else:
                    n_dist += extra
        finally:
            if bar is not None:
                bar.close()
        notes = []
        if n_ref != n_dist:
            msg = (f"frame counts differ: reference has {n_ref}, distorted has {n_dist}; "
                   f"scored the first {min(n_ref, n_dist)}")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
        qk = np.concatenate(qs) if qs else np.zeros((0, self.backbone.num_filters))
        return VideoScore(q=qk.mean(axis=1), frame_numbers=np.asarray(numbers, dtype=np.int64),
                          ref_frames=n_ref, dist_frames=n_dist,
                          q_filters=qk if per_filter else None, warnings=notes)


def backends(metric: Metric | None = None) -> dict:
    """Which implementations are available here, and which one ``metric`` uses.

    ``spectra_cache``: the compiled ops' cache of filter spectra (``bytes``, ``entries``,
    ``hits``, ``misses``, ``max_bytes``), or ``None`` without the extension.
    """
    info = dict(ops.available())
    info["spectra_cache"] = ops.spectra_cache_info()
    if metric is not None:
        info["metric"] = repr(metric)
        info["implementation"] = metric.implementation
    return info
