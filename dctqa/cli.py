"""Command line: ``dctqa score | info | demo`` (plus ``encode`` and ``study`` when installed).

Thin: parses arguments, calls the library, formats output. Expected failures
(:class:`~dctqa.errors.DctqaError`) print ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from typing import Sequence

from .constants import DEFAULT_BACKBONE, DOMAINS, METRIC_VERSION
from .errors import DctqaError

# Modules that add subcommands through ``register(subparsers)``.
PLUGINS = ("dctqa.study.cli", "dctqa.nr.cli")


def _progress_wanted(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=DEFAULT_BACKBONE,
                   help="detector whose first layer is used: a torchvision name, onnx:PATH, or pixel "
                        f"(default: {DEFAULT_BACKBONE}, needs COCO weights)")
    p.add_argument("--domain", default="spectral", choices=DOMAINS, help="METRIC.md domain (default: spectral)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--weights", metavar="FILE", help="detector weights (state_dict) for torchvision backbones")


def cmd_score(args: argparse.Namespace) -> int:
    from .metric import Metric
    from .report import build_log, log_to_rows, write_csv, write_json

    metric = Metric(backbone=args.backbone, domain=args.domain, device=args.device, weights=args.weights,
                    batch_size=args.batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recorded in the result and printed below
        res = metric.score_video(args.ref, args.dist, scale=args.scale, frame_stride=args.frame_stride,
                                 max_frames=args.max_frames, per_filter=args.per_filter,
                                 progress=_progress_wanted(args))
    params = metric.params()
    params.update({"reference": str(args.ref), "distorted": str(args.dist), "reference_frames": res.ref_frames,
                   "distorted_frames": res.dist_frames, "frame_stride": args.frame_stride,
                   "scaled": bool(args.scale)})
    log = build_log(res.q, res.frame_numbers, params, res.q_filters)
    for note in res.warnings:
        print(f"warning: {note}", file=sys.stderr)
    if args.json:
        write_json(args.json, log)
    if args.csv:
        write_csv(args.csv, log_to_rows(log))
    pool = log["pooled_metrics"]["dctqa"]
    worst = int(res.frame_numbers[res.q.argmax()])
    print(f"dctqa v{METRIC_VERSION}  backbone={metric.backbone.name}  domain={metric.domain_name}  "
          f"implementation={metric.implementation}")
    print(f"frames scored: {len(res.q)}  Q mean {pool['mean']:.4f}  min {pool['min']:.4f}  "
          f"max {pool['max']:.4f} (frame {worst})  [1 = identical; higher = worse for detection]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .backbones import backbone_names
    from .metric import backends
    from .registry import list_metrics

    info = {"backends": backends(), "backbones": backbone_names(),
            "metrics": [{"name": m.name, "kind": m.kind, "lower_better": m.lower_better,
                         "description": m.description} for m in list_metrics()],
            "metric_version": METRIC_VERSION}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    b = info["backends"]
    print("implementations:")
    print("  reference (float64 NumPy)      yes")
    print("  torch (float32, CPU/CUDA)      yes")
    print(f"  compiled C++ op (CPU)          {'yes' if b.get('cpp') else 'no'}")
    print(f"  compiled CUDA op               {'yes' if b.get('cuda') else 'no'}"
          f"{'' if b.get('cuda_device') else '  (no CUDA device visible)'}")
    if b.get("extension_error"):
        print(f"  extension not loaded: {b['extension_error']}")
    for dev in ["cpu"] + (["cuda"] if b.get("cuda_device") else []):
        from . import ops

        print(f"  used on {dev}: spectral -> {ops.implementation_for(dev, 'spectral_qk')}, "
              f"feature/pixel -> {ops.implementation_for(dev, 'ratio_qk')}")
    print("backbones: " + ", ".join(info["backbones"]))
    print("metrics:")
    for m in info["metrics"]:
        print(f"  {m['name']:<16} {m['kind']}  {'lower' if m['lower_better'] else 'higher'} is better  "
              f"{m['description']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out, frames=args.frames, progress=_progress_wanted(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="dctqa", description="How much has compression hurt a frame "
                                     "for an object detector? (Beniwal, Mantini, Shah)")
    parser.add_argument("--version", action="version", version=f"dctqa {__version__} (metric v{METRIC_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="score a distorted image/video against its reference")
    p.add_argument("ref", help="reference image or video (any format FFmpeg reads)")
    p.add_argument("dist", help="distorted image or video, same size (or use --scale)")
    _add_metric_options(p)
    p.add_argument("--json", metavar="PATH", help="write the per-frame log (libvmaf JSON layout)")
    p.add_argument("--csv", metavar="PATH", help="write per-frame scores as CSV")
    p.add_argument("--scale", action="store_true", help="resize distorted frames to the reference size (bicubic)")
    p.add_argument("--frame-stride", type=int, default=1, help="score every N-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--per-filter", action="store_true", help="also log Q_k of every filter")
    p.add_argument("--batch-size", type=int, default=8, help="frame pairs per batch (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("info", help="available implementations, backbones and metrics")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="encode a clip of real photographs at 5 CRFs and score it")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--frames", type=int, default=40, help="frames in the clip (default 40)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # optional part not present in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "frame_stride", 1) is not None and getattr(args, "frame_stride", 1) < 1:
        parser.error("--frame-stride must be >= 1")
    try:
        return int(args.func(args) or 0)
    except DctqaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
