"""dctqa: how much has H.264 compression hurt a frame *for an object detector*?

Full-reference metric of Beniwal, Mantini & Shah ("Image Quality Assessment using
Deep Features for Object Detection"), computed exactly as ``docs/metric.md`` defines
it: the detector's first-layer filters applied (in the DCT domain) to the original and
the compressed frame, compared as a per-frequency ratio. ``Q = 1`` for identical frames;
higher is worse.

    >>> import dctqa
    >>> m = dctqa.Metric(backbone="onnx:yolox_nano.onnx")   # doctest: +SKIP
    >>> m.score(ref_frames, dist_frames)                      # doctest: +SKIP
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .constants import EPSILON, METRIC_VERSION
from .errors import (BackboneError, ConfigError, DctqaError, DroppedError, InputError, QueueFullError,
                     ResourceError, ScorerClosedError, ScoringError, ServeError, VideoError, WeightsError)

__version__ = "0.1.0"

# Library logging: records go to the "dctqa" logger and its children (dctqa.metric, dctqa.serve,
# ...); an application sees them once it configures logging (logging.basicConfig(level="INFO")).
logging.getLogger("dctqa").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # pragma: no cover
    from . import functional
    from .io import read_frames
    from .metric import Metric, VideoScore, backends
    from .registry import create_metric, list_metrics
    from .serve import ServeStats, StreamScorer, StreamStats
    from .torchmetric import QMetric

# torch is imported on first use of these names, so ``import dctqa.<submodule>`` stays light.
_LAZY = {"Metric": "metric", "VideoScore": "metric", "backends": "metric",
         "create_metric": "registry", "list_metrics": "registry", "read_frames": "io",
         "StreamScorer": "serve", "ServeStats": "serve", "StreamStats": "serve",
         "QMetric": "torchmetric",  # needs torchmetrics (pip install "dctqa[torchmetrics]")
         "functional": None}  # the submodule itself: dctqa.functional.score(ref, dist)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
        value = module if _LAZY[name] is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dctqa' has no attribute {name!r}")

__all__ = ["Metric", "VideoScore", "backends", "create_metric", "list_metrics", "read_frames", "StreamScorer",
           "ServeStats", "StreamStats", "QMetric", "functional", "EPSILON", "METRIC_VERSION", "DctqaError", "InputError",
           "VideoError", "BackboneError", "WeightsError", "ConfigError", "ResourceError", "ServeError",
           "ScorerClosedError", "QueueFullError", "DroppedError", "ScoringError", "__version__"]
