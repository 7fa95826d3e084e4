"""Measuring candidates with the study's own stages and cache.

A *group* is one encode of the source (one decoding pass): the grid, or one CRF of the
bisection, each uncapped and under every cap. Each group is one
:class:`~dctqa.study.run.StudyRun` over the study's stages (:func:`~dctqa.study.pipeline.encode_stage`,
:func:`~dctqa.study.pipeline.score_stage`, and with an AP bound
:func:`~dctqa.study.pipeline.detect_ap_stage`) on a :class:`~dctqa.study.config.StudyConfig`
made from the ladder's settings, all groups sharing one
:class:`~dctqa.study.stages.StageCache` (``<out>/cache``): encodes, scores, detections and AP
windows are cached under the study's keys, so a rerun, or a run in a study's folder with the
same settings, reuses them (``--engine ray`` runs their jobs as Ray tasks through the study's
:data:`~dctqa.study.run.STAGE_EXECUTOR`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backbones.spec import PIXEL
from ..study.codec import EncodeSettings, Variant
from ..study.config import StudyConfig, default_model
from ..study.run import StudyRun, run_stages
from ..study.scoring import column_name, metric_specs, spec_key
from ..study.stages import StageCache
from .config import LadderConfig


@dataclass
class Candidate:
    """One measured encoding. variant: the study's record (name, crf, cap, path, kbit/s,
    frames); frame_indices/q: the scored source frames and their Q; windows: AP windows
    (``start``, ``end``, ``n_gt``, ``ap``, ``ap50``; empty without an AP bound); frame_bits:
    the encoded size of every frame in presentation order (bits); group: ``grid`` or
    ``bisect``; dets: the detector's output per sampled frame (aligned with the source's
    detection frames; loaded only for upper confidence limits of the AP drop)."""

    variant: Variant
    frame_indices: np.ndarray
    q: np.ndarray
    frame_bits: np.ndarray
    windows: list[dict[str, Any]] = field(default_factory=list)
    group: str = "grid"
    dets: list | None = None

    @property
    def crf(self) -> int:
        return self.variant.crf

    @property
    def cap(self) -> float | None:
        return self.variant.maxrate_kbps


def study_config(cfg: LadderConfig, crfs: Sequence[int], out: Path) -> StudyConfig:
    """The :class:`StudyConfig` of one group: the CRFs ``crfs`` (each uncapped and under every
    cap of ``cfg``), the ladder's one Q configuration, no baselines, scores and detections on
    every ``frame_stride``-th frame, AP windows of :attr:`LadderConfig.ap_window` over its ``classes``."""
    encode = EncodeSettings(crfs=tuple(int(c) for c in crfs), cap_bpp=(), caps_kbps=cfg.caps_kbps or None,
                            preset=cfg.preset, threads=cfg.threads, max_frames=cfg.max_frames)
    backbone = cfg.backbone or default_model()
    return StudyConfig(videos=[cfg.video], out=out, encode=encode, backbones=[] if cfg.pixel else [backbone],
                       domains=(cfg.domain,) if not cfg.pixel else ("spectral",), pixel=cfg.pixel, baselines=(),
                       detector=cfg.detector if cfg.detector is not None else default_model(),
                       detector_weights=cfg.weights, device=cfg.device, frame_stride=cfg.frame_stride,
                       metric_stride=cfg.frame_stride, window=cfg.ap_window, gt_score_threshold=cfg.gt_score,
                       classes=cfg.classes,
                       sensitivity_gt=(), sensitivity_pred=(), jobs=cfg.jobs, batch_size=cfg.batch_size,
                       progress=cfg.progress)


def q_column(cfg: LadderConfig) -> str:
    """The study's column name of the ladder's Q configuration."""
    return column_name(PIXEL, PIXEL) if cfg.pixel else column_name(cfg.domain, cfg.backbone or default_model())


class Measurer:
    """Runs groups and keeps what they measured. cache: the one stage cache of the run
    (its ``hits``/``misses`` count every stage's reuse); timings: seconds per part
    (``encode``, ``decode``, ``metric``, ``detection``, ``ap``, ...: ``computed_s`` and
    ``this_run_s``, summed over groups); reference: the file every candidate is compared with."""

    def __init__(self, cfg: LadderConfig) -> None:
        self.cfg = cfg
        self.cache = StageCache(cfg.out / "cache")
        self.timings: dict[str, dict[str, float]] = {}
        self.notes: list[str] = []
        self.reference: Path | None = None
        self.detector: Any = None
        self.column = q_column(cfg)

    def group_dir(self, crfs: Sequence[int], group: str) -> Path:
        """The study output folder of a group: the ladder's own folder for the grid (a study
        with the same settings there shares its encodes), ``bisect/crfNN`` for a bisection CRF."""
        return self.cfg.out if group == "grid" else self.cfg.out / "bisect" / f"crf{int(crfs[0])}"

    def run_group(self, crfs: Sequence[int], group: str, label: str) -> list[Candidate]:
        """Encode, score (and detect + AP) the CRFs ``crfs``; their candidates."""
        from ..study.pipeline import detect_ap_stage, encode_stage, score_stage

        scfg = study_config(self.cfg, crfs, self.group_dir(crfs, group))
        specs = metric_specs(scfg)
        run = StudyRun(scfg, self.cache, specs, [spec_key(s, self.cache.root, scfg.detector_weights) for s in specs],
                       label=label)
        run.detector_instance = self.detector
        stages = (encode_stage, score_stage) + ((detect_ap_stage,) if self.cfg.measures_ap else ())
        run_stages(run, stages)
        self.detector = run.detector_instance
        for part, t in run.timings.items():
            self._add_time(part, t["computed_s"], t["this_run_s"])
        for note in run.notes:
            if note not in self.notes:
                self.notes.append(note)
        stem = scfg.videos[0].stem
        self.reference = run.refs[stem]
        out = []
        for v in run.variants[stem]:
            arrs = run.frames[stem][v.name]
            windows = [{k: r[k] for k in ("window_start", "window_end", "n_gt", "ap", "ap50")}
                       for r in run.windows if r["variant"] == v.name]
            out.append(Candidate(v, np.asarray(arrs["frame_indices"]), np.asarray(arrs[self.column], np.float64),
                                 frame_bits(v.path), windows, group, self._detections(v.path)))
        return out

    def _detections(self, path: Path) -> list | None:
        """The detections of an encode from the detection cache (the detect stage stored them),
        when upper limits of the AP drop need them; else ``None``."""
        if not (self.cfg.measures_ap and self.cfg.bootstraps):
            return None
        from ..study.detect.cache import cached_detect

        return cached_detect(self.detector, path, self.cfg.frame_stride, cache_dir=self.cache.root)[1]

    def _add_time(self, part: str, computed: float, this_run: float) -> None:
        t = self.timings.setdefault(part, {"computed_s": 0.0, "this_run_s": 0.0})
        t["computed_s"] += float(computed)
        t["this_run_s"] += float(this_run)

    def reference_windows(self, limits: Any = None) -> list[dict[str, Any]]:
        """AP of the reference's own detections against its pseudo ground truth, per window
        (what a candidate's AP is compared with: the drop is this minus the candidate's). Its
        detections come from the detection cache (the detect stage stored them). ``limits``
        (an :class:`~dctqa.ladder.confidence.UpperLimits`): receives the pseudo ground truth,
        the detections, their frames and the image size."""
        import time

        from ..io import probe
        from ..study.detect.ap import window_ap
        from ..study.detect.cache import cached_detect
        from ..study.detect.groundtruth import pseudo_ground_truth

        cfg, t0 = self.cfg, time.perf_counter()
        fi, dets = cached_detect(self.detector, self.reference, cfg.frame_stride, cache_dir=self.cache.root)
        info = probe(self.reference)
        gt = pseudo_ground_truth(dets, cfg.gt_score, categories=cfg.classes)
        wins = window_ap(gt, dets, fi, window=cfg.ap_window, image_size=(info.height, info.width),
                         categories=cfg.classes)
        if limits is not None:
            limits.gt, limits.ref_dets, limits.det_frames = gt, dets, np.asarray(fi)
            limits.image_size = (info.height, info.width)
        self._add_time("ap", time.perf_counter() - t0, time.perf_counter() - t0)
        return [{"window_start": w.start, "window_end": w.end, "n_gt": w.n_gt, "ap": w.ap, "ap50": w.ap50}
                for w in wins]


def frame_bits(path: str | os.PathLike) -> np.ndarray:
    """Encoded bits of every frame of the first video stream of ``path``, in presentation
    order (packets sorted by timestamp: the study's variants are checked gap-free). (F,) int64."""
    import av

    sizes = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for packet in c.demux(s):
            if packet.size and packet.pts is not None:
                sizes.append((packet.pts, packet.size * 8))
    sizes.sort()
    return np.array([b for _, b in sizes], dtype=np.int64)
