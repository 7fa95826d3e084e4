"""Upper confidence limits for the ladder's choice (``--confidence``).

A candidate's pooled statistic is measured on a sample: a few hundred frames, and for the AP
drop the few objects in them (COCO AP averages over categories, so one missed box of a class
seen once in a window halves that window's AP). With ``confidence`` c in (0, 1) a candidate
meets the bound only when the one-sided c upper limit of its pooled statistic is within the
bound too. The limit is a paired, clustered percentile bootstrap over the segment:

* clusters: time blocks of ``block_frames`` source frames (adjacent frames show the same
  objects under the same encoder state) and, for the AP drop, the AP windows that count in
  the segment (content changes between them);
* a replicate draws the windows with replacement (when there are two or more), then, within
  each drawn window, as many of its blocks as it has, with replacement; the AP of the source
  and of the candidate are taken on the same drawn frames against the same pseudo ground
  truth (paired: a replicate repeats no detector run), and the drop is pooled over the drawn
  windows as the point estimate is; for Q, the segment's blocks are drawn and Q pooled over
  their frames;
* the draws depend only on the segment and ``seed``, so every candidate of a segment is
  judged on the same replicates and ``ladder.json`` is reproducible.

What it covers: how much the statistic would move with other frames and objects of the same
kind (window-to-window content when there are several windows). What it cannot cover: objects
or scenes that the measured frames never show. A bootstrap cannot create an error it never
saw (a candidate that misses nothing gets an upper limit equal to its point estimate).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .config import LadderConfig
from .measure import Candidate
from .search import pool


def time_blocks(frame_indices: np.ndarray, start: int, end: int, block_frames: int) -> list[np.ndarray]:
    """Positions into ``frame_indices`` of its frames in ``[start, end)``, grouped by time block
    ``(frame - start) // block_frames``; the non-empty blocks, in time order."""
    fi = np.asarray(frame_indices)
    pos = np.flatnonzero((fi >= start) & (fi < end))
    if pos.size == 0:
        return []
    keys = (fi[pos] - start) // block_frames
    return [pos[keys == k] for k in np.unique(keys)]


def draw(groups: Sequence[Sequence[np.ndarray]], replicates: int, rng: np.random.Generator
         ) -> list[list[np.ndarray]]:
    """Two-stage cluster bootstrap draws. groups: per window, its blocks (arrays of positions).
    Per replicate: one array of drawn positions per drawn window (windows drawn with replacement
    when there are two or more; then each drawn window's blocks, as many as it has, with
    replacement). Empty when no group has a block."""
    groups = [g for g in groups if len(g)]
    if not groups:
        return []
    out = []
    for _ in range(replicates):
        picked = rng.integers(0, len(groups), len(groups)) if len(groups) > 1 else np.zeros(1, np.int64)
        rep = []
        for g in picked:
            blocks = groups[int(g)]
            rep.append(np.concatenate([blocks[int(b)] for b in rng.integers(0, len(blocks), len(blocks))]))
        out.append(rep)
    return out


def upper_quantile(values: Sequence[float], level: float) -> float | None:
    """The ``level`` quantile of the finite replicate values (NumPy's linear interpolation);
    ``None`` when there is none."""
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.quantile(a, level)) if a.size else None


@dataclass
class UpperLimits:
    """The upper limits of one ladder run (memoised per candidate and segment).

    gt / ref_dets / det_frames: the pseudo ground truth and the source's detections on the
    sampled frames ``det_frames`` (AP bound only; ``None`` otherwise); image_size: (H, W) of
    the source. seconds: time spent in replicates so far."""

    cfg: LadderConfig
    gt: list | None = None
    ref_dets: list | None = None
    det_frames: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    seconds: float = 0.0
    _memo: dict = field(default_factory=dict, repr=False)
    _ref_ap: dict = field(default_factory=dict, repr=False)

    def _rng(self, seg: tuple[int, int], what: str) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, int(seg[0]), int(seg[1]), 0 if what == "q" else 1])

    def q(self, c: Candidate, seg: tuple[int, int]) -> float | None:
        """The upper limit of ``c``'s pooled Q on ``seg`` (blocks of the segment drawn)."""
        key = ("q", c.variant.name, seg)
        if key not in self._memo:
            t0 = time.perf_counter()
            blocks = time_blocks(c.frame_indices, seg[0], seg[1], self.cfg.block_frames)
            reps = draw([blocks], self.cfg.replicates, self._rng(seg, "q"))
            self._memo[key] = upper_quantile([pool(c.q[r[0]], self.cfg.pool) for r in reps], self.cfg.confidence)
            self.seconds += time.perf_counter() - t0
        return self._memo[key]

    def ap_drop(self, c: Candidate, windows: Sequence[dict[str, Any]], seg: tuple[int, int]) -> float | None:
        """The upper limit of ``c``'s pooled AP drop on ``seg`` over the counted ``windows``
        (their ``window_start``/``window_end``; the point estimate's windows)."""
        key = ("ap", c.variant.name, seg, tuple(w["window_start"] for w in windows))
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = self._ap_drop(c, windows, seg)
            self.seconds += time.perf_counter() - t0
        return self._memo[key]

    def _ap_drop(self, c: Candidate, windows: Sequence[dict[str, Any]], seg: tuple[int, int]) -> float | None:
        if c.dets is None or self.gt is None or not windows:
            return None
        groups = [time_blocks(self.det_frames, w["window_start"], w["window_end"], self.cfg.block_frames)
                  for w in windows]
        values = []
        for rep in draw(groups, self.cfg.replicates, self._rng(seg, "ap")):
            drops = []
            for pos in rep:
                ref, cand = self._ap(pos, self.ref_dets, memo=True), self._ap(pos, c.dets)
                if ref is not None and cand is not None:
                    drops.append(ref - cand)
            values.append(pool(drops, self.cfg.pool))
        return upper_quantile(values, self.cfg.confidence)

    def _ap(self, pos: np.ndarray, dets: list, memo: bool = False) -> float | None:
        """AP (``cfg.ap_metric``) of ``dets`` on the drawn frames ``pos`` against the pseudo
        ground truth; the source's own AP is memoised per draw (shared by every candidate)."""
        from ..study.detect.ap import frames_ap

        key = pos.tobytes()
        if memo and key in self._ref_ap:
            return self._ref_ap[key]
        ap50, ap = frames_ap([self.gt[i] for i in pos], [dets[i] for i in pos], self.image_size,
                             categories=self.cfg.classes)
        val = ap if self.cfg.ap_metric == "ap" else ap50
        if memo:
            self._ref_ap[key] = val
        return val
