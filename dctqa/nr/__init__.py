"""No-reference prediction of the metric (a wing: the core never imports it).

``NRModel.load(path).predict(frames)`` predicts the full-reference score Q of compressed
frames without their reference, from patches chosen by :mod:`dctqa.nr.sampling`.
Modules: ``sampling`` (the patch samplers; the op ``sample_patches`` and its torch fallback
are in :mod:`dctqa.ops`), ``model`` (network, checkpoint), ``data`` (labelled frames from the
study's caches), ``train``, ``predict``, ``evaluate``, ``summary`` (the results page),
``export`` (``dctqa export-nr``: the network as ONNX), ``onnx_model``
(:class:`~dctqa.nr.onnx_model.OnnxNRModel`: the predictor with its network in onnxruntime),
``conformal`` (the 90 % interval's arithmetic) and ``calibrate`` (its calibration on a
checkpoint's held-out windows).
"""
from __future__ import annotations

from typing import Any

__all__ = ["NRModel", "MAX_PATCHES"]

#: Most patches per frame a prediction takes (``--patches``; the paper uses a few, the
#: ablations go to 8). Here, not in ``model``, so that the command line's parser can use it
#: without importing torch.
MAX_PATCHES = 256


def __getattr__(name: str) -> Any:  # lazy: importing dctqa.nr stays cheap
    if name == "NRModel":
        from .model import NRModel

        return NRModel
    raise AttributeError(name)
