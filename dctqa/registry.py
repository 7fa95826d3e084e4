"""The one metric table: ``create_metric(name)`` returns a ready object (pyiqa's idea).

Every metric's facts live here and nowhere else: its name, ``kind`` (``"FR"``: needs the
reference, ``"NR"``: the distorted frames only), ``lower_better`` (the one spelling of a
metric's direction: ``True`` when a lower value means less damage), its unit and range.
Callers (the CLI's ``info``, the study's tables) read them with :func:`metric_info`.

How each is called (``metric_info(name).kind``):

* full-reference (``"FR"``) -- ``dctqa``, ``dctqa_feature``, ``dctqa_pixel``, ``psnr``,
  ``ssim``: ``m.score(ref, dist)``, the reference (original) first, the distorted
  (compressed) second: swapped, the numbers are meaningless;
* no-reference (``"NR"``) -- ``blockiness``, ``blur``, ``noise``, ``contrast``, and
  ``dctqa_nr`` (the no-reference wing's predictor, ``model=CHECKPOINT``):
  ``m.score(dist)``, the distorted frames only.

Frames are ``H x W x 3`` / ``N x H x W x 3`` uint8 RGB arrays (e.g. from
:func:`dctqa.read_frames`). The three ``dctqa*`` metrics take :class:`dctqa.Metric`'s
arguments; their default backbone is the paper's Faster R-CNN, whose COCO weights must be
in torchvision's cache (or ``weights=FILE``). Offline, name another backbone, e.g.
``create_metric("dctqa", backbone="onnx:../shared/models/yolox_nano.onnx")``: a metric
name means one definition, so the backbone is never switched silently, and the error
says how to pass one.

The table names each metric's constructor as ``"module:attribute"`` and imports it only
when :func:`create_metric` is called, so this module imports no metric module: the
baselines and the metric itself sit below it without an import circle, and a wing (e.g.
``dctqa.nr``) can be registered by name with :func:`register_metric` without the core
importing it.
"""
from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import InputError

#: The two kinds of metric: full-reference (takes ref, dist) and no-reference (takes dist).
KINDS = ("FR", "NR")
#: The dctqa metric's registry name for each domain (``Metric(domain=d).name``).
DCTQA_METRICS: dict[str, str] = {"spectral": "dctqa", "feature": "dctqa_feature", "pixel": "dctqa_pixel"}
#: The named cross-content variant of each shipped ``normalise`` form (spectral domain;
#: docs/metric.md, "The named variant dctqa_weighted"); ``"mean"`` is version 1 itself.
NORMALISED_METRICS: dict[str, str] = {"weighted": "dctqa_weighted"}


@dataclass(frozen=True)
class MetricInfo:
    """Facts of one metric.

    name: registry name. kind: ``"FR"`` or ``"NR"``. lower_better: lower values = less
    damage. description: one line. unit: of the values (``""`` if none).
    range: ``(low, high)`` the values can take (``math.inf`` where unbounded).
    entry: ``"module:attribute"`` (imported on first use) or a callable that builds the
    metric object; ``defaults`` are keyword arguments it always gets.
    """

    name: str
    kind: str
    lower_better: bool
    description: str
    entry: str | Callable[..., Any]
    unit: str = ""
    range: tuple[float, float] = (-math.inf, math.inf)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def create(self, **kwargs: Any) -> Any:
        """A ready metric object: ``entry(**defaults, **kwargs)``."""
        factory = self.entry
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(**{**self.defaults, **kwargs})


_TABLE: dict[str, MetricInfo] = {}
_lock = threading.Lock()


def register_metric(name: str, *, kind: str, lower_better: bool, description: str,
                    entry: str | Callable[..., Any], unit: str = "",
                    range: tuple[float, float] = (-math.inf, math.inf),
                    defaults: Mapping[str, Any] | None = None, replace: bool = False) -> MetricInfo:
    """Add a metric to the table and return its :class:`MetricInfo`.

    ``entry`` as ``"package.module:factory"`` is imported only when the metric is created
    (how a wing registers without being imported by the core). Raises
    :class:`InputError` for a bad kind or a name already taken (unless ``replace``).
    """
    if kind not in KINDS:
        raise InputError(f"metric kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(entry, str) and not callable(entry):
        raise InputError(f"metric entry must be 'module:attribute' or a callable, got {type(entry).__name__}")
    if isinstance(entry, str) and not all(entry.partition(":")[::2]):
        raise InputError(f"metric entry must be written 'module:attribute', got {entry!r}")
    info = MetricInfo(name, kind, bool(lower_better), description, entry, unit, tuple(range), dict(defaults or {}))
    with _lock:
        if name in _TABLE and not replace:
            raise InputError(f"metric {name!r} is already registered")
        _TABLE[name] = info
    return info


def metric_info(name: str) -> MetricInfo:
    """Facts of the registered metric ``name``; :class:`InputError` if unknown."""
    with _lock:
        info = _TABLE.get(name)
        known = sorted(_TABLE)
    if info is None:
        raise InputError(f"unknown metric {name!r}; expected one of {known}")
    return info


def list_metrics() -> list[MetricInfo]:
    """Every registered metric, in registration order."""
    with _lock:
        return list(_TABLE.values())


def create_metric(name: str, **kwargs: Any) -> Any:
    """A ready metric object for ``name`` (see :func:`list_metrics`); kwargs go to its constructor.

    The object has ``name`` (= ``name``), ``lower_better``, and ``score(ref, dist)`` (FR:
    ref = the reference/original frames, dist = the distorted/compressed ones, in that order)
    or ``score(dist)`` (NR); see the module docstring for which is which. The ``dctqa*``
    metrics default to the Faster R-CNN backbone and raise :class:`~dctqa.errors.WeightsError`
    (saying how to pass ``backbone="onnx:PATH"`` or ``weights=FILE``) when its weights
    are not available; they never fall back to another backbone.
    """
    return metric_info(name).create(**kwargs)


_Q_RANGE = (0.0, math.inf)  # Q >= 0; 1 for identical frames
register_metric("dctqa", kind="FR", lower_better=True, description="the paper's metric, spectral domain (METRIC.md)",
                entry="dctqa.metric:Metric", range=_Q_RANGE, defaults={"domain": "spectral"})
register_metric("dctqa_feature", kind="FR", lower_better=True,
                description="the metric on DCTs of the real first-layer maps",
                entry="dctqa.metric:Metric", range=_Q_RANGE, defaults={"domain": "feature"})
register_metric("dctqa_pixel", kind="FR", lower_better=True,
                description="the metric on the image's own DCT (no CNN filters)",
                entry="dctqa.metric:Metric", range=_Q_RANGE, defaults={"domain": "pixel"})
register_metric("dctqa_weighted", kind="FR", lower_better=True,
                description="variant: the ratio's mean weighted by the reference's magnitudes (issue 25)",
                entry="dctqa.metric:Metric", range=_Q_RANGE, defaults={"domain": "spectral", "normalise": "weighted"})
# The no-reference wing (dctqa/nr/), imported only when created: predicts the spectral Q
# from the distorted frames alone (the shipped default model, or ``model=CHECKPOINT``).
register_metric("dctqa_nr", kind="NR", lower_better=True,
                description="no-reference prediction of Q (the shipped default model, or model=checkpoint / ONNX export)",
                entry="dctqa.nr.onnx_model:create", range=_Q_RANGE)
# The baselines of shared/docs/BASELINES.md (dctqa.baselines computes them), in report order.
for _name, _kind, _lower, _unit, _range in (
        ("psnr", "FR", False, "dB", (0.0, 100.0)),
        ("ssim", "FR", False, "", (-1.0, 1.0)),
        ("blockiness", "NR", True, "ratio", (0.0, math.inf)),
        ("blur", "NR", True, "px", (0.0, math.inf)),
        ("noise", "NR", True, "8-bit luma", (0.0, math.inf)),
        ("contrast", "NR", False, "8-bit luma", (0.0, 127.5))):
    register_metric(_name, kind=_kind, lower_better=_lower, unit=_unit, range=_range,
                    description=f"baseline per BASELINES.md ({_unit or 'unitless'})",
                    entry="dctqa.baselines:BaselineScorer", defaults={"name": _name})
del _name, _kind, _lower, _unit, _range
