"""``dctqa score-many MANIFEST --out DIR``: score many pairs on Ray (or locally).

Exit status: 0 every pair scored, 1 some pairs failed (see ``DIR/errors.csv``), 2 a bad
invocation (through the top-level CLI's error handling), 130 SIGINT (finished pairs kept).
"""
from __future__ import annotations

import argparse
import sys

from ..argtypes import add_progress_options, bounded_int, finite_float, positive_int, progress_mode
from ..constants import DEFAULT_BACKBONE, DOMAINS
from ..errors import InputError
from .segments import DEFAULT_SEGMENT_FRAMES


def cmd_score_many(args: argparse.Namespace) -> int:
    from .run import score_many

    if (args.manifest is None) == (args.no_reference is None):
        raise InputError("give a MANIFEST (ref,dist pairs) or --no-reference GLOB, not both or neither")
    if args.no_reference is not None:
        _no_reference_defaults(args)
    elif args.patches is not None or args.sampling is not None:
        raise InputError("--patches and --sampling are options of --no-reference")
    res = score_many(args.manifest, args.out, engine=args.engine, address=args.address, backbone=args.backbone,
                     domain=args.domain, device=args.device, weights=args.weights, batch_size=args.batch_size,
                     frame_stride=args.frame_stride, max_frames=args.max_frames, per_filter=args.per_filter,
                     segment_frames=args.segment_frames, threads=args.threads, actors=args.actors,
                     gpus_per_actor=args.gpus_per_actor, force=args.force,
                     progress=progress_mode(args) != "none", no_reference=args.no_reference, model=args.model,
                     patches=args.patches, sampling=args.sampling, seed=args.seed)
    print(f"score-many: {len(res.scored)} pair(s) scored, {len(res.resumed)} kept from an earlier run, "
          f"{len(res.failed)} failed -> {args.out}/frames.parquet, summary.csv, errors.csv")
    if res.failed:
        print(f"warning: {len(res.failed)} pair(s) could not be scored; see {args.out}/errors.csv", file=sys.stderr)
    return res.exit_status


def _no_reference_defaults(args: argparse.Namespace) -> None:
    """No ``--model``: the shipped default model (checked: :func:`dctqa.nr.default.check_default`)
    and its recommended ``--patches``/``--sampling`` where not given; with ``--model``: 2 and
    activation where not given (as ``dctqa predict`` on a torch checkpoint)."""
    from ..nr.predict import DEFAULT_OPTIONS

    rec = DEFAULT_OPTIONS
    if args.model is None:
        from ..nr.default import check_default, default_options
        from ..nr.model import CheckpointError

        try:
            args.model = str(check_default()[0])
        except CheckpointError as exc:
            raise InputError(f"--no-reference needs --model CHECKPOINT while the default model is unusable ({exc})"
                             ) from None
        rec = default_options()
    args.patches = rec["patches"] if args.patches is None else args.patches
    args.sampling = rec["sampling"] if args.sampling is None else args.sampling


def _study_with_engine(study_cmd):
    """``dctqa study`` with ``--engine ray [--address A]``: the jobs of its encode, score and detect
    stages run as Ray tasks (:data:`dctqa.study.run.STAGE_EXECUTOR`); the tables and report are
    the local run's."""

    def cmd_study(args: argparse.Namespace) -> int:
        if args.engine == "local":
            if args.address:
                raise InputError("--address is an option of --engine ray")
            return study_cmd(args)
        from .engine_ray import stages_on_ray

        with stages_on_ray(args.address, args.jobs) as args.jobs:
            return study_cmd(args)

    return cmd_study


def _extend_study(sub) -> None:
    p = sub.choices.get("study")
    if p is None:  # the study wing is not installed
        return
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default: --jobs processes here) or ray: the encode, score and detect jobs (one per "
                        "video or variant) as Ray tasks on --address / RAY_ADDRESS, else an embedded local "
                        "instance (pip install dctqa[ray])")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: the Ray cluster to join")
    p.set_defaults(func=_study_with_engine(p.get_default("func")))


def register(sub) -> None:
    """Add ``score-many`` to the top-level parser's subcommands."""
    p = sub.add_parser("score-many", help="score many ref,dist pairs (a manifest CSV) on Ray or locally")
    p.add_argument("manifest", nargs="?", help="CSV with columns ref,dist (one pair per row; other columns are "
                   "carried into the outputs; relative paths are from the manifest's folder)")
    p.add_argument("--no-reference", metavar="GLOB", help="instead of a manifest: predict dctqa_nr of every video "
                   "matching GLOB (quote it; ** recurses) with --model or the shipped default model")
    p.add_argument("--model", metavar="CHECKPOINT", help="with --no-reference: the model (dctqa train-nr; default: "
                                                        "the shipped default model)")
    p.add_argument("--patches", type=bounded_int(1, 256), default=None,
                   help="with --no-reference: patches per frame (default: the default model's recommendation, "
                        "2 with --model)")
    p.add_argument("--sampling", default=None, choices=("activation", "uniform", "grid"),
                   help="with --no-reference: patch sampling (default: the default model's recommendation, "
                        "activation with --model)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="with --no-reference: patch seed")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (frames.parquet, summary.csv, "
                                                               "errors.csv, logs/)")
    p.add_argument("--engine", choices=("ray", "local"), default="ray",
                   help="ray (default: actors on --address / RAY_ADDRESS, else an embedded local instance) "
                        "or local (in this process)")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to join (as `ray start --head` prints it)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"as dctqa score (default: {DEFAULT_BACKBONE})")
    p.add_argument("--domain", default="spectral", choices=DOMAINS, help="as dctqa score (default: spectral)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for every actor (default: cpu)")
    p.add_argument("--weights", metavar="FILE", help="detector weights (state_dict) for torchvision backbones")
    p.add_argument("--frame-stride", type=bounded_int(1, 2**31 - 1), default=1, help="score every N-th frame")
    p.add_argument("--max-frames", type=positive_int, default=None, help="frames read per pair (default: all)")
    p.add_argument("--per-filter", action="store_true", help="also write Q_k of every filter (q_k columns)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096), default=8, help="frame pairs per batch (default 8)")
    p.add_argument("--segment-frames", type=bounded_int(1, 2**31 - 1), default=DEFAULT_SEGMENT_FRAMES,
                   help=f"scored frames per work unit (default {DEFAULT_SEGMENT_FRAMES})")
    p.add_argument("--actors", type=bounded_int(1, 100_000), default=None,
                   help="scoring actors (default: as many as the cluster's CPUs / GPUs allow)")
    p.add_argument("--threads", type=bounded_int(1, 1024), default=None, help="CPU threads per actor (default 1 "
                                                                             "on Ray; torch's default locally)")
    p.add_argument("--gpus-per-actor", type=finite_float(0.0, 64.0, low_open=True), default=None,
                   help="GPUs per actor with --device cuda (default 1; a fraction shares a GPU)")
    p.add_argument("--force", action="store_true", help="score every pair again (default: keep pairs already "
                                                       "scored from the same inputs and options)")
    add_progress_options(p)
    p.set_defaults(func=cmd_score_many)
    _extend_study(sub)
