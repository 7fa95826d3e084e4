"""``dctqa ladder VIDEO --out DIR (--max-q Q | --max-ap-drop D)`` (plugged into ``dctqa.cli``).

Exit status: 0 a recommendation, 1 no candidate meets the bound (``ladder.json`` and the plot
say so), 2 a bad invocation (nothing written), 130 SIGINT, 143 SIGTERM.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from ..argtypes import add_progress_options, bounded_int, finite_float, positive_int, progress_mode
from ..constants import DOMAINS
from ..errors import InputError
from .config import AP_METRICS, DEFAULT_GRID
from .search import POOLS


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers 0..51, got {text!r}") from None
    if not vals or any(not 0 <= v <= 51 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers 0..51, got {text!r}")
    return vals


def _caps(text: str) -> tuple[float, ...]:
    from ..study.codec import MAX_CAP_KBPS, parse_floats

    try:
        vals = parse_floats(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if any(not (0 < v <= MAX_CAP_KBPS) for v in vals):  # NaN fails too
        raise argparse.ArgumentTypeError(f"caps must be finite numbers in (0, {MAX_CAP_KBPS:g}] kbit/s, got {text!r}")
    return vals


def cmd_ladder(args: argparse.Namespace) -> int:
    from .config import LadderConfig
    from .report import summary_text
    from .run import run_ladder

    if args.engine == "local" and args.address:
        raise InputError("--address is an option of --engine ray")
    cfg = LadderConfig(video=args.video, out=args.out, max_q=args.max_q, max_ap_drop=args.max_ap_drop,
                       ap_metric=args.ap_metric, crfs=args.crf, caps_kbps=args.caps, backbone=args.backbone,
                       domain=args.domain, pool=args.pool, frame_stride=args.frame_stride, max_frames=args.max_frames,
                       segment_frames=args.segment_frames, window=args.window, detector=args.detector,
                       weights=args.weights, device=args.device, gt_score=args.gt_score, min_gt=args.min_gt,
                       classes=args.classes,
                       preset=args.preset, batch_size=args.batch_size, jobs=args.jobs,
                       confidence=args.confidence, block_frames=args.block_frames, replicates=args.replicates,
                       seed=args.seed,
                       progress=progress_mode(args) != "none",
                       command="dctqa " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if args.engine == "ray":
        res = _on_ray(cfg, args.address, run_ladder)
    else:
        res = run_ladder(cfg)
    print(summary_text(res.doc))
    print(f"ladder: {res.json_path}, {res.plot_path}")
    if res.exit_status:
        print(f"ladder: no recommendation: {res.doc['reason']}", file=sys.stderr)
    return res.exit_status


def _on_ray(cfg, address: str | None, run_ladder):
    """``run_ladder(cfg)`` with the study stages' jobs as Ray tasks (the study's executor hook),
    on ``address`` or an embedded local instance; as many score workers as the cluster's CPUs."""
    from ..scale.engine_ray import stages_on_ray

    with stages_on_ray(address, cfg.jobs) as cfg.jobs:
        return run_ladder(cfg)


def register(subparsers) -> None:
    """Add the ``ladder`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("ladder", help="the cheapest H.264 setting whose detection quality stays within a bound",
                              description="Encode VIDEO at a CRF grid, bisect on CRF around the bound, recommend the "
                                          "candidate of lowest bitrate within it (docs/ladder.md). Exit status: 0 a "
                                          "recommendation; 1 no candidate meets the bound (ladder.json and the plot "
                                          "say why); 2 bad input (nothing written).")
    p.add_argument("video", help="source video (the original the candidates are compared with)")
    p.add_argument("--out", required=True, help="output folder: ladder.json, ladder.png, and the resumable work "
                                                "(variants/, bisect/, cache/; a study's folder shares its cache)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--max-q", type=finite_float(0.0, low_open=True), metavar="Q",
                   help="upper bound on the pooled Q (Q = 1 identical, HIGHER = WORSE for detection): a candidate "
                        "qualifies when its pooled Q <= Q")
    g.add_argument("--max-ap-drop", type=finite_float(0.0, 1.0), metavar="D",
                   help="upper bound on the pooled AP drop (absolute, 0..1) against pseudo ground truth from the "
                        "source, per AP window: a candidate qualifies when AP(source) - AP(candidate) <= D")
    p.add_argument("--ap-metric", choices=AP_METRICS, default="ap",
                   help="with --max-ap-drop: ap = AP@[.5:.95] (default) or ap50")
    p.add_argument("--crf", type=_ints, default=DEFAULT_GRID, metavar="LIST",
                   help=f"the CRF grid measured first (default {','.join(map(str, DEFAULT_GRID))}); then a "
                        "bisection on integer CRF between the two grid points that bracket the bound")
    p.add_argument("--caps", type=_caps, default=(), metavar="KBPS",
                   help="VBV caps in kbit/s (comma-separated): every measured CRF is also encoded under each")
    p.add_argument("--backbone", default=None, help="Q's backbone, as dctqa score (default: YOLOX-Nano ONNX of "
                                                    "the shared folder; pixel: the identity filters)")
    p.add_argument("--domain", default="spectral", choices=DOMAINS,
                   help="Q's domain (default spectral; pixel: the image's own DCT, no backbone)")
    p.add_argument("--pool", default="mean", choices=POOLS,
                   help="how per-frame Q and per-window AP drops are pooled (default mean)")
    p.add_argument("--detector", default=None,
                   help="with --max-ap-drop: onnx:PATH (YOLOX) or fasterrcnn_resnet50_fpn (default: YOLOX-Nano "
                        "of the shared folder)")
    p.add_argument("--weights", default=None, help="weights for torchvision backbones/detectors")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--frame-stride", type=positive_int, default=1, help="score and detect every N-th frame (default 1)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="only the first N frames")
    p.add_argument("--segment-frames", type=positive_int, default=None, metavar="N",
                   help="a recommendation per segment of N source frames (the AP window is the segment)")
    p.add_argument("--window", type=positive_int, default=100, help="AP window in source frames (default 100)")
    p.add_argument("--confidence", type=finite_float(0.0, 1.0, high_open=True), default=0.9, metavar="C",
                   help="a candidate qualifies only when the one-sided C upper confidence limit of its pooled "
                        "statistic is within the bound too (cluster bootstrap over AP windows and time blocks; "
                        "default 0.9; 0: the point estimate alone)")
    p.add_argument("--block-frames", type=positive_int, default=20, metavar="N",
                   help="the bootstrap's time blocks, in source frames (default 20)")
    p.add_argument("--replicates", type=bounded_int(20, 100000), default=200,
                   help="bootstrap replicates (default 200)")
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0, help="the bootstrap's seed (default 0)")
    p.add_argument("--gt-score", type=finite_float(0.0, 1.0), default=0.5,
                   help="pseudo ground-truth score threshold (default 0.5)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="with --max-ap-drop: count only these COCO classes in the pseudo ground truth and AP, "
                        "comma-separated names or ids (e.g. car,truck; default every class)")
    p.add_argument("--min-gt", type=bounded_int(1, 2**31 - 1), default=10,
                   help="AP windows with fewer pseudo ground-truth boxes do not count (default 10, as the study)")
    from ..study.codec import PRESETS

    p.add_argument("--preset", default="medium", choices=PRESETS, help="x264 preset (default medium)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096), default=8, help="frames per scoring batch (default 8)")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=1, help="score worker processes (default 1)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray: the encode, score and detect jobs as Ray tasks on --address / "
                        "RAY_ADDRESS, else an embedded local instance (pip install dctqa[ray])")
    p.add_argument("--address", metavar="ADDR", help="with --engine ray: the Ray cluster to join")
    add_progress_options(p)
    p.set_defaults(func=cmd_ladder)
