"""Calibration of a trained checkpoint's 90 % interval: on its own held-out windows
(``dctqa train-nr`` runs it after the last epoch; :func:`calibrate_checkpoint` for an
existing checkpoint), or, for a model that holds nothing out (``train-nr --split all``), from
the held-out videos of its leave-one-video-out fold models (:func:`calibrate_from_folds`,
``dctqa calibrate-nr MODEL --data DATA --from-folds FOLD.pt ...``; see the end of this module).

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
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from .conformal import ALPHA, conformal_quantile, make_calibration, min_frames
from .data import load_dataset, window_key


def split_windows(test: list[dict], window: int) -> tuple[list[str], list[str]]:
    """``(calibration, evaluation)`` window keys (``"video:k"``) of held-out rows: the sorted
    (video, k) windows taken alternately, the first to calibration."""
    keys = sorted({window_key(r, window) for r in test})
    name = [f"{v}:{k}" for v, k in keys]
    return name[::2], name[1::2]


def log_residuals(model, rows: list[dict], *, patches: int = 2, sampling: str = "activation",
                  seed: int = 0) -> np.ndarray:
    """Residuals in log Q, ``log q_pred - log q_true`` (``(N,)``), of ``rows`` (labelled frames
    with ``path``, ``frame``, ``log_q``), predicted as ``eval-nr`` predicts its test frames."""
    from .evaluate import predict_rows

    preds, _ = predict_rows(model, rows, [(sampling, patches)], 1, seed=seed)
    pred = preds[(sampling, patches)]
    log_q = np.array([r["log_q"] for r in rows], dtype=np.float64)
    return np.log(pred) - log_q


def calibration_residuals(model, rows: list[dict], *, patches: int = 2, sampling: str = "activation",
                          seed: int = 0) -> np.ndarray:
    """Standardised residuals ``z_pred - z_true`` (``(N,)``): :func:`log_residuals` divided by
    the model's ``target_std``."""
    return log_residuals(model, rows, patches=patches, sampling=sampling, seed=seed) / float(model.prov.target_std)


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


# ----------------------------------------------------------------------------- from fold models
#: What a fold model must share with the model it calibrates: its net and sampler settings
#: (the whole :class:`~dctqa.nr.model.NRConfig`: width, head, dropout, patch, sigma) and these
#: provenance fields.
SAME_PROVENANCE = ("metric_version", "backbone", "backbone_sha256", "target")
#: How every residual of a from-folds calibration is predicted (as ``eval-nr``'s main config).
FOLD_PREDICTION = {"patches": 2, "sampling": "activation", "seed": 0}


def _check_fold(path: str | os.PathLike, model, fold_ck: dict) -> None:
    """Refuse fold checkpoint ``path`` (its raw dictionary ``fold_ck``) unless it is an
    unseen-split (leave-one-video-out) model of ``model``'s configuration."""
    from dataclasses import asdict

    from .model import CheckpointError, _checkpoint_config, _checkpoint_provenance

    split = (fold_ck.get("train_config") or {}).get("split")
    if split != "unseen":
        raise CheckpointError(f"{path}: a fold for calibrate-nr must be a leave-one-video-out model "
                              f"(`dctqa train-nr --split unseen --fold VIDEO`); this one's split is {split!r}")
    cfg = asdict(_checkpoint_config(path, fold_ck["config"]))
    mine = asdict(model.cfg)
    diff = sorted(k for k in mine if mine[k] != cfg.get(k))
    prov = _checkpoint_provenance(path, fold_ck["provenance"])
    diff += [k for k in SAME_PROVENANCE if getattr(prov, k) != getattr(model.prov, k)]
    if diff:
        shown = ", ".join(f"{k} {_fold_value(cfg, prov, k)!r} vs {_fold_value(asdict(model.cfg), model.prov, k)!r}"
                          for k in diff)
        raise CheckpointError(f"{path}: not a fold of the model's configuration ({shown}); train the folds with "
                              "the same --width and settings, on targets of the same metric version, backbone "
                              "and target column")


def check_folds(model, folds: Sequence[str | os.PathLike]) -> None:
    """Refuse, before any prediction, folds that are not leave-one-video-out models of
    ``model``'s configuration (:class:`~dctqa.nr.model.CheckpointError`), none, or two folds of
    one held-out video (:class:`InputError`)."""
    from .model import read_checkpoint

    if not folds:
        raise InputError("calibrate-nr needs at least one fold checkpoint (--from-folds FOLD.pt ...)")
    videos = []
    for f in folds:
        ck = read_checkpoint(f)
        _check_fold(f, model, ck)
        videos.append(ck["train_config"].get("fold"))
    twice = sorted({str(v) for v in videos if videos.count(v) > 1})
    if twice:
        raise InputError(f"more than one fold holds out {twice}; give one fold checkpoint per held-out video")


def _fold_value(cfg: dict, prov, key: str):
    return cfg[key] if key in cfg else getattr(prov, key)


def fold_residuals(path: str | os.PathLike, model, rows: list[dict], frame_step: int | None,
                   alpha: float = ALPHA, prediction: dict | None = None) -> tuple[np.ndarray, dict]:
    """``(residuals, facts)`` of fold checkpoint ``path``: ``|log q_pred - log q_true|`` (log Q,
    ``(N,)``) of every ``frame_step``-th frame (default: the fold's training frame step) of its
    own held-out video, predicted with ``prediction`` (``patches``, ``sampling``, ``seed``;
    default :data:`FOLD_PREDICTION`, as ``eval-nr``'s main config); ``facts``:
    its path, sha256, held-out video, frames and own conformal quantile (log Q; ``None`` below
    :func:`~dctqa.nr.conformal.min_frames`)."""
    from ..fileio import file_sha256
    from .model import read_checkpoint
    from .train import held_out_split

    _check_fold(path, model, read_checkpoint(path))
    fold, _, tc, _, test = held_out_split(path, rows, "calibrate-nr", "calibrate with")
    step = tc.frame_step if frame_step is None else frame_step
    use = [r for r in test if r["frame"] % step == 0]
    if not use:
        raise InputError(f"{path}: no held-out frame of {tc.fold} is a multiple of --frame-step {step}")
    res = np.abs(log_residuals(fold, use, **(prediction or FOLD_PREDICTION)))
    own = conformal_quantile(res, alpha) if len(res) >= min_frames(alpha) else None
    return res, {"path": str(path), "sha256": file_sha256(path), "video": tc.fold, "frames": int(len(res)),
                 "frame_step": int(step), "quantile_log_q": own}


def calibrate_from_folds(model_path: str | os.PathLike, data: str | os.PathLike, folds: Sequence[str | os.PathLike],
                         out: str | os.PathLike | None = None, *, alpha: float = ALPHA, frame_step: int | None = None,
                         patches: int = 2, sampling: str = "activation",
                         log: Callable[[str], None] | None = None) -> dict:
    """Calibrate the 90 % interval of ``model_path`` (typically ``train-nr --split all``, which
    holds nothing out) from the leave-one-video-out residuals of fold models of its
    configuration (:func:`fold_residuals`, one fold per held-out video), and write it, with
    ``calibration`` added, to ``out`` (default: ``model_path``, replaced atomically).

    The residuals are pooled in log Q (fold models standardise by their own training targets,
    so their z units differ); the conformal quantile (the ``ceil((n + 1)(1 - alpha))``-th
    smallest of the ``n`` pooled residuals) is divided by the model's ``target_std`` so that
    the stored ``quantile_z`` means what an own-windows calibration's means. Refuses
    (:class:`~dctqa.nr.model.CheckpointError` / :class:`InputError`) a fold of another
    configuration or split, two folds of one video, or fewer than
    :func:`~dctqa.nr.conformal.min_frames` pooled frames. ``patches`` / ``sampling``: how the
    residuals are predicted; give the placement the model will be used with (the interval of
    4 grid patches is not that of 2 activation patches; both are stored, and
    :func:`dctqa.nr.default.install` refuses a recommendation that differs). The calibration
    also records ``leave_one_fold_out``: for each held-out video, the share of its residuals
    within the quantile of the other folds' residuals alone (an unseen-video coverage check
    of this very scheme). Returns the calibration."""
    import torch

    from ..fileio import atomic_path
    from .model import CheckpointError, NRModel, read_checkpoint

    if frame_step is not None and (isinstance(frame_step, bool) or not isinstance(frame_step, int) or frame_step < 1):
        raise InputError(f"frame_step must be an integer >= 1, got {frame_step!r}")
    rows, meta = load_dataset(data)
    model = NRModel.load(model_path)
    ck = read_checkpoint(model_path)
    if (meta.get("backbone_sha256"), meta.get("target")) != (model.prov.backbone_sha256, model.prov.target):
        raise CheckpointError(f"{model_path} predicts {model.prov.target} of backbone sha256 "
                              f"{model.prov.backbone_sha256[:12]}; {data} holds {meta.get('target')} of "
                              f"{str(meta.get('backbone_sha256'))[:12]}: calibrate on the data it was trained on")
    model.check_options(patches=patches, sampling=sampling)
    check_folds(model, folds)
    prediction = {"patches": patches, "sampling": sampling, "seed": 0}
    parts = [fold_residuals(f, model, rows, frame_step, alpha, prediction) for f in folds]
    videos = [facts["video"] for _, facts in parts]
    res_log = np.concatenate([r for r, _ in parts])
    if len(res_log) < min_frames(alpha):
        raise InputError(f"the folds' held-out frames number {len(res_log)}; a {1 - alpha:.0%} interval needs "
                         f"{min_frames(alpha)} (lower --frame-step)")
    std = float(model.prov.target_std)
    calibration = make_calibration(
        res_log / std, alpha,
        method="split conformal from leave-one-video-out folds: |log q_pred - log q_true| of each fold model on "
               "its own held-out video, pooled in log Q, quantile divided by this model's target_std",
        source="folds", quantile_log_q=conformal_quantile(res_log, alpha), target_std=std, videos=videos,
        folds=[facts for _, facts in parts], leave_one_fold_out=leave_one_fold_out(parts, alpha), **prediction)
    ck["calibration"] = calibration
    with atomic_path(model_path if out is None else out,
                     inputs=[Path(data) / "labels.csv", *[Path(f) for f in folds]]) as tmp:
        torch.save(ck, tmp)
    if log:
        log(f"calibrated from {len(folds)} folds ({', '.join(videos)}): {1 - alpha:.0%} interval = prediction "
            f"x/ {np.exp(calibration['quantile_log_q']):.3f} (conformal quantile of {len(res_log)} held-out frames)")
    return calibration


def leave_one_fold_out(parts: Sequence[tuple[np.ndarray, dict]], alpha: float = ALPHA) -> list[dict]:
    """For each fold of ``parts`` (``(log-Q residuals, facts)`` of :func:`fold_residuals`): the
    conformal quantile of the *other* folds' pooled residuals and the share of this fold's
    residuals at or below it (``coverage``, 0..1; ``None`` when the others hold fewer than
    :func:`~dctqa.nr.conformal.min_frames` frames). The interval a video never seen gets."""
    out = []
    for i, (res, facts) in enumerate(parts):
        others = np.concatenate([r for j, (r, _) in enumerate(parts) if j != i]) if len(parts) > 1 else np.zeros(0)
        q = conformal_quantile(others, alpha) if len(others) >= min_frames(alpha) else None
        out.append({"video": facts["video"], "frames": int(len(res)), "others_frames": int(len(others)),
                    "quantile_log_q": q, "coverage": None if q is None else float(np.mean(res <= q))})
    return out


__all__ = ["calibrate_checkpoint", "calibrate_from_folds", "calibration_residuals", "check_folds", "fold_residuals",
           "leave_one_fold_out", "log_residuals", "split_windows"]
