"""The H.264 / object-detection study: ``dctqa encode`` and ``dctqa study``.

:func:`run_study` runs (or resumes) encode -> score -> detect -> AP -> tables -> report;
see :mod:`dctqa.study.pipeline`. The stages share one :class:`~dctqa.study.run.StudyRun`
(:mod:`dctqa.study.run`); the scoring pieces (column names, metric specs, score keys,
:func:`score_pair`) are in :mod:`dctqa.study.scoring`.
"""
from __future__ import annotations

from .config import StudyConfig, default_model
from .pipeline import StudyResult, run_study
from .run import StudyRun
from .scoring import metric_specs, score_pair

__all__ = ["StudyConfig", "StudyResult", "StudyRun", "run_study", "default_model", "metric_specs", "score_pair"]
