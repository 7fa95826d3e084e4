"""``dctqa encode`` and ``dctqa study`` subcommands (plugged into ``dctqa.cli`` via :func:`register`).

Progress of ``dctqa study``: :func:`dctqa.study.pipeline.run_study`'s stages print a line
each ("study: stage i/N ...", numbered by :func:`dctqa.study.pipeline.study_stages`) and
report through :func:`dctqa.progress.progress` (bar on a terminal, lines with elapsed time
and ETA elsewhere, nothing with ``--quiet``).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..argtypes import add_progress_options, bounded_int, finite_float, positive_int, progress_mode
from ..backbones.spec import parse_spec
from ..errors import InputError
from ..fileio import OutputSet, check_output_dir
from ..progress import progress, stage
from .codec import DEFAULT_CAP_BPP, DEFAULT_CRFS, PRESETS, EncodeSettings, parse_floats
from .config import DEFAULT_SENSITIVITY_GT, DEFAULT_SENSITIVITY_PRED

#: ``dctqa study --quick``: a preset of existing options for trying the pipeline (each applies
#: only where the option was left at its default). The first 150 frames of each video,
#: three uncapped variants (CRF 35, 41, 47: the paper's high-compression subsets), YOLOX-Nano
#: in the spectral domain plus the pixel ablation, PSNR and SSIM, 50-frame AP windows, 200
#: bootstrap resamples, no threshold-sensitivity table; metrics on every 4th frame (twice
#: ``--frame-stride``, see _apply_quick).
QUICK: dict[str, Any] = {"max_frames": 150, "crf": (35, 41, 47), "cap_bpp": "", "domain": ["spectral"],
                         "baselines": "psnr,ssim", "window": 50, "n_boot": 200, "sensitivity_gt": ""}


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_encode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crf", type=_ints, default=DEFAULT_CRFS, metavar="LIST",
                   help=f"CRF values (default {','.join(map(str, DEFAULT_CRFS))})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cap-bpp", default=",".join(map(str, DEFAULT_CAP_BPP)), metavar="LIST",
                   help="VBV caps in bits per pixel per frame; cap = bpp*W*H*fps "
                        f"(default {','.join(map(str, DEFAULT_CAP_BPP))})")
    g.add_argument("--cap-kbps", default=None, metavar="LIST", help="VBV caps in kbit/s instead of --cap-bpp")
    p.add_argument("--no-uncapped", action="store_true", help="skip the uncapped CRF variants")
    p.add_argument("--preset", default="medium", choices=PRESETS, help="x264 preset (default medium)")
    p.add_argument("--gop", type=positive_int, default=None, help="keyframe interval in frames (default: x264's 250)")
    p.add_argument("--bufsize", type=finite_float(0.0, 60.0, low_open=True), default=1.0, help="VBV buffer in seconds of the cap (default 1)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="encode only the first N frames")


def _encode_settings(args: argparse.Namespace) -> EncodeSettings:
    caps_kbps = parse_floats(args.cap_kbps) if args.cap_kbps else None
    return EncodeSettings(crfs=tuple(args.crf), cap_bpp=parse_floats(args.cap_bpp) if not caps_kbps else (),
                          caps_kbps=caps_kbps, include_uncapped=not args.no_uncapped, preset=args.preset,
                          gop=args.gop, bufsize_s=args.bufsize, max_frames=args.max_frames)


def _progress(args: argparse.Namespace) -> bool:
    return progress_mode(args) != "none"


def cmd_encode(args: argparse.Namespace) -> int:
    from .codec import encode_sweep, plan_variants
    from ..io import probe

    settings = _encode_settings(args)
    check_output_dir(args.out)
    info = probe(args.src)
    total = info.frames if settings.max_frames is None or info.frames is None else min(info.frames,
                                                                                        settings.max_frames)
    n = len(plan_variants(settings, info.width, info.height, info.fps or 25.0))
    on = _progress(args)
    stage(f"encode: {n} variants of {args.src} ({total if total is not None else 'unknown number of'} frames, "
          f"encoded in one pass), then each variant decoded again and checked", enabled=on)
    frames_bar = progress(total, "encode", unit="frame", enabled=on)
    check_bar = progress(n, "encode: check", unit="variant", enabled=on, step_percent=100.0 / max(n, 1))

    def verified(variant) -> None:
        frames_bar.close()  # all frames are encoded once the first variant is checked
        check_bar.update(1)

    with frames_bar, check_bar:
        variants = encode_sweep(args.src, args.out, settings, progress=frames_bar.update, verified=verified)
    print(f"{'variant':20s} {'crf':>4s} {'cap kbit/s':>10s} {'kbit/s':>9s} frames")
    for v in variants:
        cap = "-" if v.maxrate_kbps is None else f"{v.maxrate_kbps:.1f}"
        print(f"{v.name:20s} {v.crf:4d} {cap:>10s} {v.bitrate_kbps:9.1f} {v.frames}")
    return 0


def _apply_quick(args: argparse.Namespace) -> None:
    """``--quick``: set every option of :data:`QUICK` that was left at its default."""
    for name, value in QUICK.items():
        if getattr(args, name) == args.quick_defaults[name]:
            setattr(args, name, value)
    if args.metric_stride is None:  # a multiple of --frame-stride, as the pipeline requires
        args.metric_stride = 2 * args.frame_stride


def cmd_study(args: argparse.Namespace) -> int:
    from .config import StudyConfig, default_model
    from .pipeline import run_study

    if args.quick:
        _apply_quick(args)
    check_output_dir(args.out)
    model = default_model()
    cfg = StudyConfig(videos=args.videos, out=args.out, encode=_encode_settings(args),
                      backbones=args.backbone or [model], domains=tuple(args.domain or ("spectral", "feature")),
                      pixel=not args.no_pixel, baselines=tuple(b for b in args.baselines.split(",") if b),
                      detector=args.detector or model, detector_weights=args.weights, device=args.device,
                      frame_stride=args.frame_stride, metric_stride=args.metric_stride, window=args.window,
                      gt_score_threshold=args.gt_score, pred_score_threshold=args.pred_score,
                      classes=args.classes, min_gt=args.min_gt,
                      keep_duplicates=args.keep_duplicates, dup_tolerance=args.dup_tolerance,
                      resampling=args.resampling, sensitivity_gt=parse_floats(args.sensitivity_gt) if
                      args.sensitivity_gt else (), sensitivity_pred=parse_floats(args.sensitivity_pred) if
                      args.sensitivity_pred else (), n_boot=args.n_boot, seed=args.seed, jobs=args.jobs,
                      batch_size=args.batch_size, progress=_progress(args), nr_model=args.nr_model,
                      nr_patches=args.nr_patches, nr_sampling=args.nr_sampling,
                      command="dctqa " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command
                      else "")
    for spec in map(parse_spec, cfg.backbones + [cfg.detector]):
        if spec.kind == "onnx" and not spec.path.is_file():
            raise InputError(f"model file {str(spec.path)!r} not found; pass --backbone/--detector onnx:PATH")
    result = run_study(cfg)
    print(f"report: {result.report}")
    print(f"windows: {len(result.windows)} rows in {result.out / 'windows.csv'}")
    return 0


def cmd_study_tables(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .analysis import AnalysisSettings, analyze, load_windows_csv, metric_columns_of
    from .report import TABLES_REPORT_FILES, write_tables_report

    path = Path(args.windows)
    with OutputSet(inputs=[path]) as outputs:  # every file or none; never the input table
        check_output_dir(args.out)
        for name in TABLES_REPORT_FILES:
            outputs.add(Path(args.out) / name, make_parents=True)
        rows = load_windows_csv(path)
        if not rows:
            raise InputError(f"{str(path)!r} holds no study windows (expected the windows.csv of a study run)")
        settings = AnalysisSettings(metrics=metric_columns_of(rows), resampling=args.resampling, n_boot=args.n_boot,
                                    seed=args.seed, min_gt=args.min_gt, dup_tolerance=args.dup_tolerance,
                                    keep_duplicates=args.keep_duplicates)
        videos = list(dict.fromkeys(r["video"] for r in rows))
        command = "dctqa " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command else ""
        analysis = analyze(rows, videos, settings)
        report = write_tables_report(analysis, outputs.make_dir(args.out), path.name, command, outputs)
    print(f"report: {report}")
    return 0


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-gt", type=bounded_int(0), default=10,
                   help="leave out windows with fewer ground-truth boxes (default 10; counted in the report)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="keep capped variants that duplicate the uncapped one (identical windows, or bitrate "
                        "within --dup-tolerance) in the correlations")
    p.add_argument("--dup-tolerance", type=finite_float(0.0, 10.0), default=0.05,
                   help="relative bitrate difference under which a capped variant is a duplicate (default 0.05)")
    p.add_argument("--resampling", choices=("content", "video", "window"), default="content",
                   help="bootstrap unit: content windows (video x window, all variants together; default), "
                        "whole videos, or single windows (independent rows: overconfident, for comparison)")
    p.add_argument("--n-boot", type=bounded_int(1, 1_000_000), default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-record-command", dest="record_command", action="store_false",
                   help="do not write the command line into report.md")


def register(subparsers) -> None:
    """Add the ``encode`` and ``study`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser("encode", help="encode the paper's CRF x bandwidth grid of H.264 variants")
    p.add_argument("src", help="source video")
    p.add_argument("--out", required=True, help="output folder (one .mp4 per variant + variants.json)")
    _add_encode_options(p)
    add_progress_options(p)
    p.set_defaults(func=cmd_encode)

    p = subparsers.add_parser("study", help="encode, score, detect, AP per window, correlations, report")
    p.add_argument("videos", nargs="+", help="source videos")
    p.add_argument("--out", required=True, help="output folder (resumable: finished stages are reused)")
    _add_encode_options(p)
    p.add_argument("--backbone", action="append", default=None,
                   help="backbone for dctqa (repeatable; default onnx:<shared>/models/yolox_nano.onnx)")
    p.add_argument("--domain", action="append", choices=("spectral", "feature"), default=None,
                   help="dctqa domain per backbone (repeatable; default spectral and feature)")
    p.add_argument("--no-pixel", action="store_true", help="skip the pixel-domain ablation")
    p.add_argument("--baselines", default="psnr,ssim,blockiness,blur,noise,contrast",
                   help="comma-separated baseline metrics ('' for none)")
    p.add_argument("--detector", default=None, help="onnx:PATH (YOLOX) or fasterrcnn_resnet50_fpn "
                                                     "(default: the YOLOX-Nano ONNX of the shared folder)")
    p.add_argument("--weights", default=None, help="weights for torchvision detectors/backbones")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--frame-stride", type=positive_int, default=2, help="detect on every N-th frame (default 2)")
    p.add_argument("--metric-stride", type=positive_int, default=None,
                   help="score every N-th frame, a multiple of --frame-stride (default: --frame-stride)")
    p.add_argument("--window", type=positive_int, default=100, help="AP window in source frames (default 100)")
    p.add_argument("--gt-score", type=finite_float(0.0, 1.0), default=0.5, help="pseudo ground-truth score threshold (default 0.5)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="count only these COCO classes in the pseudo ground truth and AP, comma-separated names "
                        "or ids (e.g. car,truck; default every class)")
    p.add_argument("--pred-score", type=finite_float(0.0, 1.0), default=0.0,
                   help="drop predictions scoring below this before AP (default 0: keep all the detector "
                        "returned; applied to cached detections)")
    _add_analysis_options(p)
    p.add_argument("--sensitivity-gt", default=",".join(map(str, DEFAULT_SENSITIVITY_GT)), metavar="LIST",
                   help="ground-truth score thresholds of the sensitivity table ('' for no table)")
    p.add_argument("--sensitivity-pred", default=",".join(map(str, DEFAULT_SENSITIVITY_PRED)), metavar="LIST",
                   help="prediction score thresholds of the sensitivity table ('' for no table)")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=1, help="worker processes for scoring (default 1)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096), default=8, help="frames per scoring batch (default 8)")
    p.add_argument("--nr-model", default=None, metavar="PATH",
                   help="a `dctqa train-nr` checkpoint: adds the no-reference column dctqa_nr (its predicted Q of "
                        "the compressed frames alone, on the scored frames, mean per window); checked before "
                        "any encoding (metric version, a backbone of the study)")
    p.add_argument("--nr-patches", type=positive_int, default=2,
                   help="patches per frame for --nr-model (default 2)")
    p.add_argument("--nr-sampling", default="activation", choices=("activation", "uniform", "grid"),
                   help="where --nr-model's patches go (default activation: the paper's activation-map sampling)")
    p.add_argument("--quick", action="store_true",
                   help="a quick trial run (minutes on one video): --max-frames 150 --crf 35,41,47 --cap-bpp '' "
                        "--domain spectral --baselines psnr,ssim --window 50 --n-boot 200 --sensitivity-gt '' and "
                        "--metric-stride twice --frame-stride, each unless given")
    add_progress_options(p)
    p.set_defaults(func=cmd_study, quick_defaults={name: p.get_default(name) for name in QUICK})

    p = subparsers.add_parser("study-tables", help="re-analyse a study's windows.csv (statistics and report, "
                                                   "no videos needed)")
    p.add_argument("windows", help="windows.csv of a study run")
    p.add_argument("--out", required=True, help="output folder for report.md and the CSV tables")
    _add_analysis_options(p)
    p.set_defaults(func=cmd_study_tables)
