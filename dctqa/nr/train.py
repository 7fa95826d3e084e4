"""Training of the no-reference model: ``dctqa train-nr DIR --split ... --out model.pt``.

Frames are decoded on the fly (:class:`CropStream`): each DataLoader worker keeps a few
variant files open, decodes them front to back (no seeking) and interleaves them at random,
so a batch mixes variants and content; a shuffle buffer of crops mixes further. Nothing
larger than that buffer is ever held in memory. Augmentation: random 224 crops and
horizontal flips only (no resizing, no colour changes: they would alter the artefacts).

Input: :func:`dctqa.nr.model.normalise_frames` of each crop. Loss: MSE on the standardised
log Q of the whole frame. AdamW, linear warm-up then cosine
decay of the learning rate, per step. Seeded (torch, NumPy, crop positions, file order).
A checkpoint (model, optimiser, schedule, history) is written after every epoch;
``resume=True`` continues from it after checking that it was made with the same settings.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import InputError
from ..progress import progress as progress_bar
from ..values import is_int, is_real
from .data import SPLITS, load_dataset, split_rows, window_key
from .model import NRConfig, NRModel, Provenance, normalise_frames, read_checkpoint


#: The split that holds nothing out (the shipped model's): every labelled window of every
#: video and the training-only extras train; its interval comes from fold models
#: (:func:`dctqa.nr.calibrate.calibrate_from_folds`).
SPLIT_ALL = "all"
#: Every ``--split`` train-nr takes.
TRAIN_SPLITS = (*SPLITS, SPLIT_ALL)


@dataclass
class TrainConfig:
    """Settings of one training run (all stored in the checkpoint).

    split/fold/window/gap/every: see :func:`dctqa.nr.data.split_rows`, plus :data:`SPLIT_ALL`
    (``"all"``: every labelled frame trains, nothing is held out; :func:`train_rows`);
    frame_step: use only
    labelled frames whose number is a multiple of it (subsampling); variants: names of the
    variants to train on (empty = all); variant_step: train on every n-th variant of each video
    (its variant names sorted; 1 = all); crops: random crops per decoded frame; open_files:
    variant files each worker interleaves; buffer: shuffle buffer in crops.
    """

    split: str = "seen"
    fold: str | None = None
    window: int = 100
    gap: int = 10
    every: int = 4
    frame_step: int = 4
    variants: tuple[str, ...] = ()
    variant_step: int = 1
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    crops: int = 2
    open_files: int = 10
    buffer: int = 256
    workers: int = 1
    seed: int = 0
    model: NRConfig = field(default_factory=NRConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = NRConfig(**self.model)
        self.variants = tuple(self.variants)
        for name in ("epochs", "batch_size", "crops", "open_files", "buffer", "frame_step", "variant_step"):
            v = getattr(self, name)
            if not (is_int(v) and v >= 1):
                raise InputError(f"{name} must be an integer >= 1, got {v!r}")
        if not (is_real(self.lr) and 0 < self.lr <= 10) or not (is_int(self.workers) and 0 <= self.workers <= 256):
            raise InputError(f"need 0 < lr <= 10 and workers in 0..256, got {self.lr!r}, {self.workers!r}")
        if self.split == SPLIT_ALL and self.fold is not None:
            raise InputError(f"--split {SPLIT_ALL} holds no video out; --fold {self.fold!r} applies to --split unseen")


def train_rows(rows: list[dict], cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` rows of ``cfg``'s split; the training rows subsampled by
    ``frame_step`` and ``variants``. Split :data:`SPLIT_ALL`: every row (the training-only
    extras included) trains and ``test`` is empty."""
    if cfg.split == SPLIT_ALL:
        train, test = list(rows), []
    else:
        train, test = split_rows(rows, cfg.split, fold=cfg.fold, window=cfg.window, gap=cfg.gap, every=cfg.every,
                                 seed=cfg.seed)
    keep = every_nth_variant(rows, cfg.variant_step)
    train = [r for r in train if r["frame"] % cfg.frame_step == 0 and (r["video"], r["variant"]) in keep
             and (not cfg.variants or r["variant"] in cfg.variants)]
    if not train or (not test and cfg.split != SPLIT_ALL):
        raise InputError(f"split {cfg.split!r} (fold {cfg.fold!r}) leaves {len(train)} training and "
                         f"{len(test)} test frames; both must be non-empty")
    return train, test


def held_out_split(path: str | os.PathLike, rows: list[dict], needs: str, verb: str
                   ) -> tuple[NRModel, dict, TrainConfig, list[dict], list[dict]]:
    """``(model, checkpoint, settings, train, test)`` of checkpoint ``path`` (from ``dctqa
    train-nr``) on ``rows``: its split rebuilt from its stored settings, and checked to give the
    held-out windows it was trained with (:class:`InputError` otherwise). ``needs`` (e.g.
    ``"eval-nr"``) and ``verb`` (``"evaluate"``) name the caller in the messages."""
    from .model import CheckpointError

    model = NRModel.load(path)
    ck = read_checkpoint(path)
    try:
        tc = TrainConfig(**ck["train_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r} holds no usable training settings ({type(exc).__name__}: {exc}); "
                              f"{needs} needs a checkpoint written by `dctqa train-nr`") from None
    if tc.split == SPLIT_ALL:
        raise InputError(f"{path} was trained with --split {SPLIT_ALL}: it holds no frames out, so there is nothing "
                         f"to {verb} it on; calibrate it from fold models with `dctqa calibrate-nr {path} --data DATA "
                         "--from-folds FOLD.pt ...` and evaluate the folds")
    train, test = train_rows(rows, tc)
    keys = sorted({f"{v}:{k}" for v, k in (window_key(r, tc.window) for r in test)})
    if keys != model.prov.split.get("test_windows"):
        raise InputError(f"{path}: its held-out windows differ from this data's; {verb} on the data it was "
                         "trained on")
    return model, ck, tc, train, test


def every_nth_variant(rows: list[dict], step: int) -> set[tuple[str, str]]:
    """``{(video, variant)}`` of every ``step``-th variant of each video (names sorted)."""
    names: dict[str, set[str]] = {}
    for r in rows:
        names.setdefault(r["video"], set()).add(r["variant"])
    return {(v, n) for v, ns in names.items() for n in sorted(ns)[::step]}


class CropStream(IterableDataset):
    """Random crops ``(uint8 [3, P, P], float target)`` of labelled frames, decoded on the fly.

    rows: dicts with ``path``, ``frame`` and ``z`` (standardised target). Epoch ``e`` of a
    stream seeded ``s`` always yields the same crops in the same order (per worker count).
    """

    def __init__(self, rows: list[dict], patch: int, crops: int, open_files: int, buffer: int, seed: int,
                 augment: bool = True) -> None:
        self.by_path: dict[str, dict[int, float]] = {}
        for r in rows:
            self.by_path.setdefault(r["path"], {})[int(r["frame"])] = float(r["z"])
        self.patch, self.crops, self.open_files, self.buffer = patch, crops, open_files, buffer
        self.seed, self.augment, self.epoch = seed, augment, 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_path.values()) * self.crops

    def _frames(self, path: str) -> Iterator[tuple[np.ndarray, float]]:
        from ..io import iter_frames

        want = self.by_path[path]
        step = math.gcd(*want.keys()) if len(want) > 1 else max(1, next(iter(want)))
        last = max(want)
        for i, frame in enumerate(iter_frames(path, stride=step or 1)):
            n = i * (step or 1)
            if n > last:
                break
            if n in want:
                yield frame, want[n]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, float]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(f"{self.seed}/{self.epoch}/{wid}")
        paths = sorted(self.by_path)[wid::nw]
        rng.shuffle(paths)
        live: list[Iterator] = []
        buf: list[tuple[torch.Tensor, float]] = []
        while paths or live:
            while paths and len(live) < self.open_files:
                live.append(self._frames(paths.pop()))
            it = rng.choice(live)
            item = next(it, None)
            if item is None:
                live.remove(it)
                continue
            frame, z = item
            for _ in range(self.crops):
                buf.append((self._crop(frame, rng), z))
            while len(buf) >= self.buffer:
                yield buf.pop(rng.randrange(len(buf)))
        rng.shuffle(buf)
        yield from buf

    def _crop(self, frame: np.ndarray, rng: random.Random) -> torch.Tensor:
        h, w, _ = frame.shape
        p = self.patch
        if h < p or w < p:
            raise InputError(f"frames are {w}x{h}, smaller than the {p}x{p} patch")
        t, l = rng.randint(0, h - p), rng.randint(0, w - p)
        c = frame[t:t + p, l:l + p]
        if self.augment and rng.random() < 0.5:
            c = c[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1)


def _schedule(cfg: TrainConfig, total_steps: int):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def train(data_dir: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig, *, resume: bool = False,
          progress: bool = False, log=None) -> NRModel:
    """Train (or resume) a model on ``data_dir`` (from ``dctqa nr-data``); checkpoint to ``out``
    after every epoch. Returns the trained :class:`NRModel`."""
    from ..fileio import check_output_path

    rows, meta = load_dataset(data_dir)
    inputs = [Path(data_dir) / "labels.csv", Path(data_dir) / "dataset.json", *{r["path"] for r in rows}]
    check_output_path(out, inputs)  # before the first epoch: never an input, a writable folder
    train_set, test_set = train_rows(rows, cfg)
    _check_frame_sizes(train_set, cfg.model.patch)
    y = np.array([r["log_q"] for r in train_set])
    mean, std = float(y.mean()), float(y.std() or 1.0)
    for r in train_set:
        r["z"] = (r["log_q"] - mean) / std
    split = {**{k: v for k, v in asdict(cfg).items() if k in ("split", "fold", "window", "gap", "every", "seed")},
             "train_frames": len(train_set), "test_frames": len(test_set),
             "test_windows": sorted({f"{v}:{k}" for v, k in (window_key(r, cfg.window) for r in test_set)})}
    prov = Provenance(meta["metric_version"], meta["backbone"], meta["backbone_sha256"], target=meta["target"],
                      target_mean=mean, target_std=std, split=split, window=cfg.window)
    _seed_all(cfg.seed)
    model = NRModel(cfg.model, prov)
    net = model.net
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stream = CropStream(train_set, cfg.model.patch, cfg.crops, cfg.open_files, cfg.buffer, cfg.seed)
    steps_per_epoch = math.ceil(len(stream) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, steps_per_epoch * cfg.epochs))
    history: list[dict[str, Any]] = []
    start = 0
    if resume and Path(out).is_file():
        start, history = _resume(out, cfg, model, opt, sched)
    for epoch in range(start, cfg.epochs):
        stream.epoch = epoch
        _seed_all(cfg.seed + epoch)
        loader = DataLoader(stream, batch_size=cfg.batch_size, num_workers=cfg.workers,
                            persistent_workers=False)
        net.train()
        t0, losses = time.perf_counter(), []
        bar = progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", unit="step", enabled=progress)
        for crops, z in loader:
            x = normalise_frames(crops, channels_last=False)
            loss = torch.nn.functional.mse_loss(net(x), z.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
        bar.close()
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else math.nan,
                        "steps": len(losses), "seconds": time.perf_counter() - t0})
        if log:
            log(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, {len(losses)} steps, "
                f"{history[-1]['seconds']:.0f} s")
        model.save(out, train_config=_cfg_dict(cfg), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                   epoch=epoch + 1, history=history)
    net.eval()
    return model


def _check_frame_sizes(rows: list[dict], patch: int) -> None:
    """Every training video's frames must hold a ``patch x patch`` crop (checked before the
    first epoch, by probing each file once)."""
    from ..io import probe

    for path in sorted({r["path"] for r in rows}):
        info = probe(path)
        if info.width < patch or info.height < patch:
            raise InputError(f"{path}: frames are {info.width}x{info.height}, smaller than the model's "
                             f"{patch}x{patch} patch; train on larger frames")


def _cfg_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["model"] = asdict(cfg.model)
    return d


def _resume(out, cfg: TrainConfig, model: NRModel, opt, sched) -> tuple[int, list]:
    """Load the state of an earlier run of the same configuration; returns (next epoch, history)."""
    ck = read_checkpoint(out)
    saved = ck.get("train_config")
    mine = _cfg_dict(cfg)
    free = ("epochs", "workers")  # may change between runs without changing what is learnt
    diff = sorted(k for k in mine if k not in free and _norm(saved.get(k) if saved else None) != _norm(mine[k]))
    if saved is None or diff:
        raise InputError(f"cannot resume {out}: it was trained with other settings ({', '.join(diff) or 'unknown'}); "
                         "use the same options or a new --out")
    if ck["provenance"]["split"].get("test_windows") != model.prov.split["test_windows"]:
        raise InputError(f"cannot resume {out}: its held-out windows differ from this data's")
    model.net.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    return int(ck["epoch"]), list(ck.get("history", []))


def _norm(v):
    return list(v) if isinstance(v, tuple) else ({k: _norm(x) for k, x in v.items()} if isinstance(v, dict) else v)


__all__ = ["TrainConfig", "CropStream", "train", "train_rows", "normalise_frames", "SPLIT_ALL", "TRAIN_SPLITS"]
