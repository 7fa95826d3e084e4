"""Command line: ``dctqa score | info | demo``, plus the wings' subcommands (``encode``, ``study``,
``study-tables``; the no-reference commands; ``score-many``) loaded from :data:`PLUGINS`.

Thin: parses arguments, calls the library, formats output. Expected failures
(:class:`~dctqa.errors.DctqaError`, file-system errors, out of memory) print ``error: ...``
and exit with status 2; bad arguments exit 2 through argparse. Every output path is
checked before scoring starts, and a failed, interrupted (SIGINT) or terminated (SIGTERM)
run leaves no output behind (:class:`dctqa.fileio.OutputSet`).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import signal
import threading
import warnings
from typing import Sequence

from .argtypes import add_progress_options, bounded_int, name_list, positive_int, progress_mode
from .constants import DEFAULT_BACKBONE, DOMAINS, METRIC_VERSION
from .errors import DctqaError, InputError
from .registry import NORMALISED_METRICS
from . import settings

# Modules that add subcommands through ``register(subparsers)``.
PLUGINS = ("dctqa.study.cli", "dctqa.nr.cli", "dctqa.scale.cli", "dctqa.ladder.cli")


def _progress_wanted(args: argparse.Namespace) -> bool:
    """Progress unless ``--quiet``: a bar on a terminal, plain lines otherwise (dctqa.progress)."""
    return progress_mode(args) != "none"


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=DEFAULT_BACKBONE,
                   help="detector whose first layer is used: a torchvision name, onnx:PATH, or pixel "
                        f"(default: {DEFAULT_BACKBONE}, needs COCO weights)")
    p.add_argument("--domain", default="spectral", choices=DOMAINS, help="METRIC.md domain (default: spectral)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--weights", metavar="FILE", help="detector weights (state_dict) for torchvision backbones")


class _Baselines:
    """The ``--metrics`` baselines, computed on every scored batch (the frames Q saw) with
    :func:`dctqa.baselines.compute_baselines`, as libvmaf logs several metrics in one pass."""

    def __init__(self, names: Sequence[str], device: str) -> None:
        self.names, self.device = list(names), device
        self.values: dict[str, list] = {n: [] for n in self.names}
        self.mse: list = []

    def __call__(self, ref, dist, numbers) -> None:
        from .baselines import compute_baselines

        got = compute_baselines(ref, dist, names=self.names, device=self.device)
        for n in self.names:
            self.values[n].append(got[n])
        if "psnr" in self.names:
            self.mse.append(got["mse"])

    def per_frame(self) -> dict:
        import numpy as np

        return {n: np.concatenate(v) if v else np.zeros(0) for n, v in self.values.items()}

    def add_pooled(self, log: dict) -> None:
        """PSNR's ``global`` (the PSNR of the mean MSE, FFmpeg's "average") beside its pooled stats."""
        import numpy as np

        from .baselines import global_psnr

        if self.mse:
            log["pooled_metrics"]["psnr"]["global"] = float(global_psnr(np.concatenate(self.mse)))


def _check_outputs_are_files(args: argparse.Namespace) -> None:
    from .io import is_url

    for option, path in (("--json", args.json), ("--csv", args.csv)):
        if path is not None and is_url(path):
            raise InputError(f"{option} {path!r}: outputs are written to local files, never to a URL")


def _score_params(metric, res, args: argparse.Namespace, extra: Sequence[str]) -> dict:
    from .io import shown_path

    params = metric.params()
    params.update({"reference": shown_path(args.ref), "distorted": shown_path(args.dist),
                   "reference_frames": res.ref_frames, "distorted_frames": res.dist_frames,
                   "frame_stride": args.frame_stride, "scaled": bool(args.scale),
                   "ignore_decode_errors": bool(args.ignore_decode_errors), "decode_errors": res.decode_errors,
                   "missing_frames": res.missing_frames, "hwaccel": args.hwaccel, "extra_metrics": list(extra)})
    if res.ref_fps is not None or res.dist_fps is not None:
        params.update({"reference_fps": res.ref_fps, "distorted_fps": res.dist_fps})
    return params


def cmd_score(args: argparse.Namespace) -> int:
    from .fileio import OutputSet
    from .io import resolve_hwaccel
    from .metric import Metric
    from .log import build_log, csv_text, json_text, log_to_rows

    _check_outputs_are_files(args)
    resolve_hwaccel(args.hwaccel)  # an unusable --hwaccel fails before anything is scored
    with OutputSet(inputs=[args.ref, args.dist]) as outputs:
        for path in (args.json, args.csv):  # checked before any frame is scored
            if path is not None:
                outputs.add(path)
        metric = Metric(backbone=args.backbone, domain=args.domain, device=args.device, weights=args.weights,
                        batch_size=args.batch_size, normalise=args.normalise)
        baselines = _Baselines(args.metrics, str(metric.device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded in the result and printed below
            res = metric.score_video(args.ref, args.dist, scale=args.scale, frame_stride=args.frame_stride,
                                     max_frames=args.max_frames, per_filter=args.per_filter,
                                     progress=_progress_wanted(args), ignore_decode_errors=args.ignore_decode_errors,
                                     hwaccel=args.hwaccel, on_batch=baselines if args.metrics else None)
        params = _score_params(metric, res, args, args.metrics)
        log = build_log(res.q, res.frame_numbers, params, res.q_filters, extra=baselines.per_frame())
        baselines.add_pooled(log)
        pool = log["pooled_metrics"]["dctqa"]
        for note in res.warnings:
            print(f"warning: {note}", file=sys.stderr)
        if pool["undefined_frames"]:
            print(f"warning: {pool['undefined_frames']} frame(s) have no defined score; logged as null and "
                  f"left out of the pooled statistics", file=sys.stderr)
        if args.json:
            outputs.write_text(args.json, json_text(log))
        if args.csv:
            outputs.write_text(args.csv, csv_text(log_to_rows(log)))
    _print_score(metric, res, log)
    return 0


def _print_score(metric, res, log: dict) -> None:
    import numpy as np

    pool = log["pooled_metrics"]["dctqa"]
    worst = int(res.frame_numbers[np.nanargmax(np.where(np.isfinite(res.q), res.q, np.nan))])
    variant = "" if metric.normalise == "mean" else f"  variant={metric.name}"
    print(f"dctqa v{METRIC_VERSION}{variant}  backbone={metric.backbone.name}  domain={metric.domain_name}  "
          f"implementation={metric.implementation}")
    print(f"frames scored: {len(res.q)}  Q mean {pool['mean']:.4f}  min {pool['min']:.4f}  "
          f"max {pool['max']:.4f} (frame {worst})  [1 = identical; higher = worse for detection]")
    others = [(n, p) for n, p in log["pooled_metrics"].items() if n != "dctqa"]
    if others:
        print("  ".join(f"{n} mean {p['mean']:.4f}" if p["mean"] is not None else f"{n} undefined"
                        for n, p in others))
    if res.decode_errors or res.missing_frames:
        print(f"damaged input: {res.decode_errors} decode error(s), {res.missing_frames} frame(s) missing "
              f"(--ignore-decode-errors)")


def cmd_info(args: argparse.Namespace) -> int:
    from .backbones import backbone_names
    from .metric import backends
    from .registry import list_metrics

    info = {"backends": backends(), "backbones": backbone_names(),
            "metrics": [{"name": m.name, "kind": m.kind, "lower_better": m.lower_better,
                         "description": m.description} for m in list_metrics()],
            "metric_version": METRIC_VERSION}
    if args.json:
        from .fileio import strict_json

        print(strict_json(info, indent=2))
        return 0
    b = info["backends"]
    print("implementations:")
    print("  reference (float64 NumPy)      yes")
    print("  torch (float32, CPU/CUDA)      yes")
    print(f"  compiled C++ op (CPU)          {'yes' if b.get('cpp') else 'no'}")
    print(f"  fused C++ op, frames->Q (CPU)  {'yes' if b.get('cpp_fused') else 'no'}")
    print(f"  compiled CUDA op               {'yes' if b.get('cuda') else 'no'}"
          f"{'' if b.get('cuda_device') else '  (no CUDA device visible)'}")
    sc = b.get("spectra_cache")
    if sc:
        print(f"  filter-spectra cache (compiled ops): {sc['bytes'] / 2**20:.1f} of {sc['max_bytes'] / 2**20:.0f} MiB, "
              f"{sc['entries']} entries, {sc['hits']} hits, {sc['misses']} misses")
    if b.get("extension_error"):
        print(f"  extension not loaded: {b['extension_error']}")
    for dev in ["cpu"] + (["cuda"] if b.get("cuda_device") else []):
        from . import ops

        fused = ops.implementation_for(dev, ops.FUSED_OP)
        sp = fused if fused != "torch" else ops.implementation_for(dev, "spectral_qk")
        px = fused if fused != "torch" else ops.implementation_for(dev, "ratio_qk")
        print(f"  used on {dev}: spectral -> {sp}, pixel -> {px}, "
              f"feature -> {ops.implementation_for(dev, 'ratio_qk')}")
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
    p.add_argument("ref", help="reference image or video (any format FFmpeg reads), or an rtsp://, http:// or "
                               "https:// URL (a live stream needs --max-frames)")
    p.add_argument("dist", help="distorted image or video (or URL), same size (or use --scale)")
    _add_metric_options(p)
    from .baselines import baseline_names

    p.add_argument("--metrics", type=name_list(baseline_names(), "metric"), default=(), metavar="NAMES",
                   help="also log these baselines beside Q, per frame and pooled, in the same pass "
                        f"(comma-separated: {','.join(baseline_names())}; e.g. psnr,ssim)")
    p.add_argument("--hwaccel", default="none", metavar="auto|none|TYPE",
                   help="hardware decoding: none (default, software), auto (a hardware decoder if one works "
                        "here, else software) or a device type such as cuda (an error if unavailable)")
    p.add_argument("--json", metavar="PATH", help="write the per-frame log (libvmaf JSON layout)")
    p.add_argument("--csv", metavar="PATH", help="write per-frame scores as CSV")
    p.add_argument("--scale", action="store_true", help="resize distorted frames to the reference size (bicubic)")
    p.add_argument("--frame-stride", type=bounded_int(1, 2**31 - 1), default=1,
                   help="score every N-th frame (default 1)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    p.add_argument("--ignore-decode-errors", action="store_true",
                   help="score the frames that decode from a damaged or truncated file (the log counts the "
                        "errors and missing frames); default: such a file is an error")
    p.add_argument("--per-filter", action="store_true", help="also log Q_k of every filter")
    p.add_argument("--normalise", default="mean", choices=("mean", *NORMALISED_METRICS),
                   help="mean: metric version 1, the paper's (default); weighted: the reference-weighted "
                        "variant dctqa_weighted (docs/metric.md; spectral domain, torch path)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096), default=8, help="frame pairs per batch (default 8)")
    add_progress_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("info", help="available implementations, backbones and metrics")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="encode a clip of real photographs at 5 CRFs and score it")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--frames", type=bounded_int(1, 100_000), default=40, help="frames in the clip (default 40)")
    add_progress_options(p)
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


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM, so that cleanup runs."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


#: Messages of torch's allocators when memory runs out (they raise RuntimeError, not MemoryError).
_ALLOCATOR_MESSAGES = ("can't allocate memory", "DefaultCPUAllocator", "CUDA out of memory",
                       "out of memory")
OUT_OF_MEMORY = ("out of memory: the frames (or --batch-size, --patches) are too large for this machine; "
                 "try a smaller --batch-size or --patches, or smaller frames")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _ALLOCATOR_MESSAGES)


def _error_message(exc: BaseException) -> str | None:
    """``error: ...`` text for an expected failure, ``None`` for a bug (keeps its traceback)."""
    if isinstance(exc, DctqaError):  # re-raised from a worker process: the message without its traceback
        return str(exc).split("\nOriginal Traceback")[0].strip() or type(exc).__name__
    if _is_out_of_memory(exc):
        return OUT_OF_MEMORY
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return f"cannot access{where}: {exc.strerror or exc}"
    return None


class _StartupSignals:
    """SIGINT and SIGTERM while the command line starts (argument parsing, ``import torch``):
    recorded instead of raised, so that no exception is thrown inside torch's import (Python
    code run from C++, where it aborts the process) and the run ends cleanly right after."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _record(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum

    def __enter__(self) -> "_StartupSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _signal_exit(signum: int) -> int:
    if signum == signal.SIGINT:
        print("interrupted", file=sys.stderr)
        return 130
    print("terminated", file=sys.stderr)
    return 143


def _start(argv: Sequence[str] | None, main_thread: bool) -> argparse.Namespace:
    """Parse the command line and import torch (the slow part of starting)."""
    args = build_parser().parse_args(argv)
    if main_thread:
        import torch  # noqa: F401  (before the SIGTERM handler: see _StartupSignals)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 expected failure, 130 SIGINT,
    143 SIGTERM, 141 closed output pipe). Outputs of a failed or interrupted run are removed."""
    bad = next((a for a in (argv or ()) if isinstance(a, str) and "\x00" in a), None)
    if bad is not None:  # only possible through this function (a shell cannot pass one)
        print(f"error: argument {bad!r} holds a NUL byte; paths and values cannot contain one", file=sys.stderr)
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        with _StartupSignals() as startup:
            try:
                args = _start(argv, main_thread)
            except KeyboardInterrupt:  # a SIGINT that arrived before the recording handler
                return _signal_exit(signal.SIGINT)
        if startup.received is not None:
            return _signal_exit(startup.received)
    else:
        args = _start(argv, main_thread)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    from .progress import using_mode

    try:
        with using_mode(progress_mode(args)):
            settings.reload()  # a command reads the kernel variables afresh (ConfigError: exit 2)
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _signal_exit(signal.SIGINT)
    except Terminated:
        return _signal_exit(signal.SIGTERM)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 141
    except Exception as exc:
        message = _error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
