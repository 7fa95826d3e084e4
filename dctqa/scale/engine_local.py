"""The in-process engine (``--engine local``): one :class:`SegmentScorer` in the driver, pairs
in manifest order, segments in order. For debugging, and the baseline the Ray engine is
measured against."""
from __future__ import annotations

from .collect import Collector
from .manifest import Pair
from .worker import ScoreOptions


def run_local(pairs: list[Pair], options: ScoreOptions, collector: Collector) -> None:
    """Score every segment of ``pairs`` here, handing results to ``collector`` (``options.threads``
    sets torch's threads for the run only)."""
    import torch

    threads = torch.get_num_threads()
    try:
        scorer = options.make()
        collector.params = scorer.describe()
        for pair in pairs:
            plan = scorer.plan(pair.key, pair.ref_path, pair.dist_path)
            for start, stop in collector.planned(plan):
                if not collector.wanted(pair.key):
                    break
                collector.scored_segment(scorer.score(pair.key, pair.ref_path, pair.dist_path, plan.ref_index,
                                                      plan.dist_index, start, stop))
    finally:
        torch.set_num_threads(threads)
