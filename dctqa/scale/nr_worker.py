"""No reference at scale (``score-many --no-reference GLOB --model M``): the work of one video.

A work unit is a whole video: ``dctqa.nr.predict.predict_video`` seeds each frame's patch
draws from the first frame of its batch, so a cut at any other frame would change the draws;
one unit per video keeps every value identical to ``dctqa predict``. An actor holds one
loaded model (:class:`NRScorer`), as the full-reference actors hold one Metric.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DctqaError, InputError
from .worker import PairPlan, SegmentResult, _message, input_stamp

SAMPLINGS = ("activation", "uniform", "grid")


@dataclass(frozen=True)
class NROptions:
    """model: an ``NRModel`` checkpoint (``dctqa train-nr``); the rest as ``dctqa predict`` takes
    them. threads: CPU threads per scorer (``None``: torch's default)."""

    model: str
    device: str = "cpu"
    patches: int = 2
    sampling: str = "activation"
    seed: int = 0
    frame_stride: int = 1
    max_frames: int | None = None
    threads: int | None = None
    per_filter: bool = False  # no per-filter values: always False (the outputs read it)

    def check(self) -> "NROptions":
        """Raise :class:`~dctqa.errors.InputError` for a bad option; returns self."""
        if not self.model or not os.path.isfile(self.model):
            raise InputError(f"--model {self.model!r}: no such checkpoint file (make one with dctqa train-nr)")
        if self.sampling not in SAMPLINGS:
            raise InputError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        for name in ("patches", "frame_stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a whole number >= 1, got {v!r}")
        return self

    def numbers_key(self) -> dict:
        """The options that change the values, with the checkpoint's size and mtime."""
        d = asdict(self)
        for k in ("device", "threads", "per_filter"):
            d.pop(k)
        return {**d, "model_file": input_stamp(self.model)}

    def make(self) -> "NRScorer":
        return NRScorer(self)


class NRScorer:
    """One loaded no-reference model; plans and predicts whole videos."""

    column = "dctqa_nr"

    def __init__(self, options: NROptions) -> None:
        from ..nr.model import NRModel

        if options.threads is not None:
            import torch

            torch.set_num_threads(options.threads)
        self.options = options
        self.model = NRModel.load(options.model, device=options.device)

    def describe(self) -> dict:
        p = self.model.prov
        return {"metric": "dctqa_nr", "model": self.options.model, "model_metric_version": p.metric_version,
                "backbone": p.backbone, "backbone_sha256": p.backbone_sha256, "implementation": "nr-model",
                "metric_version": p.metric_version, **self.options.numbers_key()}

    def plan(self, key: str, ref: str, dist: str) -> PairPlan:
        """One unit: the whole video (after its checks)."""
        from ..io import probe

        try:
            info = probe(dist)
            self.model.check_options(patches=self.options.patches, sampling=self.options.sampling,
                                     height=info.height, width=info.width)
            return PairPlan(key, [(0, info.frames or 1)])
        except (DctqaError, OSError) as exc:
            return PairPlan(key, error=_message(exc))

    def score(self, key: str, ref: str, dist: str, ref_index, dist_index, start: int, stop: int) -> SegmentResult:
        """``dctqa predict``'s values for the video ``dist`` (``ref`` is empty)."""
        from ..nr.predict import predict_video

        o = self.options
        try:
            pred = predict_video(self.model, dist, patches=o.patches, sampling=o.sampling, seed=o.seed,
                                 frame_stride=o.frame_stride, max_frames=o.max_frames)
            return SegmentResult(key, 0, pred.frame_numbers, np.asarray(pred.q, dtype=np.float64)[:, None])
        except (DctqaError, OSError) as exc:
            return SegmentResult(key, 0, error=_message(exc))
