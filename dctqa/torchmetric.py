"""``dctqa.QMetric``: the metric as a ``torchmetrics.Metric`` (mean Q over every pair updated).

Needs torchmetrics (``pip install "dctqa[torchmetrics]"``); ``import dctqa`` works without
it, and ``dctqa.QMetric`` then raises an ImportError saying so.

    >>> import torch, dctqa
    >>> m = dctqa.QMetric(domain="pixel")                     # doctest: +SKIP
    >>> m.update(ref, dist)        # ref = original, dist = compressed   # doctest: +SKIP
    >>> m.compute()                                           # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch

from .errors import InputError

try:
    from torchmetrics import Metric as _TMMetric
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(f"dctqa.QMetric needs torchmetrics, which is not installed ({exc}); "
                      f'pip install "dctqa[torchmetrics]"') from exc

from . import functional
from .metric import check_data_range


class QMetric(_TMMetric):
    """Mean Q of every frame pair passed to :meth:`update` since the last :meth:`reset`.

    Args:
        backbone, domain: as for :class:`dctqa.Metric` (``None``: the default backbone, the
            spectral domain); the Metric is built once per device and reused.
        data_range: the value of a white float pixel, ``255.0`` or ``1.0`` (see
            :func:`dctqa.functional.score`); uint8 frames ignore it.
        metric_kwargs: further :class:`dctqa.Metric` arguments (``weights``, ``epsilon``,
            ``batch_size``, ``max_pixels``) and torchmetrics' own (``sync_on_compute``, ...).

    States ``q_sum`` (float64), ``pairs`` and ``invalid`` (int64) are sums
    (``dist_reduce_fx="sum"``), so under DDP :meth:`compute` is the mean over the pairs of
    every process. Lower is better (``Q = 1`` for identical frames). Not differentiable: no
    gradient flows (frames that require grad are detached).
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0

    _TM_KEYS = ("compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn", "distributed_available_fn",
                "sync_on_compute", "compute_with_cache")

    def __init__(self, backbone: Any = None, domain: str | None = None, data_range: float = 255.0,
                 **metric_kwargs: Any) -> None:
        tm_kwargs = {k: metric_kwargs.pop(k) for k in list(metric_kwargs) if k in self._TM_KEYS}
        super().__init__(**tm_kwargs)
        if "device" in metric_kwargs:
            raise InputError("QMetric follows the frames' device (move it with .to(device)); do not pass device=")
        self.backbone, self.domain = backbone, domain
        self.data_range = check_data_range(data_range)
        self.metric_kwargs = metric_kwargs
        functional.metric_for(backbone, domain, "cpu", **metric_kwargs)  # bad arguments fail here, not in update
        self.add_state("q_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pairs", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("invalid", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, ref: torch.Tensor, dist: torch.Tensor) -> None:
        """Add the Q of each pair: ref = the *reference* (original) frames, dist = the
        *distorted* (compressed) ones, in that order (torchmetrics' ``(preds, target)`` order
        is the other way round: pass the original first). ``[N, 3, H, W]`` tensors, uint8 or
        float in ``0..data_range``. No host sync for CUDA frames: a pair whose float pixels
        fail the checks (see :func:`dctqa.functional.score`) is counted in ``invalid`` and
        :meth:`compute` raises; on the CPU it raises here."""
        m = functional.metric_for(self.backbone, self.domain, ref.device if isinstance(ref, torch.Tensor)
                                  else "cpu", **self.metric_kwargs)
        q = functional.score(ref, dist, metric=m, data_range=self.data_range)
        bad = torch.isnan(q)
        self.q_sum += torch.where(bad, 0.0, q).sum().to(self.q_sum)
        self.pairs += (~bad).sum().to(self.pairs)
        self.invalid += bad.sum().to(self.invalid)

    def compute(self) -> torch.Tensor:
        """Mean Q over every pair updated: a 0-d float64 tensor. Raises
        :class:`~dctqa.errors.InputError` when some pairs were invalid, or none was added."""
        invalid, pairs = int(self.invalid), int(self.pairs)
        if invalid:
            raise InputError(f"{invalid} of {invalid + pairs} frame pairs had invalid float pixels (NaN/inf, out of "
                             f"range, or 0..1 under data_range={self.data_range:g}); no mean Q is given")
        if not pairs:
            raise InputError("QMetric.compute() before any update(ref, dist): no frame pair to average")
        return self.q_sum / pairs
