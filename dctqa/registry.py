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


def _by_name(module: str, attr: str) -> Callable[..., Any]:
    """A factory resolved on first use, by module name (the core never imports a wing)."""

    def make(**kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), attr)(**kwargs)

    return make


_ENTRIES: dict[str, MetricInfo] = {
    "dctqa": MetricInfo("dctqa", "FR", True, "the paper's metric, spectral domain (METRIC.md)", _dctqa("spectral")),
    "dctqa_feature": MetricInfo("dctqa_feature", "FR", True, "the metric on DCTs of the real first-layer maps",
                                _dctqa("feature")),
    "dctqa_pixel": MetricInfo("dctqa_pixel", "FR", True, "the metric on the image's own DCT (no CNN filters)",
                              _dctqa("pixel")),
    "dctqa_nr": MetricInfo("dctqa_nr", "NR", True, "no-reference prediction of Q (needs model=checkpoint)",
                           _by_name("dctqa.nr.model", "create")),
}


def _all() -> dict[str, MetricInfo]:
    from .baselines import registry_entries

    entries = dict(_ENTRIES)
    for info in registry_entries():
        entries.setdefault(info.name, info)
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
