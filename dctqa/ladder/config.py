"""What defines a ladder run: :class:`LadderConfig`, checked when it is made (before any work)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backbones.spec import PIXEL
from ..constants import DOMAINS
from ..errors import InputError
from ..values import is_int, is_real
from .search import POOLS

#: The default CRF grid: the study's CRFs (23, 29, 35, 41, 47) plus both ends of x264's useful
#: range, 18 (near transparent) and 51 (its largest CRF).
DEFAULT_GRID: tuple[int, ...] = (18, 23, 29, 35, 41, 47, 51)
#: ``--ap-metric``: COCO AP averaged over IoU 0.50:0.95 (``ap``), or AP at IoU 0.5 (``ap50``).
AP_METRICS = ("ap", "ap50")


@dataclass
class LadderConfig:
    """One ladder run.

    video: the source; out: the output folder (``ladder.json``, ``ladder.png``, and the
    resumable work: ``variants/``, ``bisect/``, ``cache/``, the study's layout). Exactly one bound:
    max_q (the pooled Q must be <= max_q; Q = 1 identical, higher = worse for detection, > 0)
    or max_ap_drop (pooled AP drop, in [0, 1] absolute AP, of ``ap_metric`` against pseudo
    ground truth from the source, per window of ``window`` source frames; the drop is the
    source's own AP minus the candidate's; windows with fewer than ``min_gt`` pseudo ground-truth
    boxes do not count, as in the study). crfs: the grid (0..51); caps_kbps: VBV caps (kbit/s)
    each measured CRF is also encoded under. backbone/domain: the Q configuration (``None``:
    YOLOX-Nano of the shared folder; ``pixel``: the identity filters; domain ``pixel`` takes no
    backbone). pool: of
    :data:`~dctqa.ladder.search.POOLS`, over frames (Q) and windows (AP drop). frame_stride:
    score and detect every n-th frame; max_frames: the first frames only (a lossless copy is
    the reference, as in the study). segment_frames: a recommendation per segment of that many
    source frames (its AP window is the segment). detector: a name or a Detector instance
    (``None``: YOLOX-Nano). preset/threads: x264's. jobs: score workers. confidence: in
    [0, 1); above 0 a candidate meets the bound only when the one-sided ``confidence`` upper
    limit of its pooled statistic does too (:mod:`dctqa.ladder.confidence`: a paired cluster
    bootstrap over AP windows and time blocks of ``block_frames`` source frames, ``replicates``
    draws from ``seed``); 0: the point estimate alone. classes: COCO category ids (or names)
    the pseudo ground truth and AP count (``None``: every class; a camera's classes of interest).
    """

    video: Path
    out: Path
    max_q: float | None = None
    max_ap_drop: float | None = None
    ap_metric: str = "ap"
    crfs: tuple[int, ...] = DEFAULT_GRID
    caps_kbps: tuple[float, ...] = ()
    backbone: str | None = None
    domain: str = "spectral"
    pool: str = "mean"
    frame_stride: int = 1
    max_frames: int | None = None
    segment_frames: int | None = None
    window: int = 100
    detector: Any = None
    weights: str | None = None
    device: str = "cpu"
    gt_score: float = 0.5
    min_gt: int = 10
    classes: tuple[int, ...] | None = None
    preset: str = "medium"
    threads: int = 0
    batch_size: int = 8
    jobs: int = 1
    progress: bool = False
    command: str = ""
    confidence: float = 0.9
    block_frames: int = 20
    replicates: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        self.video, self.out = Path(self.video), Path(self.out)
        if (self.max_q is None) == (self.max_ap_drop is None):
            raise InputError("give exactly one bound: max_q (--max-q) or max_ap_drop (--max-ap-drop)")
        if self.max_q is not None and not (is_real(self.max_q) and math.isfinite(self.max_q) and self.max_q > 0):
            raise InputError(f"max_q must be a finite number > 0 (Q = 1 for identical frames, higher is worse), "
                             f"got {self.max_q!r}")
        if self.max_ap_drop is not None and not (is_real(self.max_ap_drop) and 0 <= self.max_ap_drop <= 1):
            raise InputError(f"max_ap_drop must be a number in [0, 1] (absolute AP), got {self.max_ap_drop!r}")
        if self.ap_metric not in AP_METRICS:
            raise InputError(f"ap_metric must be one of {AP_METRICS}, got {self.ap_metric!r}")
        if self.pool not in POOLS:
            raise InputError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.domain not in DOMAINS:
            raise InputError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.domain == PIXEL and self.backbone not in (None, PIXEL):
            raise InputError(f"the pixel domain compares pixels and takes no backbone; drop --backbone "
                             f"{self.backbone!r} or choose --domain spectral|feature")
        if not self.crfs or len(set(self.crfs)) != len(self.crfs):
            raise InputError(f"the CRF grid needs distinct values, got {self.crfs!r}")
        self.crfs = tuple(sorted(self.crfs))
        self.caps_kbps = tuple(self.caps_kbps)
        for name in ("frame_stride", "window", "batch_size", "jobs"):
            val = getattr(self, name)
            if not (is_int(val) and val >= 1):
                raise InputError(f"{name} must be an integer >= 1, got {val!r}")
        for name in ("max_frames", "segment_frames"):
            val = getattr(self, name)
            if val is not None and not (is_int(val) and val >= 1):
                raise InputError(f"{name} must be an integer >= 1, got {val!r}")
        if not (is_int(self.min_gt) and self.min_gt >= 1):
            raise InputError(f"min_gt must be an integer >= 1, got {self.min_gt!r}")
        if self.classes is not None:
            from ..study.detect.categories import class_ids

            if self.max_ap_drop is None:
                raise InputError("classes (--classes) restrict the AP of --max-ap-drop; a --max-q bound runs no "
                                 "detector")
            self.classes = class_ids(self.classes)
        if not (is_real(self.gt_score) and 0 <= self.gt_score <= 1):
            raise InputError(f"gt_score must be in [0, 1], got {self.gt_score!r}")
        if not (is_real(self.confidence) and 0 <= self.confidence < 1):
            raise InputError(f"confidence must be a number in [0, 1) (0: the point estimate alone; e.g. 0.9: the "
                             f"one-sided 90 % upper limit must meet the bound), got {self.confidence!r}")
        for name, low in (("block_frames", 1), ("replicates", 20), ("seed", 0)):
            val = getattr(self, name)
            if not (is_int(val) and val >= low):
                raise InputError(f"{name} must be an integer >= {low}, got {val!r}")

    @property
    def pixel(self) -> bool:
        """Whether Q is the pixel-domain ablation (no backbone; ``--backbone pixel`` with the
        spectral or feature domain is the identity filter bank there, as in ``dctqa score``)."""
        return self.domain == PIXEL

    @property
    def measures_ap(self) -> bool:
        """Whether the detector runs (``max_ap_drop`` given)."""
        return self.max_ap_drop is not None

    @property
    def bound(self) -> float:
        """The bound's value (``max_q`` or ``max_ap_drop``)."""
        return float(self.max_q if self.max_q is not None else self.max_ap_drop)

    @property
    def statistic(self) -> str:
        """The candidate field the bound applies to: ``q`` or ``ap_drop``."""
        return "q" if self.max_q is not None else "ap_drop"

    @property
    def bootstraps(self) -> bool:
        """Whether the choice uses upper confidence limits (``confidence > 0``)."""
        return self.confidence > 0

    @property
    def ap_window(self) -> int:
        """The AP window in source frames: the segment in segment mode, else ``window``."""
        return self.segment_frames if self.segment_frames is not None else self.window
