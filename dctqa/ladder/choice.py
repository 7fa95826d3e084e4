"""How a candidate does on a stretch of source frames, and the choice among candidates:
:func:`evaluate` (bitrate, pooled Q, AP and AP drop, their upper confidence limits, within
the bound or not) and :func:`choice` (the cheapest candidate within the bound, or why there
is none). ``limits`` (an :class:`~dctqa.ladder.confidence.UpperLimits`, or ``None`` for the
point estimate alone) is what ``--confidence`` adds."""
from __future__ import annotations

from typing import Any

import numpy as np

from .config import LadderConfig
from .measure import Candidate
from .search import choose, inversions, pool


def uncapped_passes(cfg: LadderConfig, cands: list[Candidate], ref_windows: list[dict],
                    seg: tuple[int, int], limits: Any = None) -> dict[int, bool | None]:
    """Uncapped CRF -> whether it meets the bound on segment ``seg`` (``None``: undecidable)."""
    return {c.crf: evaluate(cfg, c, ref_windows, seg, limits)["meets_bound"] for c in cands if c.cap is None}


def evaluate(cfg: LadderConfig, c: Candidate, ref_windows: list[dict], seg: tuple[int, int],
             limits: Any = None) -> dict[str, Any]:
    """A candidate on source frames ``seg = [start, end)``: its bitrate there (kbit/s, from the
    frames' encoded sizes, scaled to the study's whole-file figure), the pooled Q of its scored
    frames, with an AP bound the mean AP and the pooled AP drop of its windows starting in the
    segment that have ground truth, and whether the bounded statistic is within the bound.
    With ``limits`` the row also holds ``<statistic>_upper``, the statistic's upper confidence
    limit, and the candidate meets the bound only when both are within it."""
    start, end = seg
    sel = (c.frame_indices >= start) & (c.frame_indices < end)
    bits = c.frame_bits
    kbps = (c.variant.bitrate_kbps * float(bits[start:end].sum()) / max(float(bits.sum()), 1.0)
            * len(bits) / max(end - start, 1))
    row: dict[str, Any] = {"start": start, "end": end, "kbps": kbps, "q": pool(c.q[sel], cfg.pool),
                           "scored_frames": int(sel.sum())}
    used: list = []
    if cfg.measures_ap:
        stats, used = _ap_stats(cfg, c, ref_windows, seg)
        row.update(stats)
    stat = row[cfg.statistic]
    row["meets_bound"] = None if stat is None else bool(stat <= cfg.bound)
    if limits is not None:
        upper = (limits.q(c, seg) if cfg.statistic == "q" else
                 limits.ap_drop(c, [w for w, _ in used], seg) if stat is not None else None)
        row[cfg.statistic + "_upper"] = upper
        if stat is not None:
            row["meets_bound"] = bool(stat <= cfg.bound and upper is not None and upper <= cfg.bound)
    return row


def _ap_stats(cfg: LadderConfig, c: Candidate, ref_windows: list[dict], seg: tuple[int, int]
              ) -> tuple[dict[str, Any], list]:
    """Mean AP and pooled AP drop of ``c``'s windows starting in ``seg`` that hold at least
    ``cfg.min_gt`` ground-truth boxes (the study's rule: fewer make AP a coin toss).
    As in the study, a window cut short (the video ends inside it) is left out, unless the
    segment has no full window; then its cut-short window counts (``cut_short``: true).
    Returns (the statistics, the counted (window, reference window) pairs)."""
    ref = {w["window_start"]: w for w in ref_windows}
    key, n = cfg.ap_metric, c.variant.frames
    wins = [(w, ref.get(w["window_start"])) for w in c.windows if seg[0] <= w["window_start"] < seg[1]]
    wins = [(w, r) for w, r in wins if w["n_gt"] >= cfg.min_gt and w[key] is not None and r and r[key] is not None]
    full = [(w, r) for w, r in wins if w["window_end"] <= n]
    used = full or wins
    drops = [r[key] - w[key] for w, r in used]
    return {"ap": float(np.mean([w[key] for w, _ in used])) if used else None, "ap_drop": pool(drops, cfg.pool),
            "windows": len(used), "cut_short": bool(used) and not full}, used


def choice(cfg: LadderConfig, cands: list[Candidate], ref_windows: list[dict], seg: tuple[int, int],
           limits: Any = None) -> tuple[dict[str, Any] | None, str | None, list[tuple[int, int]]]:
    """(the recommended candidate on ``seg`` as a row, or ``None``; the reason when ``None``;
    the inversions of its uncapped curve)."""
    rows = [dict(evaluate(cfg, c, ref_windows, seg, limits), crf=c.crf, cap_kbps=c.cap, name=c.variant.name,
                 path=str(c.variant.path)) for c in cands]
    inv = inversions(uncapped_passes(cfg, cands, ref_windows, seg, limits))
    best = choose([r for r in rows if r["meets_bound"]], cfg.statistic, cfg.bound)
    if best is not None:
        return best, None, inv
    stats = [r for r in rows if r[cfg.statistic] is not None]
    if not stats:
        return None, ("undecidable: no AP window of frames %d-%d holds %d or more pseudo ground-truth boxes "
                      "(detections on the source scoring >= the ground-truth threshold; --min-gt), so its AP drop "
                      "cannot be measured" % (seg[0], seg[1] - 1, cfg.min_gt)
                      if cfg.measures_ap else "undecidable: no scored frame"), inv
    low = min(stats, key=lambda r: r[cfg.statistic])
    if limits is not None and low[cfg.statistic] <= cfg.bound:
        up = cfg.statistic + "_upper"
        lows = [r for r in stats if r.get(up) is not None]
        best_up = min(lows, key=lambda r: r[up]) if lows else None
        return None, (f"no candidate meets the bound at confidence {cfg.confidence:g}: {low['name']}'s {cfg.pool} "
                      f"{_stat_name(cfg)} {low[cfg.statistic]:.4g} is within {cfg.bound:g}, but the lowest upper "
                      f"limit measured is " + (f"{best_up[up]:.4g} ({best_up['name']})" if best_up else "undefined")
                      + "; give lower CRFs (--crf), more frames (--frame-stride), a looser bound or --confidence 0"
                      ), inv
    return None, (f"no candidate meets the bound: the lowest {cfg.pool} {_stat_name(cfg)} measured is "
                  f"{low[cfg.statistic]:.4g} ({low['name']}), above {cfg.bound:g}; give lower CRFs (--crf) or a "
                  f"looser bound"), inv


def _stat_name(cfg: LadderConfig) -> str:
    return "Q" if cfg.statistic == "q" else f"{cfg.ap_metric.upper()} drop"
