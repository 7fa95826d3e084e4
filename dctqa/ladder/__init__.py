"""The ladder wing: ``dctqa ladder``, the cheapest H.264 setting whose detection quality stays
within a bound (docs/ladder.md). It sits above the study (whose encoder, stages, cache,
detectors and AP it runs) and the scale-out wing (whose Ray executor ``--engine ray`` uses)."""
from .config import DEFAULT_GRID, LadderConfig
from .run import LadderResult, run_ladder
from .search import POOLS, bisect_next, choose, inversions, pool, search

__all__ = ["DEFAULT_GRID", "LadderConfig", "LadderResult", "POOLS", "bisect_next", "choose", "inversions", "pool",
           "run_ladder", "search"]
