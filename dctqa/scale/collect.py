"""The driver's side of a run, shared by both engines: segments in, finished pairs out.

:class:`Collector` receives each pair's plan and segment results in any order (the engines
finish segments out of order), writes a pair the moment its last segment arrives, records a
failed pair once, and reports progress (pairs done, frames/s, ETA).
"""
from __future__ import annotations

import sys
import time

from ..progress import progress, resolve_mode
from .manifest import Pair
from .outputs import RunOutputs
from .worker import PairPlan, SegmentResult


class _Lines:
    """Progress of a run: a bar on a terminal, else a line every 10 % of the pairs (or 30 s)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.pairs, self.frames = total, 0, 0
        self.mode = resolve_mode(enabled, sys.stderr)
        self.bar = progress(total, "score-many", unit="pair", enabled=enabled) if self.mode == "bar" else None
        self.start = self.last = time.monotonic()
        self.next_pct = 10.0

    def pair_done(self, frames: int) -> None:
        self.pairs += 1
        self.frames += frames
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.monotonic()
        pct = 100.0 * self.pairs / max(self.total, 1)
        if self.mode == "log" and (pct + 1e-9 >= self.next_pct or now - self.last >= 30.0):
            while self.next_pct <= pct + 1e-9:
                self.next_pct += 10.0
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        eta = elapsed * (self.total - self.pairs) / self.pairs if self.pairs else float("nan")
        eta_text = f"{eta:.0f} s" if eta == eta else "?"
        print(f"score-many: {self.pairs}/{self.total} pairs, {self.frames} frames, "
              f"{self.frames / elapsed:.1f} frames/s, elapsed {elapsed:.0f} s, ETA {eta_text}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Collector:
    """Gathers results for ``pairs`` into ``outputs``; ``params``: the scorer's
    :meth:`~dctqa.scale.worker.SegmentScorer.describe`, set by the engine before results come."""

    def __init__(self, pairs: list[Pair], outputs: RunOutputs, show_progress: bool = False) -> None:
        self.pairs = {p.key: p for p in pairs}
        self.outputs = outputs
        self.params: dict = {}
        self.plans: dict[str, PairPlan] = {}
        self.results: dict[str, list[SegmentResult]] = {}
        self.failed: set[str] = set()
        self.scored: set[str] = set()
        self.lines = _Lines(len(pairs), show_progress)

    def planned(self, plan: PairPlan) -> list[tuple[int, int]]:
        """Record ``plan``; the segments to score (none when the pair failed or is empty)."""
        pair = self.pairs[plan.key]
        if plan.error is None and not plan.segments:
            plan.error = "no frame to score"
        if plan.error is not None:
            self._fail(pair, "plan", plan.error)
            return []
        self.plans[plan.key] = plan
        self.results[plan.key] = []
        return list(plan.segments)

    def wanted(self, key: str) -> bool:
        """Whether segments of pair ``key`` are still worth scoring (it has not failed)."""
        return key not in self.failed

    def scored_segment(self, res: SegmentResult) -> None:
        """Record one segment's result; writes the pair when it was the last one."""
        if res.key in self.failed or res.key in self.scored:
            return  # a late or repeated result of a pair already settled
        pair, plan = self.pairs[res.key], self.plans[res.key]
        if res.error is not None:
            self._fail(pair, "score", f"frames {res.start}+: {res.error}")
            return
        got = self.results[res.key]
        if any(r.start == res.start for r in got):
            return  # a retried segment that had already come back
        got.append(res)
        if len(got) == len(plan.segments):
            self.outputs.write_pair(pair, plan, got, self.params)
            self.scored.add(res.key)
            del self.results[res.key]
            self.lines.pair_done(sum(len(r.numbers) for r in got))

    def lost(self, key: str, message: str) -> None:
        """A work unit of pair ``key`` could not run anywhere (its workers kept dying)."""
        self._fail(self.pairs[key], "score", message)

    def _fail(self, pair: Pair, stage: str, message: str) -> None:
        if pair.key not in self.failed:
            self.failed.add(pair.key)
            self.results.pop(pair.key, None)
            self.outputs.record_error(pair, stage, message)
            self.lines.pair_done(0)
