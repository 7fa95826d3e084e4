"""``score_many``: score every pair of a manifest on an engine, into one output folder."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

from ..constants import DEFAULT_BACKBONE, METRIC_VERSION
from ..errors import InputError
from ..fileio import OutputSet
from .collect import Collector
from .manifest import Pair, glob_videos, read_manifest
from .outputs import RunOutputs
from .segments import DEFAULT_SEGMENT_FRAMES
from .worker import ScoreOptions, input_stamp

ENGINES = ("ray", "local")


@dataclass
class ManyResult:
    """What a run did. ``scored``: pairs scored now; ``resumed``: pairs kept from an earlier run;
    ``failed``: pairs in ``errors.csv``; ``out_dir``: the output folder."""

    out_dir: str
    scored: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """0 when every pair has its scores, 1 when some failed."""
        return 1 if self.failed else 0


def _file_stamp(spec: str | None) -> dict:
    if not spec:
        return {}
    path = spec[5:] if spec.startswith("onnx:") else spec
    return input_stamp(path) if os.path.isfile(path) else {}


def run_key(options: ScoreOptions) -> dict:
    """What decides the numbers of a run: the options, metric version, and the stamps of a
    backbone or weights file (size, mtime) when one is named."""
    return {**options.numbers_key(), "metric_version": METRIC_VERSION,
            "backbone_file": _file_stamp(options.backbone), "weights_file": _file_stamp(options.weights)}


def score_many(manifest: str | os.PathLike | Sequence[Pair] | None, out_dir: str | os.PathLike, *, engine: str = "ray",
               address: str | None = None, backbone: str = DEFAULT_BACKBONE, domain: str = "spectral",
               device: str = "cpu", weights: str | None = None, batch_size: int = 8, frame_stride: int = 1,
               max_frames: int | None = None, per_filter: bool = False,
               segment_frames: int = DEFAULT_SEGMENT_FRAMES, threads: int | None = None,
               actors: int | None = None, gpus_per_actor: float | None = None, num_cpus: int | None = None,
               force: bool = False, progress: bool = False, no_reference: str | None = None,
               model: str | None = None, patches: int = 2, sampling: str = "activation",
               seed: int = 0) -> ManyResult:
    """Score every ``ref,dist`` pair of ``manifest`` (a CSV path, or :class:`Pair` objects) into
    ``out_dir`` (``frames.parquet``, ``summary.csv``, ``errors.csv``, ``logs/``: see
    :mod:`dctqa.scale.outputs`).

    engine: ``"ray"`` (actors on a cluster at ``address`` / ``RAY_ADDRESS``, else on an embedded
    local instance of ``num_cpus`` CPUs) or ``"local"`` (in this process). The scoring options
    are ``dctqa score``'s; ``segment_frames``: scored frames per work unit; ``threads``: CPU
    threads per actor; ``actors``: how many (default: what the cluster's CPUs/GPUs allow);
    ``gpus_per_actor``: with ``device="cuda"`` (default 1; fractions share a GPU). Pairs already
    scored into ``out_dir`` from the same inputs and options are kept unless ``force``.
    A pair that cannot be scored goes to ``errors.csv``; other pairs go on. Raises
    :class:`~dctqa.errors.InputError` for a bad manifest or option (nothing scored).

    No reference: ``no_reference`` (a glob, ``manifest=None``) predicts ``dctqa_nr`` of every
    matching video with checkpoint ``model`` (``patches``, ``sampling``, ``seed``, ``frame_stride``,
    ``max_frames`` as ``dctqa predict`` takes them), one work unit per video, into the same outputs
    (column ``dctqa_nr``; ``ref`` empty).
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if engine == "local" and (address or actors or gpus_per_actor):
        raise InputError("--address, --actors and --gpus-per-actor are options of --engine ray")
    if (manifest is None) == (no_reference is None):
        raise InputError("give a manifest (full reference) or --no-reference GLOB, not both or neither")
    if no_reference is not None:
        from .nr_worker import NROptions

        options = NROptions(model=model, device=device, patches=patches, sampling=sampling, seed=seed,
                            frame_stride=frame_stride, max_frames=max_frames, threads=threads).check()
        pairs, column, key = glob_videos(no_reference), "dctqa_nr", options.numbers_key()
    else:
        if model is not None:
            raise InputError("--model is an option of --no-reference")
        options = ScoreOptions(backbone=backbone, domain=domain, device=device, weights=weights,
                               batch_size=batch_size, frame_stride=frame_stride, max_frames=max_frames,
                               per_filter=per_filter, segment_frames=segment_frames, threads=threads).check()
        pairs = list(manifest) if not isinstance(manifest, (str, os.PathLike)) else read_manifest(manifest)
        column, key = "dctqa", run_key(options)
    outputs = RunOutputs(out_dir, key, column)
    made = OutputSet()
    for d in (outputs.dir, outputs.dir / "logs", outputs.dir / "pairs"):
        made.make_dir(d, keep_work=True)  # a run that fails before any pair leaves no folder
    result = ManyResult(str(out_dir))
    todo = []
    for p in pairs:
        if not force and outputs.resume(p):
            result.resumed.append(p.key)
        else:
            todo.append(p)
    collector = Collector(todo, outputs, show_progress=progress)
    try:
        _run_engine(engine, todo, options, collector, address=address, actors=actors,
                    gpus_per_actor=gpus_per_actor, num_cpus=num_cpus)
    except BaseException:  # SIGINT, or a failure: keep every pair finished so far (none: no file)
        collector.lines.close()
        if collector.scored or collector.failed or result.resumed:
            outputs.finish(pairs)
        made.abort()
        raise
    collector.lines.close()
    outputs.finish(pairs)
    result.scored = [p.key for p in todo if p.key in collector.scored]
    result.failed = [p.key for p in todo if p.key in collector.failed]
    return result


def _run_engine(engine: str, todo: list[Pair], options: ScoreOptions, collector: Collector, **ray_options) -> None:
    if todo and engine == "local":
        from .engine_local import run_local

        run_local(todo, options, collector)
    elif todo:
        from .engine_ray import run_ray

        run_ray(todo, options, collector, **ray_options)
