"""The metric as a function of tensors: ``dctqa.functional.score(ref, dist) -> Q`` per pair.

Tensor in, tensor out, on the frames' device; for frames on a CUDA device nothing is read
back to the host on dctqa's side of the call (see :meth:`dctqa.Metric.score_tensor`), so it
can sit in a GPU loop. The :class:`~dctqa.Metric` behind it is built once per
(backbone, domain, device, options) and reused: repeated calls do not reload the backbone.

    >>> import torch, dctqa.functional as F
    >>> ref = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    >>> F.score(ref, ref, domain="pixel")                     # doctest: +SKIP
    tensor([1., 1.], dtype=torch.float64)
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Hashable

import torch

from .constants import DEFAULT_BACKBONE, DOMAINS
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .backbones import Backbone
    from .metric import Metric

#: Metric objects kept for reuse (least recently used beyond this are dropped).
CACHE_SIZE = 8
_CACHE: OrderedDict[Hashable, "Metric"] = OrderedDict()
_LOCK = threading.Lock()


def _key(backbone: "str | Backbone", domain: str, device: torch.device, options: dict) -> Hashable:
    """Cache key; a Backbone object is keyed by identity (the cached Metric holds it, so the id stays
    its own while the entry lives). Unhashable options raise TypeError (the caller builds uncached)."""
    bb = backbone if isinstance(backbone, str) else ("object", id(backbone))
    key = (bb, domain, str(device), tuple(sorted(options.items())))
    hash(key)
    return key


def metric_for(backbone: "str | Backbone | None" = None, domain: str | None = None,
               device: str | torch.device = "cpu", **options: Any) -> "Metric":
    """The cached :class:`~dctqa.Metric` for (backbone, domain, device, options), built on first use.

    backbone ``None``: the default (:data:`dctqa.constants.DEFAULT_BACKBONE`); domain ``None``:
    ``"spectral"``. ``options`` are further :class:`~dctqa.Metric` arguments (``weights``,
    ``epsilon``, ``batch_size``, ``max_pixels``). Thread-safe; at most :data:`CACHE_SIZE` are kept.
    """
    from .metric import Metric, check_device

    backbone = DEFAULT_BACKBONE if backbone is None else backbone
    domain = "spectral" if domain is None else domain
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    dev = check_device(device)
    try:
        key = _key(backbone, domain, dev, options)
    except TypeError:
        return Metric(backbone, domain, device=dev, **options)
    with _LOCK:
        m = _CACHE.get(key)
        if m is not None:
            _CACHE.move_to_end(key)
            return m
    m = Metric(backbone, domain, device=dev, **options)  # outside the lock: loading may take seconds
    with _LOCK:
        m = _CACHE.setdefault(key, m)
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return m


def clear_cache() -> None:
    """Forget the cached Metric objects (their memory is freed once nothing else holds them)."""
    with _LOCK:
        _CACHE.clear()


def score(ref: torch.Tensor, dist: torch.Tensor, *, metric: "Metric | None" = None,
          backbone: "str | Backbone | None" = None, domain: str | None = None,
          data_range: float = 255.0) -> torch.Tensor:
    """Q of each frame pair: ``(N,)`` float64 tensor on the frames' device.

    ref: the *reference* frames (the original), dist: the *distorted* frames (the
    compressed ones), in that order: swapped, Q is a different, meaningless number and
    nothing can tell. Both ``[N, 3, H, W]``
    (or ``[3, H, W]``) RGB tensors, uint8 (0..255) or float in ``0..data_range``, same shape
    and device.

    metric: a ready :class:`~dctqa.Metric` to use (then ``backbone`` and ``domain`` must be
    ``None``); else the cached Metric for (backbone, domain, the frames' device) is used,
    built on the first call (backbone ``None``: the paper's Faster R-CNN, whose weights must
    be in torchvision's cache; domain ``None``: ``"spectral"``).
    data_range: the value of a white float pixel: ``255.0`` or ``1.0`` (floats in 0..1);
    applies to this call (also with ``metric=``); uint8 frames ignore it.

    CUDA frames: no host sync on dctqa's side; float pixel values are checked on the GPU
    and a pair that fails (NaN/inf, out of range, a batch in 0..1 under ``data_range=255``)
    gets ``NaN`` (check ``q.isnan().any()`` where you read the result). CPU frames: such
    input raises :class:`~dctqa.errors.InputError`. Not differentiable: the result never
    requires grad, and no gradient flows to the frames.
    """
    if not isinstance(ref, torch.Tensor) or not isinstance(dist, torch.Tensor):
        bad = ref if not isinstance(ref, torch.Tensor) else dist
        raise InputError(f"dctqa.functional.score takes torch tensors [N, 3, H, W], got {type(bad).__name__}; "
                         f"use dctqa.Metric(...).score for NumPy arrays")
    if metric is not None:
        if backbone is not None or domain is not None:
            raise InputError("pass either metric= or backbone=/domain=, not both")
        if not callable(getattr(metric, "score_tensor", None)):
            raise InputError(f"metric= must be a dctqa.Metric, got {type(metric).__name__}")
    else:
        metric = metric_for(backbone, domain, ref.device)
    return metric.score_tensor(ref, dist, data_range=data_range)
