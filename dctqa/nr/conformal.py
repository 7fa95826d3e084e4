"""Split conformal intervals of the no-reference prediction (the arithmetic; no model, no I/O).

The network predicts ``z``, the standardised log Q (``log Q = z * target_std + target_mean``).
A calibration (:mod:`dctqa.nr.calibrate`) takes the absolute residuals ``|z_pred - z_true|``
of held-out frames and stores their conformal quantile ``quantile_z``
(:func:`conformal_quantile`): the ``k``-th smallest of ``n`` residuals, ``k = ceil((n + 1)
(1 - alpha))``, i.e. the finite-sample level ``k / n`` over frames. A prediction's interval is
``z +- quantile_z``; mapped to Q by the monotone ``exp(z * target_std + target_mean)`` it is
``[Q exp(-h), Q exp(h)]`` with ``h = quantile_z * target_std`` (:func:`interval`), so
``low <= Q <= high`` always, and the interval holds the true Q exactly when the z interval
holds the true z.

Exchangeability: frames of one content window are not exchangeable (neighbouring frames of
one scene), whole windows roughly are. The residuals are pooled over frames with the
finite-sample level above, and the calibration windows are disjoint from the windows on
which ``dctqa eval-nr`` reports coverage; the guarantee is therefore only approximate (a
window-level one would need one residual per window, and many more windows than a fold has).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError

#: Miscoverage of the stored interval: a 90 % interval.
ALPHA = 0.1
#: Keys every stored calibration has (more are allowed: windows, frame step, ...).
REQUIRED = ("method", "alpha", "rank", "level", "quantile_z", "frames")


def quantile_rank(n: int, alpha: float = ALPHA) -> int:
    """``k = ceil((n + 1)(1 - alpha))``: the rank (1-based, ascending) of the conformal quantile
    among ``n`` residuals; ``> n`` when ``n`` is too small for a finite interval."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    return math.ceil(round((n + 1) * (1 - alpha), 9))  # round: (n + 1) * 0.9 is not exact in binary


def min_frames(alpha: float = ALPHA) -> int:
    """The fewest residuals that give a finite ``1 - alpha`` interval (9 for 90 %)."""
    n = 1
    while quantile_rank(n, alpha) > n:
        n += 1
    return n


def conformal_quantile(residuals: Any, alpha: float = ALPHA) -> float:
    """The split conformal quantile of ``|residuals|`` (any shape, finite): the
    :func:`quantile_rank`-th smallest. Raises :class:`InputError` for a non-finite residual or
    fewer than :func:`min_frames` of them."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64).ravel()))
    if not np.all(np.isfinite(r)):
        raise InputError("calibration residuals must be finite")
    k = quantile_rank(r.size, alpha)
    if k > r.size:
        raise InputError(f"a {1 - alpha:.0%} conformal interval needs at least {min_frames(alpha)} calibration "
                         f"frames, got {r.size}")
    return float(r[k - 1])


def make_calibration(residuals_z: Any, alpha: float = ALPHA, **facts: Any) -> dict:
    """The stored calibration of standardised residuals ``residuals_z``: method, alpha, rank
    ``k``, finite-sample level ``k / n``, ``quantile_z`` (z units), ``frames`` (``n``) and
    ``facts`` (e.g. windows, frame step, patches, sampling, seed of the predictions)."""
    r = np.abs(np.asarray(residuals_z, dtype=np.float64).ravel())
    q = conformal_quantile(r, alpha)
    k = quantile_rank(r.size, alpha)
    return {"method": "split conformal, |z_pred - z_true| of held-out frames, z = standardised log Q",
            "alpha": float(alpha), "rank": int(k), "level": k / r.size, "quantile_z": q, "frames": int(r.size),
            **facts}


def calibration_problem(value: Any) -> str | None:
    """What is wrong with a stored calibration (``None``: nothing, or no calibration at all);
    :func:`dctqa.nr.model.NRModel.load` and the ONNX backend refuse a checkpoint for it."""
    if value is None:
        return None
    if not isinstance(value, dict) or any(k not in value for k in REQUIRED):
        return f"its calibration is not a mapping with {list(REQUIRED)}"
    for name in ("quantile_z", "alpha", "level"):
        v = value[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"calibration {name} is {v!r}, expected a finite number"
    if value["quantile_z"] < 0 or not 0 < value["alpha"] < 1:
        return f"calibration quantile_z {value['quantile_z']!r} must be >= 0 and alpha {value['alpha']!r} in (0, 1)"
    return None


def interval(q: Any, calibration: dict | None, target_std: float) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` in Q of predictions ``q`` (Q, ``> 0``): ``q exp(-+ quantile_z *
    target_std)``; NaN (``null`` in a log) where ``calibration`` is ``None``."""
    q = np.asarray(q, dtype=np.float64)
    if calibration is None:
        nan = np.full(q.shape, np.nan)
        return nan, nan.copy()
    h = float(calibration["quantile_z"]) * float(target_std)
    return q * math.exp(-h), q * math.exp(h)


def interval_params(calibration: dict | None, target_std: float) -> dict | None:
    """What a log says of the interval: its level, alpha, ``quantile_z`` and half-width in
    log Q, the calibration frames; ``None`` for an uncalibrated model."""
    if calibration is None:
        return None
    return {"nominal": 1 - float(calibration["alpha"]), "alpha": float(calibration["alpha"]),
            "level": float(calibration["level"]), "quantile_z": float(calibration["quantile_z"]),
            "half_width_log_q": float(calibration["quantile_z"]) * float(target_std),
            "calibration_frames": int(calibration["frames"])}
