"""``run_ladder``: the grid, the bisection rounds, the choice, and the outputs.

Round 0 measures the grid (:class:`~dctqa.ladder.measure.Measurer`, one encode of all its
CRFs). Each later round asks every segment (the whole video when not in segment mode) for its
next CRF (:func:`~dctqa.ladder.search.bisect_next` on that segment's uncapped candidates) and
measures the new ones, one encode each, until no segment asks for one. Every candidate is
measured on every segment and on the whole video, so each choice
(:func:`~dctqa.ladder.search.choose`) is taken among all measured candidates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fileio import OutputSet, check_output_dir
from .config import LadderConfig
from .measure import Candidate, Measurer
from .choice import uncapped_passes
from .confidence import UpperLimits
from .search import bisect_next

#: The most bisection rounds (CRF 0..51 needs at most 6).
MAX_ROUNDS = 8
#: Exit status of a run whose bound no candidate meets (ladder.json says so).
NO_CANDIDATE = 1


@dataclass
class LadderResult:
    """What :func:`run_ladder` wrote: the ``ladder.json`` document, its path, the plot's path,
    and the exit status the command line returns (0: a recommendation; :data:`NO_CANDIDATE`:
    none of the candidates meets the bound)."""

    doc: dict[str, Any]
    json_path: Path
    plot_path: Path
    exit_status: int

    @property
    def recommended(self) -> dict[str, Any] | None:
        return self.doc["recommended"]


def check_inputs(cfg: LadderConfig) -> None:
    """Every check that needs no work, before the first output: the video decodes (a header
    and a size), the backbone, the detector (only with an AP bound) and the output folder."""
    from ..backbones import check_backbone
    from ..io import probe
    from ..metric import check_device
    from ..study.config import default_model
    from ..study.detect import check_detector

    info = probe(cfg.video)
    if info.is_image:
        raise InputError(f"{str(cfg.video)!r} is a still image; the ladder needs a video")
    if info.width % 2 or info.height % 2:  # as the encoder says, before any output
        raise InputError(f"{str(cfg.video)!r} is {info.width}x{info.height}; yuv420p H.264 needs even width and "
                         f"height. Crop the source first (e.g. ffmpeg -vf crop=trunc(iw/2)*2:trunc(ih/2)*2)")
    if not cfg.pixel:
        check_backbone(cfg.backbone or default_model())
    if cfg.measures_ap and (cfg.detector is None or isinstance(cfg.detector, str)):
        check_detector(cfg.detector or default_model(), cfg.weights, cfg.device)
    else:
        check_device(cfg.device)
    check_output_dir(cfg.out)


def run_ladder(cfg: LadderConfig) -> LadderResult:
    """Run (or resume) the ladder of ``cfg``; writes ``ladder.json`` and ``ladder.png`` together
    (or neither) into ``cfg.out``, beside the resumable work (``variants/``, ``bisect/``,
    ``cache/``). Raises :class:`~dctqa.errors.DctqaError` for bad input, before any encode."""
    from .report import ladder_doc, plot_png

    t0 = time.perf_counter()
    check_inputs(cfg)
    with OutputSet(inputs=[cfg.video]) as outputs:  # on failure: the folder goes if nothing finished in it
        out = outputs.make_dir(cfg.out, keep_work=True)
        json_path, plot_path = out / "ladder.json", out / "ladder.png"
        for p in (json_path, plot_path):
            outputs.add(p)
        m = Measurer(cfg)
        limits = UpperLimits(cfg) if cfg.bootstraps else None
        cands = m.run_group(cfg.crfs, "grid", "ladder (grid)")
        ref_windows = m.reference_windows(limits) if cfg.measures_ap else []
        segs = segments(cands[0].variant.frames, cfg.segment_frames)
        rounds = _bisect(cfg, m, cands, ref_windows, segs, limits)
        doc = ladder_doc(cfg, m, cands, ref_windows, segs, rounds, time.perf_counter() - t0, limits)
        from ..fileio import strict_json

        outputs.write_bytes(plot_path, plot_png(doc))
        outputs.write_text(json_path, strict_json(doc, indent=1) + "\n")
    return LadderResult(doc, json_path, plot_path, 0 if doc["recommended"] is not None else NO_CANDIDATE)


def segments(n_frames: int, segment_frames: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` source frames of each segment (one: the whole video, without segments)."""
    if segment_frames is None:
        return [(0, n_frames)]
    return [(s, min(s + segment_frames, n_frames)) for s in range(0, n_frames, segment_frames)]


def _bisect(cfg: LadderConfig, m: Measurer, cands: list[Candidate], ref_windows: list[dict],
            segs: list[tuple[int, int]], limits: UpperLimits | None = None) -> list[list[int]]:
    """The bisection rounds (each: the CRFs it measured), candidates appended to ``cands``."""
    rounds: list[list[int]] = []
    for _ in range(MAX_ROUNDS):
        want = set()
        for seg in segs:
            nxt = bisect_next(uncapped_passes(cfg, cands, ref_windows, seg, limits))
            if nxt is not None:
                want.add(nxt)
        if not want:
            break
        rounds.append(sorted(want))
        for crf in sorted(want):
            cands.extend(m.run_group([crf], "bisect", f"ladder (CRF {crf})"))
    return rounds
