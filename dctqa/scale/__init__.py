"""Scale-out (a wing): score whole archives of video pairs, in frame segments, on Ray or locally.

``dctqa score-many MANIFEST --out DIR`` / :func:`score_many`. The core never imports this
package; Ray itself is imported only by the Ray engine (``pip install dctqa[ray]``).
docs/scaling.md describes it.
"""
from __future__ import annotations

from .manifest import Pair, read_manifest
from .run import ENGINES, ManyResult, score_many

__all__ = ["ENGINES", "ManyResult", "Pair", "read_manifest", "score_many"]
