"""The H.264 / object-detection study: ``dctqa encode`` and ``dctqa study``.

:func:`run_study` runs (or resumes) encode -> score -> detect -> AP -> tables -> report;
see :mod:`dctqa.study.pipeline`.
"""
from __future__ import annotations

from .pipeline import StudyConfig, StudyResult, default_model, metric_specs, run_study, score_pair

__all__ = ["StudyConfig", "StudyResult", "run_study", "default_model", "metric_specs", "score_pair"]
