"""The no-reference network and its checkpoint.

:class:`NRNet`: the convolutional stack of ``torchvision.models.alexnet(weights=None)``
(5 conv layers, its kernel sizes, strides and pooling) with every channel count scaled by
``width`` (default 0.25: 16-48-96-64-64 channels, CPU-sized; ``width=1.0`` is AlexNet's
64-192-384-256-256, for a GPU), then a 4-layer fully connected head to one output: the
standardised log Q of the whole frame. Input: 224 x 224 RGB crops of the compressed frame,
never resized (resizing would smooth away the block artefacts the net must see), scaled
to [0, 1] and locally contrast-normalised (:func:`local_contrast_normalise`, as Kang et al.
2014 did for no-reference IQA CNNs: without it the plain AlexNet stack hardly moved from
predicting the mean in our trial runs, since content dominates the compression cues).

:class:`NRModel` bundles the net with everything needed to use it (patch size, sampler
settings, normalisation of input and target) and the facts that make a checkpoint valid:
metric version, backbone (name and sha256) the targets were computed with, the split it
was trained on. :meth:`NRModel.load` refuses a checkpoint made for another metric version
or backbone.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DctqaError, InputError
from . import MAX_PATCHES
from .conformal import calibration_problem, interval
from .predict import DEFAULT_OPTIONS, Prediction, as_frames, predict_video, resolve_options

CHECKPOINT_FORMAT = 1
#: Crops go through the net at most this many at a time, so memory is bounded by it, not by
#: the number of patches (at most :data:`dctqa.nr.MAX_PATCHES` per frame).
CROP_CHUNK = 64
#: Input normalisation: Gaussian window (sigma, radius in pixels) and the constant c.
LCN = {"kind": "local contrast normalisation", "sigma": 7 / 6, "radius": 3, "c": 0.01}


class CheckpointError(DctqaError):
    """A no-reference checkpoint that is missing, damaged or made for another metric/backbone."""


@dataclass
class NRConfig:
    """Hyper-parameters of the net and of prediction.

    width: channel scale of AlexNet's conv stack (0.25 default, 1.0 = full width);
    fc: widths of the three hidden fully connected layers; dropout: before the hidden layers;
    patch: crop side in pixels; sigma: smoothing of the activation map in conv1 cells
    (4 pixels each).
    """

    width: float = 0.25
    fc: tuple[int, int, int] = (256, 128, 64)
    dropout: float = 0.1
    patch: int = 224
    sigma: float = 8.0

    def __post_init__(self) -> None:
        self.fc = tuple(int(v) for v in self.fc)
        if not (0 < self.width <= 4) or len(self.fc) != 3 or min(self.fc) < 1 or not 0 <= self.dropout < 1:
            raise InputError(f"bad model configuration: {self}")
        if self.patch < 63:
            raise InputError(f"patch must be >= 63 pixels (AlexNet's receptive field), got {self.patch}")


def _scaled_alexnet_features(width: float) -> nn.Sequential:
    """AlexNet's ``features`` with channel counts scaled by ``width`` (torchvision's layout)."""
    from torchvision.models import alexnet

    ref = alexnet(weights=None).features
    if width == 1.0:
        return ref
    layers: list[nn.Module] = []
    cin = 3
    for m in ref:
        if isinstance(m, nn.Conv2d):
            cout = max(4, int(round(m.out_channels * width)))
            layers.append(nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding))
            cin = cout
        else:
            layers.append(m)
    return nn.Sequential(*layers)


class NRNet(nn.Module):
    """AlexNet-style conv stack + 4 linear layers -> one value per crop (``[B, 3, P, P]`` -> ``[B]``)."""

    #: conv1 geometry: cell i of its output is centred on input pixel 4 i + 3 (11x11, stride 4, pad 2).
    CONV1_STRIDE, CONV1_OFFSET = 4, 3

    def __init__(self, cfg: NRConfig) -> None:
        super().__init__()
        self.features = _scaled_alexnet_features(cfg.width)
        c5 = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        a, b, c = cfg.fc
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(c5 * 36, a), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout), nn.Linear(a, b), nn.ReLU(inplace=True),
            nn.Linear(b, c), nn.ReLU(inplace=True), nn.Linear(c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))[:, 0]

    def conv1(self, x: torch.Tensor) -> torch.Tensor:
        """First-layer activation maps (before the ReLU) of whole frames ``[N, 3, H, W]``."""
        return self.features[0](x)


def local_contrast_normalise(x: torch.Tensor, sigma: float = LCN["sigma"], radius: int = LCN["radius"],
                             c: float = LCN["c"]) -> torch.Tensor:
    """Per channel ``(x - mu) / (sd + c)``, ``mu`` and ``sd`` the Gaussian-weighted local mean and
    standard deviation (window ``2 radius + 1``, reflect padding); ``x``: ``[N, C, H, W]`` in [0, 1]."""
    import torch.nn.functional as F

    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    ch = int(x.shape[1])  # a plain int: an ONNX export (dctqa.nr.export) then has fixed kernels
    kx, ky = k.view(1, 1, 1, -1).repeat(ch, 1, 1, 1), k.view(1, 1, -1, 1).repeat(ch, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="reflect"), kx, groups=ch)
        return F.conv2d(F.pad(t, (0, 0, radius, radius), mode="reflect"), ky, groups=ch)

    mu = blur(x)
    sd = blur((x - mu) ** 2).clamp_min(0).sqrt()
    return (x - mu) / (sd + c)


def to_unit(frames: np.ndarray | torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 RGB ``[N, H, W, 3]`` (or ``[N, 3, H, W]`` with ``channels_last=False``) -> float32
    ``[N, 3, H, W]`` in [0, 1]."""
    t = torch.as_tensor(frames)
    if t.dtype != torch.uint8 or t.dim() != 4 or t.shape[-1 if channels_last else 1] != 3:
        raise InputError(f"frames must be uint8 RGB [N, H, W, 3], got {t.dtype} {tuple(t.shape)}")
    if channels_last:
        t = t.permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def normalise_frames(frames: np.ndarray | torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """The net's input: :func:`local_contrast_normalise` of :func:`to_unit` of uint8 frames or crops."""
    return local_contrast_normalise(to_unit(frames, channels_last))


#: The target column checkpoints held before it was stored (a placeholder, not a study
#: column): such a checkpoint's target is derived from its backbone on loading.
LEGACY_TARGET = "dctqa_spectral"


@dataclass
class Provenance:
    """What the targets were: metric version, backbone (name and sha256), target column (the
    study's column of the labels, e.g. ``dctqa_spectral_yolox_nano``) and transform (``log``;
    standardised with ``mean``/``std`` of the training targets), split, and ``window``: the
    content window of the split in source frames (its test windows, the bootstrap's
    clusters). Stored at training time; on loading, a checkpoint that lacks ``target`` gets
    the backbone's spectral column and one that lacks ``window`` its split's window
    (:func:`read_provenance`)."""

    metric_version: int | str
    backbone: str
    backbone_sha256: str
    target: str | None = None
    target_mean: float = 0.0
    target_std: float = 1.0
    split: dict = field(default_factory=dict)
    window: int | None = None


class NRModel:
    """A trained no-reference predictor: ``NRModel.load(path).predict(frames)``."""

    def __init__(self, cfg: NRConfig, prov: Provenance, net: NRNet | None = None,
                 calibration: dict | None = None) -> None:
        self.cfg = cfg
        self.prov = prov
        #: The stored split conformal calibration (:mod:`dctqa.nr.conformal`), ``None`` if none.
        self.calibration = calibration
        self.net = net if net is not None else NRNet(cfg)
        #: ``patches``/``sampling`` of a prediction that gives none (a checkpoint records no
        #: recommendation: :data:`dctqa.nr.predict.DEFAULT_OPTIONS`; the shipped default model's
        #: come from its ``nr-default.json``, :func:`dctqa.nr.default.load_default`).
        self.recommended: dict[str, Any] = dict(DEFAULT_OPTIONS)
        #: Where it was loaded from (``model``: the path or ``"default"``, ``model_sha256``).
        self.source: dict[str, Any] | None = None
        self.name = "dctqa_nr"
        self.kind = "NR"
        self.lower_better = True

    # ------------------------------------------------------------------ checkpoint
    def state(self, **extra: Any) -> dict:
        """The checkpoint dictionary (``extra``: optimiser state, epoch, ...)."""
        return {"format": CHECKPOINT_FORMAT, "kind": "dctqa_nr", "config": asdict(self.cfg),
                "provenance": asdict(self.prov),
                "normalisation": {"input": dict(LCN), "target": "log Q standardised by provenance "
                                  "target_mean / target_std"},
                "state_dict": self.net.state_dict(),
                **({"calibration": self.calibration} if self.calibration is not None else {}), **extra}

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """Write the checkpoint atomically (temporary file + rename)."""
        from ..fileio import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.state(**extra), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, *, backbone: str | None = None, metric_version: str | None = None,
             device: str = "cpu") -> "NRModel":
        """Load a checkpoint, refusing one made for another metric version (default: this
        package's) or, when ``backbone`` (a name as for :class:`dctqa.Metric`) is given, for
        another backbone (compared by sha256 of the model file, or by name)."""
        ck = read_checkpoint(path)
        from ..constants import METRIC_VERSION

        prov = _checkpoint_provenance(path, ck["provenance"])
        want = metric_version or METRIC_VERSION
        if prov.metric_version != want:
            raise CheckpointError(f"{path} was trained for metric version {prov.metric_version}, this is "
                                  f"{want}: retrain it (`dctqa train-nr`) on targets of this version")
        if backbone is not None:
            from .data import backbone_identity

            ident = backbone_identity(backbone)
            if ident != prov.backbone_sha256:
                raise CheckpointError(f"{path} was trained on Q of backbone {prov.backbone} (sha256 "
                                      f"{prov.backbone_sha256[:12]}), not {backbone} ({ident[:12]})")
        norm = ck.get("normalisation")
        if not isinstance(norm, dict) or norm.get("input") != LCN:
            raise CheckpointError(f"{path} was trained with another input normalisation "
                                  f"({norm.get('input') if isinstance(norm, dict) else norm!r}); retrain it")
        from ..metric import check_device

        dev = check_device(device)
        model = cls(_checkpoint_config(path, ck["config"]), prov)
        try:
            model.net.load_state_dict(ck["state_dict"])
        except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            first = str(exc).strip().splitlines()
            raise CheckpointError(f"{path}: its weights do not fit the network its config describes "
                                  f"({' '.join(line.strip() for line in first[:3])[:300]}); the file is damaged or "
                                  f"was not written by `dctqa train-nr`") from None
        model.net.to(dev).eval()
        model.calibration = _checkpoint_calibration(path, ck.get("calibration"))  # absent in older checkpoints
        from ..fileio import file_sha256

        model.source = {"model": str(path), "model_sha256": file_sha256(path)}
        return model

    # ------------------------------------------------------------------ prediction
    def check_options(self, *, patches: int = 2, sampling: str = "activation", height: int | None = None,
                      width: int | None = None) -> None:
        """Raise :class:`InputError` unless :meth:`predict` can run with ``patches`` crops per frame,
        ``sampling`` (one of :data:`dctqa.nr.sampling.SAMPLINGS`) on ``height x width`` frames
        (pixels; not checked when ``None``): lets a caller refuse bad settings before any work."""
        from .sampling import SAMPLINGS

        if sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")
        if (isinstance(patches, bool) or not isinstance(patches, (int, np.integer))
                or not 1 <= patches <= MAX_PATCHES):
            raise InputError(f"patches must be an integer in 1..{MAX_PATCHES} (crops per frame), got {patches!r}")
        p = self.cfg.patch
        if height is not None and width is not None and (height < p or width < p):
            raise InputError(f"frames are {width}x{height}; the model needs at least {p}x{p} (no resizing)")

    def predict_video(self, video: str | os.PathLike, **options: Any) -> Prediction:
        """:func:`dctqa.nr.predict.predict_video` with this model (``options``: its keyword
        arguments) -> its :class:`~dctqa.nr.predict.Prediction` (``q``, ``frame_numbers``,
        ``seconds``). Lets a caller that holds the model from the registry (e.g. ``dctqa study
        --nr-model``) predict a video without importing the wing."""
        return predict_video(self, video, **options)

    def predict(self, frames: np.ndarray | Sequence[np.ndarray], *, patches: int | None = None,
                sampling: str | None = None, seed: int = 0, batch_size: int = 8) -> np.ndarray:
        """Predicted Q (``>= 0``, 1 = untouched, higher = worse for detection) of each frame.

        frames: one ``H x W x 3`` uint8 RGB frame, a list of them, ``[N, H, W, 3]`` or ``[N, 3, H, W]``;
        patches: crops per frame (their predicted log Q are averaged); sampling: one of
        ``activation`` (the paper's), ``uniform``, ``grid``; seed: of the patch draws;
        ``patches``/``sampling`` ``None``: :attr:`recommended`.
        """
        patches, sampling = resolve_options(self, patches, sampling)
        arr = as_frames(frames)  # also [N, 3, H, W] tensors, as dctqa.serve.StreamScorer passes them
        out = [self.predict_log(arr[i:i + batch_size], patches=patches, sampling=sampling, seed=seed + i)
               for i in range(0, len(arr), batch_size)]
        return np.exp(np.concatenate(out)) if out else np.zeros(0)

    def predict_interval(self, frames: np.ndarray | Sequence[np.ndarray], **options: Any
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, low, high)``: :meth:`predict` (``options``: its keyword arguments) and the stored
        90 % interval of each frame in Q (``low <= q <= high``; NaN without a calibration)."""
        q = self.predict(frames, **options)
        return (q, *self.interval(q))

    def interval(self, q: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``: the stored 90 % interval in Q around predictions ``q`` (Q > 0, any
        shape; ``q exp(-+h)``, one half-width ``h`` per model); NaN without a calibration. What
        :class:`dctqa.StreamScorer` calls with ``interval=True``."""
        return interval(q, self.calibration, self.prov.target_std)

    @torch.no_grad()
    def predict_log(self, frames: np.ndarray, *, patches: int = 2, sampling: str = "activation",
                    seed: int = 0) -> np.ndarray:
        """Predicted log Q of ``[N, H, W, 3]`` uint8 frames (mean over ``patches`` crops)."""
        from .sampling import patch_corners

        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"frames must be uint8 RGB [N, H, W, 3], got {frames.dtype} {frames.shape}")
        n, h, w, _ = frames.shape
        p = self.cfg.patch
        if h < p or w < p:
            raise InputError(f"frames are {w}x{h}; the model needs at least {p}x{p} (no resizing)")
        self.net.eval()
        dev = next(self.net.parameters()).device
        x = to_unit(frames).to(dev)
        act = self.net.conv1(local_contrast_normalise(x)) if sampling == "activation" else None
        self.check_options(patches=patches, sampling=sampling)
        corners = patch_corners(sampling, h, w, p, patches, seed=seed, act=act, stride=NRNet.CONV1_STRIDE,
                                offset=NRNet.CONV1_OFFSET, sigma=self.cfg.sigma, n=n)
        where = [(i, t, l) for i in range(n) for t, l in corners[i].tolist()]
        outs = []
        for k in range(0, len(where), CROP_CHUNK):  # memory bounded by the chunk, not by patches
            crops = torch.stack([x[i, :, t:t + p, l:l + p] for i, t, l in where[k:k + CROP_CHUNK]])
            outs.append(self.net(local_contrast_normalise(crops)))
        z = torch.cat(outs).view(n, patches).mean(1).double().cpu().numpy()
        return z * self.prov.target_std + self.prov.target_mean

    # ------------------------------------------------------------------ registry protocol
    def score(self, dist: np.ndarray) -> float | np.ndarray:
        """Registry interface of a no-reference metric: predicted Q of a frame (or frames)."""
        q = self.predict(dist)
        return float(q[0]) if np.asarray(dist).ndim == 3 else q


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dictionary, checked for format and completeness."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"model file {str(p)!r} does not exist")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise CheckpointError(f"{str(p)!r} is not a readable dctqa_nr checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ck, dict) or ck.get("kind") != "dctqa_nr":
        raise CheckpointError(f"{str(p)!r} is not a dctqa_nr checkpoint")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(p)!r} has checkpoint format {ck.get('format')}, expected {CHECKPOINT_FORMAT}")
    for k in ("config", "provenance", "state_dict"):
        if k not in ck:
            raise CheckpointError(f"{str(p)!r} lacks {k!r}")
    return ck


def _fields(path: str | os.PathLike, what: str, value: Any, cls: type) -> dict:
    """``value`` (a checkpoint's ``what`` entry) as keyword arguments of dataclass ``cls``."""
    import dataclasses

    if not isinstance(value, dict):
        raise CheckpointError(f"{str(path)!r}: its {what} is a {type(value).__name__}, expected a mapping of "
                              f"{cls.__name__} fields")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise CheckpointError(f"{str(path)!r}: its {what} has unknown entries {unknown} (expected some of "
                              f"{sorted(known)}); written by another version of dctqa?")
    return value


def _checkpoint_config(path: str | os.PathLike, value: Any) -> "NRConfig":
    try:
        return NRConfig(**_fields(path, "config", value, NRConfig))
    except (InputError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r}: its config cannot be used ({exc})") from None


def _checkpoint_provenance(path: str | os.PathLike, value: Any) -> Provenance:
    try:
        prov = Provenance(**_fields(path, "provenance", value, Provenance))
    except TypeError as exc:
        raise CheckpointError(f"{str(path)!r}: its provenance is incomplete ({exc})") from None
    for name in ("target_mean", "target_std"):
        v = getattr(prov, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise CheckpointError(f"{str(path)!r}: provenance {name} is {v!r}, expected a finite number")
    if not prov.target_std > 0:
        raise CheckpointError(f"{str(path)!r}: provenance target_std is {prov.target_std!r}, expected > 0")
    if not isinstance(prov.backbone_sha256, str) or not isinstance(prov.backbone, str):
        raise CheckpointError(f"{str(path)!r}: provenance backbone and backbone_sha256 must be strings")
    if not isinstance(prov.split, dict):
        raise CheckpointError(f"{str(path)!r}: provenance split is a {type(prov.split).__name__}, expected a mapping")
    prov.target = _checkpoint_target(path, prov)
    prov.window = _checkpoint_window(path, prov)
    return prov


def _checkpoint_target(path: str | os.PathLike, prov: Provenance) -> str:
    """The stored target column, or for a checkpoint from before it was stored, the spectral
    column of its backbone (the only target ``dctqa nr-data`` made then)."""
    if prov.target not in (None, "", LEGACY_TARGET):
        if not isinstance(prov.target, str):
            raise CheckpointError(f"{str(path)!r}: provenance target is {prov.target!r}, expected a column name")
        return prov.target
    from .data import target_column

    try:
        return target_column(prov.backbone)
    except DctqaError as exc:
        raise CheckpointError(f"{str(path)!r} names no target column and none follows from its backbone "
                              f"{prov.backbone!r} ({exc}); retrain it (`dctqa train-nr`)") from None


def _checkpoint_window(path: str | os.PathLike, prov: Provenance) -> int | None:
    """The stored content window, else its split's (``None`` when neither is there: an
    untrained checkpoint, which ``dctqa eval-nr`` refuses for lack of training settings)."""
    window = prov.window if prov.window is not None else prov.split.get("window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise CheckpointError(f"{str(path)!r}: provenance window is {window!r}, expected a whole number of "
                              "source frames >= 1")
    return window


def _checkpoint_calibration(path: str | os.PathLike, value: Any) -> dict | None:
    """The stored calibration, checked (``None`` for a checkpoint that has none)."""
    problem = calibration_problem(value)
    if problem:
        raise CheckpointError(f"{str(path)!r}: {problem}; calibrate it again")
    return value


def read_provenance(path: str | os.PathLike) -> Provenance:
    """The checked :class:`Provenance` of checkpoint ``path`` (target and window filled in for
    an older checkpoint), without building the network."""
    return _checkpoint_provenance(path, read_checkpoint(path)["provenance"])


def create(model: str | os.PathLike | NRModel, **kwargs: Any) -> NRModel:
    """Factory of the registry entry ``dctqa_nr``: a path to a checkpoint or a loaded model."""
    if isinstance(model, NRModel):
        return model
    return NRModel.load(model, **kwargs)
