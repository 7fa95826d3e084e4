"""Calibration of a trained checkpoint's 90 % interval on its own held-out windows
(``dctqa train-nr`` runs it after the last epoch; :func:`calibrate_checkpoint` for an
existing checkpoint).

The checkpoint's split is rebuilt from its stored settings (as ``dctqa eval-nr`` does); its
held-out content windows, sorted by (video, window), go alternately to calibration (1st,
3rd, ...) and to evaluation (2nd, 4th, ...). The calibration windows' frames (every
``frame_step``-th, the training run's by default) are predicted as ``eval-nr`` predicts them
(2 activation patches, patch seed = frame number) and the split conformal quantile of their
standardised residuals (:mod:`dctqa.nr.conformal`) is stored in the checkpoint under
``calibration``, with the two lists of windows, so that ``eval-nr`` reports the interval's
coverage on windows it was not calibrated on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .conformal import ALPHA, make_calibration, min_frames
from .data import load_dataset, window_key


def split_windows(test: list[dict], window: int) -> tuple[list[str], list[str]]:
    """``(calibration, evaluation)`` window keys (``"video:k"``) of held-out rows: the sorted
    (video, k) windows taken alternately, the first to calibration."""
    keys = sorted({window_key(r, window) for r in test})
    name = [f"{v}:{k}" for v, k in keys]
    return name[::2], name[1::2]


def calibration_residuals(model, rows: list[dict], *, patches: int = 2, sampling: str = "activation",
                          seed: int = 0) -> np.ndarray:
    """Standardised residuals ``z_pred - z_true`` (``(N,)``) of ``rows`` (labelled frames with
    ``path``, ``frame``, ``log_q``), predicted as ``eval-nr`` predicts its test frames."""
    from .evaluate import predict_rows

    preds, _ = predict_rows(model, rows, [(sampling, patches)], 1, seed=seed)
    pred = preds[(sampling, patches)]
    log_q = np.array([r["log_q"] for r in rows], dtype=np.float64)
    return (np.log(pred) - log_q) / float(model.prov.target_std)


def calibrate_checkpoint(path: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike | None = None, *,
                         alpha: float = ALPHA, frame_step: int | None = None,
                         log: Callable[[str], None] | None = None) -> dict | None:
    """Calibrate checkpoint ``path`` (from ``dctqa train-nr``) on the calibration half of its
    held-out windows in ``data`` (its nr-data folder) and write it, with ``calibration`` added,
    to ``out`` (default: ``path`` itself, replaced atomically). Returns the calibration, or
    ``None`` (nothing written, ``log`` told why) when the calibration windows hold fewer than
    :func:`dctqa.nr.conformal.min_frames` frames."""
    import torch

    from ..fileio import atomic_path
    from .train import held_out_split

    rows, _ = load_dataset(data)
    model, ck, tc, _, test = held_out_split(path, rows, "calibration", "calibrate")
    step = tc.frame_step if frame_step is None else frame_step
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InputError(f"frame_step must be an integer >= 1, got {step!r}")
    cal_keys, eval_keys = split_windows(test, tc.window)
    cal = set(cal_keys)
    cal_rows = [r for r in test if "%s:%d" % window_key(r, tc.window) in cal and r["frame"] % step == 0]
    if len(cal_rows) < min_frames(alpha):
        if log:
            log(f"{path}: not calibrated: its calibration windows hold {len(cal_rows)} frames, a "
                f"{1 - alpha:.0%} interval needs {min_frames(alpha)}")
        return None
    res = calibration_residuals(model, cal_rows)
    calibration = make_calibration(res, alpha, windows=cal_keys, held_out_windows=eval_keys, frame_step=step,
                                   patches=2, sampling="activation", seed=0)
    ck["calibration"] = calibration
    with atomic_path(path if out is None else out, inputs=[Path(data) / "labels.csv"]) as tmp:
        torch.save(ck, tmp)
    if log:
        log(f"calibrated: {1 - alpha:.0%} interval = prediction x/ {np.exp(calibration['quantile_z'] * model.prov.target_std):.3f} "
            f"(conformal quantile of {len(res)} frames in {len(cal_keys)} windows; {len(eval_keys)} held-out "
            "windows left for eval-nr's coverage)")
    return calibration


__all__ = ["calibrate_checkpoint", "calibration_residuals", "split_windows"]
