"""The study-run seam: one :class:`StudyRun` holds everything the stages of a run share,
and every stage is a function ``stage(run) -> None`` that reads what earlier stages left
in it and adds its own result.

A pipeline is a tuple of stages; :func:`run_stages` runs them in order and gives each its
number (``run.step = "stage i/N"``), which the stage prints in its progress line
(``"<label>: stage i/N ..."``, :meth:`StudyRun.announce`). ``dctqa study`` runs
:func:`dctqa.study.pipeline.study_stages`; ``dctqa nr-data`` runs the study's encode and
score stages (:mod:`dctqa.nr.data`).
"""
from __future__ import annotations

import dataclasses
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..progress import Progress, progress, stage
from .codec import Variant
from .config import StudyConfig
from .scoring import NR_COLUMN, MetricSpec, metric_specs, score_key, spec_key
from .stages import StageCache

#: A stage: reads from and writes into the run.
Stage = Callable[["StudyRun"], None]

#: What runs the per-(video, variant) jobs of the encode, score and detect stages: a
#: ``concurrent.futures.Executor`` class (called with ``max_workers``, ``initializer``,
#: ``initargs``; it must run module-level functions of plain arguments, as a process pool does).
#: ``None`` (the default): the score stage uses a local process pool of ``cfg.jobs`` processes,
#: and encode and detect run in the driver's process. Set for one run by ``dctqa study
#: --engine ray`` (dctqa.scale); the results are the same either way.
STAGE_EXECUTOR: ContextVar = ContextVar("dctqa_study_stage_executor", default=None)


@dataclass
class StudyRun:
    """What the stages of one run share.

    cfg: the settings; cache: the stage cache, rooted at the run's one cache folder
    ``cfg.out / "cache"`` (:attr:`cache_root`; detections and file hashes live there too);
    specs / spec_keys: the dctqa configurations and their score-key parts; label: the
    progress lines' prefix (``study``, ``nr-data``); nr_model: the ``dctqa_nr`` metric or
    ``None``. Filled by the stages: variants (video stem -> its variants), refs (stem -> the
    reference each variant is scored against), hashes (stem -> that reference's sha256),
    frames (stem -> variant name -> column -> per-frame array), windows (the window table's
    rows), analysis and sensitivity (the tables), result (the :class:`StudyResult`).
    timings: part -> ``{"computed_s", "this_run_s"}`` (:meth:`add_time`). notes: the run's
    warnings (:meth:`warn`), also printed in the report.
    """

    cfg: StudyConfig
    cache: StageCache
    specs: list[MetricSpec]
    spec_keys: list[dict]
    label: str = "study"
    nr_model: Any = None
    variants: dict[str, list[Variant]] = field(default_factory=dict)
    refs: dict[str, Path] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    frames: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    analysis: Any = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    step: str = ""
    started: float = field(default_factory=time.perf_counter)
    detector_instance: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, cfg: StudyConfig, nr_model: Any = None, label: str = "study") -> StudyRun:
        """A new run of ``cfg`` (its metric configurations checked, ONNX files hashed)."""
        cache = StageCache(cfg.out / "cache")
        specs = metric_specs(cfg)
        return cls(cfg, cache, specs, [spec_key(s, cache.root, cfg.detector_weights) for s in specs],
                   label=label, nr_model=nr_model)

    @property
    def cache_root(self) -> Path:
        """The run's one cache folder (stage results, detections, memoised file hashes)."""
        return self.cache.root

    @property
    def nr_columns(self) -> list[str]:
        """``["dctqa_nr"]`` with a no-reference model, else ``[]``."""
        return [NR_COLUMN] if self.nr_model is not None else []

    def pairs(self) -> list[tuple[str, Variant]]:
        """Every (video stem, variant) of the run, videos in order."""
        return [(stem, v) for stem, vs in self.variants.items() for v in vs]

    def subset(self, stems: Iterable[str]) -> StudyRun:
        """This run restricted to the videos ``stems``; cache, frames and timings are shared
        (a stage run on the subset adds its results to this run)."""
        keep = set(stems)
        return dataclasses.replace(self, variants={s: vs for s, vs in self.variants.items() if s in keep},
                                   refs={s: r for s, r in self.refs.items() if s in keep},
                                   hashes={s: h for s, h in self.hashes.items() if s in keep})

    def score_key(self, stem: str, variant: Variant) -> dict:
        """The score stage's cache key of one variant of video ``stem``."""
        from ..fileio import file_sha256

        cfg = self.cfg
        return score_key(self.hashes[stem], file_sha256(variant.path, memo_dir=self.cache_root), self.spec_keys,
                         self.specs, cfg.baselines, cfg.metric_stride)

    def add_time(self, part: str, computed: float, this_run: float) -> None:
        """Add seconds to ``part``: ``computed`` (of the work, cached or not) and ``this_run``."""
        t = self.timings.setdefault(part, {"computed_s": 0.0, "this_run_s": 0.0})
        t["computed_s"] += computed
        t["this_run_s"] += this_run

    def detector(self) -> Any:
        """The detector of ``cfg.detector`` (made on first use)."""
        if self.detector_instance is None:
            from .detect import create_detector

            cfg = self.cfg
            self.detector_instance = (create_detector(cfg.detector, weights=cfg.detector_weights, device=cfg.device)
                                      if isinstance(cfg.detector, str) else cfg.detector)
        return self.detector_instance

    def warn(self, text: str) -> None:
        """Print ``"<label>: warning: <text>"`` on stderr (always, whatever ``cfg.progress``) and
        keep ``text`` in :attr:`notes` for the report (once per distinct text)."""
        import sys

        if text not in self.notes:
            self.notes.append(text)
            print(f"{self.label}: warning: {text}", file=sys.stderr, flush=True)

    def announce(self, text: str) -> None:
        """Print the stage line ``"<label>: <step> <text>"`` (when ``cfg.progress``)."""
        stage(f"{self.label}: {self.step + ' ' if self.step else ''}{text}", enabled=self.cfg.progress)

    def bar(self, total: int | None, what: str, unit: str) -> Progress:
        """A :func:`dctqa.progress.progress` bar named ``"<label>: <what>"`` (when ``cfg.progress``)."""
        return progress(total, f"{self.label}: {what}", unit=unit, enabled=self.cfg.progress)


def run_stages(run: StudyRun, stages: Sequence[Stage]) -> StudyRun:
    """Run ``stages`` in order on ``run``, stage ``i`` of ``N`` announcing itself as ``stage i/N``."""
    for i, st in enumerate(stages, 1):
        run.step = f"stage {i}/{len(stages)}"
        st(run)
    run.step = ""
    return run
