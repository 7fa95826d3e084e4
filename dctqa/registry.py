"""Metric registry: ``create_metric(name)`` returns a ready object (pyiqa's idea).

Every entry declares whether lower or higher is better, so callers can rank frames
without knowing the metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import InputError


@dataclass(frozen=True)
class MetricInfo:
    """name; kind ``FR`` (needs the reference) or ``NR``; ``lower_better``; a one-line description."""

    name: str
    kind: str
    lower_better: bool
    description: str
    factory: Callable[..., Any]


def _dctqa(domain: str) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        from .metric import Metric

        return Metric(domain=domain, **kwargs)

    return make


_ENTRIES: dict[str, MetricInfo] = {
    "dctqa": MetricInfo("dctqa", "FR", True, "the paper's metric, spectral domain (METRIC.md)", _dctqa("spectral")),
    "dctqa_feature": MetricInfo("dctqa_feature", "FR", True, "the metric on DCTs of the real first-layer maps",
                                _dctqa("feature")),
    "dctqa_pixel": MetricInfo("dctqa_pixel", "FR", True, "the metric on the image's own DCT (no CNN filters)",
                              _dctqa("pixel")),
}


class BaselineScorer:
    """A baseline of :mod:`dctqa.baselines` behind the registry's interface (batched torch path).

    ``score(ref, dist)`` for full-reference metrics, ``score(dist)`` for no-reference ones;
    frames ``H x W x 3`` or ``N x H x W x 3`` uint8 RGB; returns ``(N,)`` float64.
    """

    def __init__(self, name: str, device: str = "cpu") -> None:
        from .baselines import get_baseline

        self.info = get_baseline(name)
        self.name = name
        self.device = device
        self.lower_better = not self.info.higher_is_better

    def score(self, *frames: Any) -> Any:
        import numpy as np

        from .baselines import compute_baselines

        want = 2 if self.info.full_reference else 1
        if len(frames) != want:
            raise InputError(f"{self.name} takes {'(ref, dist)' if want == 2 else '(dist)'} frames")
        batch = [np.asarray(f) for f in frames]
        batch = [b[None] if b.ndim == 3 else b for b in batch]
        ref, dist = (batch[0], batch[1]) if want == 2 else (batch[0], batch[0])
        return compute_baselines(ref, dist, [self.name], device=self.device)[self.name]


def _baseline_factory(name: str) -> Callable[..., Any]:
    return lambda **kwargs: BaselineScorer(name, **kwargs)


def _all() -> dict[str, MetricInfo]:
    from .baselines import BASELINES

    entries = dict(_ENTRIES)
    for b in BASELINES.values():
        entries[b.name] = MetricInfo(b.name, "FR" if b.full_reference else "NR", not b.higher_is_better,
                                     f"baseline ({b.unit or 'unitless'}), BASELINES.md definition",
                                     _baseline_factory(b.name))
    return entries


def list_metrics() -> list[MetricInfo]:
    """Every registered metric."""
    return list(_all().values())


def create_metric(name: str, **kwargs: Any) -> Any:
    """A ready metric object for ``name`` (see :func:`list_metrics`); kwargs go to its constructor.

    The object has ``score(ref, dist)`` (FR) or ``score(dist)`` (NR) and ``lower_better``.
    """
    entries = _all()
    if name not in entries:
        raise InputError(f"unknown metric {name!r}; expected one of {sorted(entries)}")
    return entries[name].factory(**kwargs)
