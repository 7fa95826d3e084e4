"""What defines a study run: :class:`StudyConfig` (videos, output folder, encode settings,
metrics, detector, thresholds, statistics) and its defaults; checked when it is made."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backbones.spec import onnx_spec
from ..errors import InputError, VideoError
from ..settings import shared_dir
from .codec import EncodeSettings

#: CRF subsets of the paper's Table 2 (high compression), besides "all windows".
DEFAULT_SUBSETS: tuple[tuple[int, ...], ...] = ((35, 41, 47), (41, 47))
#: Threshold grids of the sensitivity table: ground-truth score and prediction score
#: (0 = every detection the detector returned; YOLOX keeps >= 0.05).
DEFAULT_SENSITIVITY_GT: tuple[float, ...] = (0.3, 0.5, 0.7)
DEFAULT_SENSITIVITY_PRED: tuple[float, ...] = (0.0, 0.25, 0.5)


def default_model() -> str:
    """``onnx:<shared>/models/yolox_nano.onnx``, the default backbone and detector."""
    return onnx_spec(shared_dir() / "models" / "yolox_nano.onnx")


@dataclass
class StudyConfig:
    """Everything that defines a study run.

    backbones: names for :class:`dctqa.Metric` (``onnx:PATH``, torchvision names), each
    scored in every domain of ``domains``; ``pixel`` adds the pixel-domain ablation.
    detector: name for :func:`dctqa.study.detect.create_detector`. frame_stride: detect on every
    n-th source frame; metric_stride: score every n-th frame (a multiple of frame_stride;
    ``None`` = frame_stride). window: AP window in source frames. device: torch/onnx device.
    jobs: worker processes for the score stage (1 = in this process).
    gt_score_threshold / pred_score_threshold: reference detections scoring at least the
    first are the pseudo ground truth; detections on a variant scoring below the second are
    dropped before AP (applied to cached detections, so changing it never reruns the
    detector). min_gt, keep_duplicates, dup_tolerance, resampling: see
    :class:`dctqa.study.analysis.AnalysisSettings`. sensitivity_gt x sensitivity_pred: the
    threshold grid of the sensitivity table (empty: no table). classes: COCO category ids the
    pseudo ground truth and AP are restricted to (``None``: every class; a camera's classes of
    interest, e.g. cars only, so that a rare class seen once in a window does not halve its AP).
    nr_model: a ``dctqa train-nr`` checkpoint: adds the no-reference column ``dctqa_nr``
    (:mod:`dctqa.study.noref`), predicted from ``nr_patches`` patches per frame placed by
    ``nr_sampling`` (``activation``, ``uniform`` or ``grid``); ``None``: no such column.
    """

    videos: list[Path]
    out: Path
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    backbones: list[str] = field(default_factory=lambda: [default_model()])
    domains: tuple[str, ...] = ("spectral", "feature")
    pixel: bool = True
    baselines: tuple[str, ...] = ("psnr", "ssim", "blockiness", "blur", "noise", "contrast")
    detector: Any = field(default_factory=default_model)  # a name, or a dctqa.study.detect.Detector instance
    detector_weights: str | None = None
    device: str = "cpu"
    frame_stride: int = 2
    metric_stride: int | None = None
    window: int = 100
    gt_score_threshold: float = 0.5
    pred_score_threshold: float = 0.0
    classes: tuple[int, ...] | None = None
    min_gt: int = 10
    keep_duplicates: bool = False
    dup_tolerance: float = 0.05
    resampling: str = "content"
    sensitivity_gt: tuple[float, ...] = DEFAULT_SENSITIVITY_GT
    sensitivity_pred: tuple[float, ...] = DEFAULT_SENSITIVITY_PRED
    subsets: tuple[tuple[int, ...], ...] = DEFAULT_SUBSETS
    n_boot: int = 1000
    seed: int = 0
    jobs: int = 1
    batch_size: int = 8
    progress: bool = False
    command: str = ""
    nr_model: Path | None = None
    nr_patches: int = 2
    nr_sampling: str = "activation"

    def __post_init__(self) -> None:
        self.videos = [Path(v) for v in self.videos]
        self.out = Path(self.out)
        if not self.videos:
            raise InputError("the study needs at least one video")
        for v in self.videos:
            if not v.is_file():
                raise VideoError(f"video {str(v)!r} does not exist")
        stems = [v.stem for v in self.videos]
        if len(set(stems)) != len(stems):
            raise InputError(f"two videos share a file name stem ({stems}); rename one")
        for name, val in (("frame_stride", self.frame_stride), ("window", self.window), ("jobs", self.jobs),
                          ("batch_size", self.batch_size)):
            if int(val) != val or val < 1:
                raise InputError(f"{name} must be a positive integer, got {val!r}")
        if self.metric_stride is None:
            self.metric_stride = self.frame_stride
        if self.nr_model is not None:  # checked (with nr_patches, nr_sampling) by run_study, before any work
            self.nr_model = Path(self.nr_model)
        if self.metric_stride < 1 or self.metric_stride % self.frame_stride:
            raise InputError(f"metric_stride ({self.metric_stride}) must be a positive multiple of "
                             f"frame_stride ({self.frame_stride})")
        for name, vals in (("gt_score_threshold", [self.gt_score_threshold]),
                           ("pred_score_threshold", [self.pred_score_threshold]),
                           ("sensitivity_gt", self.sensitivity_gt), ("sensitivity_pred", self.sensitivity_pred)):
            for val in vals:
                if not 0.0 <= val <= 1.0:
                    raise InputError(f"{name} must be in [0, 1], got {val}")
        if self.classes is not None:
            from .detect.categories import class_ids

            self.classes = class_ids(self.classes)
        from .analysis import AnalysisSettings

        AnalysisSettings(metrics=[], resampling=self.resampling, min_gt=self.min_gt, n_boot=self.n_boot,
                         dup_tolerance=self.dup_tolerance)  # validates those settings
        from ..baselines import get_baseline
        from ..constants import DOMAINS

        for b in self.baselines:
            get_baseline(b)
        for d in self.domains:
            if d not in DOMAINS or d == "pixel":
                raise InputError(f"domain {d!r}: expected 'spectral' or 'feature' (pixel is its own switch)")
        if not self.backbones and not self.pixel and not self.baselines:
            raise InputError("nothing to score: give a backbone, keep the pixel domain or a baseline")
