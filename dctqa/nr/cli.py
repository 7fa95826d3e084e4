"""``dctqa nr-data | train-nr | calibrate-nr | predict | export-nr | eval-nr`` (plugged into ``dctqa.cli`` via :func:`register`).

Only argument parsing here; every command imports its module when it runs.
"""
from __future__ import annotations

import argparse
import sys

from ..argtypes import bounded_int, finite_float, positive_int
from . import MAX_PATCHES


def _progress(args: argparse.Namespace) -> bool:
    """Progress unless ``--quiet`` (:mod:`dctqa.progress`: a bar on a terminal, lines elsewhere)."""
    return not getattr(args, "quiet", False)


def cmd_nr_data(args: argparse.Namespace) -> int:
    from ..study.clips import SKIMAGE_PHOTOS
    from .data import build_dataset, load_dataset

    extra = [n for n in (args.extra_skimage or "").split(",") if n]
    if extra == ["all"]:
        extra = list(SKIMAGE_PHOTOS)
    out = build_dataset(args.videos, args.out, backbone=args.backbone, metric_stride=args.metric_stride,
                        labels_csv=args.labels, extra_skimage=extra, extra_frames=args.extra_frames,
                        progress=_progress(args))
    rows, meta = load_dataset(out)
    n_extra = sum(r["train_only"] for r in rows)
    print(f"{len(rows)} labelled frames of {len({r['video'] for r in rows})} videos -> {out}/labels.csv "
          f"(target {meta['target']}, log Q)" + (f"; {n_extra} of them training-only (extra clips)" if n_extra else ""))
    return 0


def cmd_train_nr(args: argparse.Namespace) -> int:
    from .model import NRConfig
    from .train import TrainConfig, train

    cfg = TrainConfig(split=args.split, fold=args.fold, frame_step=args.frame_step,
                      variants=tuple(v for v in (args.variants or "").split(",") if v),
                      variant_step=args.variant_step, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, crops=args.crops, workers=args.workers,
                      seed=args.seed, model=NRConfig(width=args.width))
    model = train(args.data, args.out, cfg, resume=args.resume, progress=_progress(args),
                  log=lambda m: print(m, file=sys.stderr))
    if args.split == "all":  # nothing held out: the interval comes from fold models (calibrate-nr --from-folds)
        print(f"not calibrated: --split all holds nothing out; calibrate it with `dctqa calibrate-nr {args.out} "
              f"--data {args.data} --from-folds FOLD.pt ...` (one --split unseen model per video)", file=sys.stderr)
    elif not args.no_calibrate:  # the 90 % interval, on half of the held-out windows (dctqa.nr.calibrate)
        from .calibrate import calibrate_checkpoint

        calibrate_checkpoint(args.out, args.data, log=lambda m: print(m, file=sys.stderr))
    s = model.prov.split
    print(f"trained on {s['train_frames']} frames ({args.split}{'/' + args.fold if args.fold else ''}); "
          f"{s['test_frames']} held-out frames; checkpoint {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..fileio import OutputSet
    from ..io import probe
    from ..log import csv_text, json_text, log_to_rows
    from .default import default_model_path
    from .onnx_model import create
    from .predict import prediction_log, predict_video, resolve_options

    with OutputSet(inputs=[args.video, args.model or default_model_path()]) as outputs:
        for path in (args.json, args.csv):  # checked before any frame is predicted
            if path is not None:
                outputs.add(path)
        info = probe(args.video)
        # no --model: the shipped default (dctqa.nr.default); .onnx: onnxruntime
        model = create(args.model, backbone=args.backbone, device=args.device)
        patches, sampling = resolve_options(model, args.patches, args.sampling)  # the model's when not given
        model.check_options(patches=patches, sampling=sampling, height=info.height, width=info.width)
        pred = predict_video(model, args.video, patches=patches, sampling=sampling, seed=args.seed,
                             frame_stride=args.frame_stride, max_frames=args.max_frames, progress=_progress(args))
        log = prediction_log(model, pred, args.video, patches, sampling, args.seed)
        if args.json:
            outputs.write_text(args.json, json_text(log))
        if args.csv:
            outputs.write_text(args.csv, csv_text(log_to_rows(log, metric="dctqa_nr")))
    pool = log["pooled_metrics"]["dctqa_nr"]
    print(f"dctqa_nr (no reference, model {log['params']['model']}, trained for metric "
          f"v{model.prov.metric_version}, backbone {model.prov.backbone})  sampling={sampling} patches={patches}")
    print(f"frames: {len(pred.q)}  predicted Q mean {pool['mean']:.4f}  min {pool['min']:.4f}  max {pool['max']:.4f}"
          f"  ({len(pred.q) / max(pred.seconds, 1e-9):.1f} frames/s)")
    return 0


def cmd_calibrate_nr(args: argparse.Namespace) -> int:
    from .calibrate import calibrate_from_folds

    cal = calibrate_from_folds(args.model, args.data, args.from_folds, args.out, frame_step=args.frame_step,
                               patches=args.patches, sampling=args.sampling, log=lambda m: print(m, file=sys.stderr))
    print(f"{args.out or args.model}: {1 - cal['alpha']:.0%} interval from {len(cal['folds'])} folds "
          f"({cal['frames']} held-out frames): half-width {cal['quantile_log_q']:.4f} in log Q, "
          f"quantile_z {cal['quantile_z']:.4f}, for {cal['patches']} {cal['sampling']} patch(es)")
    for f in cal["leave_one_fold_out"]:
        cov = "n/a" if f["coverage"] is None else f"{f['coverage']:.1%}"
        print(f"  {f['video']}: coverage {cov} of {f['frames']} frames by the other folds' interval")
    return 0


def _register_predict(sub) -> None:
    """Add ``predict`` (no ``--model``: the shipped default model, :mod:`dctqa.nr.default`)."""
    p = sub.add_parser("predict", help="no-reference Q of a compressed video (no reference needed)")
    p.add_argument("video", help="compressed video or image")
    p.add_argument("--model", default=None, help="checkpoint from `dctqa train-nr`, or its `dctqa export-nr` ONNX "
                                                 "file (default: the shipped default model)")
    p.add_argument("--patches", type=bounded_int(1, MAX_PATCHES), default=None,
                   help=f"224x224 patches per frame, 1..{MAX_PATCHES} (default: the model's recommendation: the "
                        "default model's record, an ONNX export's metadata, else 2)")
    p.add_argument("--sampling", default=None, choices=("activation", "uniform", "grid"),
                   help="patch placement (default: the model's recommendation, else activation)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="seed of the patch draws")
    p.add_argument("--json", metavar="PATH", help="write the per-frame log (libvmaf JSON layout)")
    p.add_argument("--csv", metavar="PATH", help="write per-frame predictions as CSV")
    p.add_argument("--frame-stride", type=positive_int, default=1, help="predict every N-th frame")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many predicted frames")
    p.add_argument("--backbone", default=None, help="refuse the model unless it was trained for this backbone")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def _register_calibrate_nr(sub) -> None:
    """Add ``calibrate-nr`` (the interval of a model from its folds, :mod:`dctqa.nr.calibrate`)."""
    p = sub.add_parser("calibrate-nr", help="calibrate a no-reference model's 90 %% interval from its "
                                             "leave-one-video-out fold models")
    p.add_argument("model", help="checkpoint to calibrate (e.g. `dctqa train-nr --split all`)")
    p.add_argument("--data", required=True, help="the nr-data folder the model and its folds were trained on")
    p.add_argument("--from-folds", required=True, nargs="+", metavar="FOLD",
                   help="--split unseen checkpoints of the same configuration, one per held-out video")
    p.add_argument("--frame-step", type=positive_int, default=None,
                   help="use held-out frames whose number is a multiple of N (default: each fold's training step)")
    p.add_argument("--patches", type=bounded_int(1, MAX_PATCHES), default=2,
                   help="patches per frame the residuals are predicted with: the model's intended use (default 2)")
    p.add_argument("--sampling", default="activation", choices=("activation", "uniform", "grid"),
                   help="patch placement the residuals are predicted with (default activation)")
    p.add_argument("--out", default=None, help="write the calibrated checkpoint here (default: replace MODEL)")
    p.set_defaults(func=cmd_calibrate_nr)


def cmd_export_nr(args: argparse.Namespace) -> int:
    from .export import export_onnx

    out = export_onnx(args.model, args.onnx, patches=args.patches, sampling=args.sampling, opset=args.opset)
    print(f"exported the network of {args.model} -> {out} (ONNX opset {args.opset}; patch sampling stays in "
          f"dctqa's op: `dctqa predict VIDEO --model {out}`)")
    return 0


def cmd_eval_nr(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    evaluate(args.models, args.data, args.out, windows_csv=args.windows, frame_step=args.frame_step,
             ablation_step=args.ablation_step, n_boot=args.n_boot, progress=_progress(args),
             ablations=not args.no_ablations, jobs=args.jobs, variant_step=args.variant_step,
             paired_with=args.paired_with)
    print(f"wrote {args.out}/nr_results.md, frames.csv, metrics.csv, windows.csv, ablations.csv, coverage.csv, "
          "seeds.csv, placement.csv, placement.json" + (", paired.csv" if args.paired_with else ""))
    return 0


def _register_export_nr(sub) -> None:
    """Add ``export-nr`` (the network as ONNX, :mod:`dctqa.nr.export`)."""
    p = sub.add_parser("export-nr", help="write a no-reference checkpoint's network as ONNX (for onnxruntime)")
    p.add_argument("model", help="checkpoint from `dctqa train-nr`")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write (replaced if it exists)")
    p.add_argument("--patches", type=bounded_int(1, MAX_PATCHES), default=2,
                   help="patches per frame recorded as the model's recommended setting (default 2)")
    p.add_argument("--sampling", default="activation", choices=("activation", "uniform", "grid"),
                   help="placement recorded as the model's recommended setting (default activation)")
    p.add_argument("--opset", type=bounded_int(13, 21), default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export_nr)


def register(sub) -> None:
    """Add the no-reference subcommands to the ``dctqa`` parser."""
    p = sub.add_parser("nr-data", help="labelled frames for the no-reference model (study encode + score stages)")
    p.add_argument("videos", nargs="+", help="source videos (as for `dctqa study`)")
    p.add_argument("--out", required=True, help="output folder; a hard-link copy of a study's --out reuses its caches")
    p.add_argument("--backbone", default=None, help="backbone of the target Q (default: YOLOX-Nano ONNX)")
    p.add_argument("--metric-stride", type=positive_int, default=4, help="label every N-th frame (default 4)")
    p.add_argument("--labels", metavar="CSV", help="take Q from a study's frames.csv instead of the score stage")
    p.add_argument("--extra-skimage", metavar="NAMES",
                   help="add training-only pan clips over these scikit-image photographs (comma-separated, "
                        "or 'all': astronaut, chelsea, coffee, hubble_deep_field, immunohistochemistry, "
                        "motorcycle, retina, rocket), encoded and scored like the videos")
    p.add_argument("--extra-frames", type=positive_int, default=40, help="frames per extra clip (default 40, as the demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_nr_data)

    p = sub.add_parser("train-nr", help="train the no-reference model on an nr-data folder")
    p.add_argument("data", help="folder written by `dctqa nr-data`")
    p.add_argument("--split", required=True, choices=("unseen", "seen", "random", "all"),
                   help="unseen: leave --fold video out; seen: every 4th 100-frame window held out "
                        "(10-frame gaps); random: the paper's leaky random-frame protocol; all: train on "
                        "everything, hold nothing out (calibrate with calibrate-nr --from-folds)")
    p.add_argument("--fold", help="held-out video stem (unseen split)")
    p.add_argument("--out", required=True, help="checkpoint path (written after every epoch)")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--batch-size", type=bounded_int(1, 4096), default=32)
    p.add_argument("--lr", type=finite_float(0.0, 10.0, low_open=True), default=1e-3)
    p.add_argument("--width", type=finite_float(0.0, 4.0, low_open=True), default=0.25, help="channel scale of AlexNet (1.0 = full, for a GPU)")
    p.add_argument("--frame-step", type=positive_int, default=4, help="train on frames whose number is a multiple of N")
    p.add_argument("--variants", help="comma-separated variant names to train on (default: all)")
    p.add_argument("--variant-step", type=positive_int, default=1,
                   help="train on every N-th variant of each video (names sorted; default 1 = all)")
    p.add_argument("--crops", type=positive_int, default=2, help="random crops per decoded frame (default 2)")
    p.add_argument("--workers", type=bounded_int(0, 256), default=1, help="DataLoader worker processes (default 1)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--no-calibrate", action="store_true",
                   help="skip the 90 %% interval's calibration on half of the held-out windows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_nr)

    _register_predict(sub)

    _register_calibrate_nr(sub)
    _register_export_nr(sub)

    p = sub.add_parser("eval-nr", help="evaluate no-reference checkpoints on their held-out frames")
    p.add_argument("models", nargs="+", help="checkpoints (each evaluated on its own split's test frames; those of "
                                             "one split and fold with other seeds are aggregated in seeds.csv)")
    p.add_argument("--data", required=True, help="the nr-data folder they were trained on")
    p.add_argument("--out", required=True, help="output folder for the tables")
    p.add_argument("--windows", help="the study's windows.csv (AP per window) for the window-level table")
    p.add_argument("--frame-step", type=positive_int, default=16, help="evaluate frames whose number is a multiple of N")
    p.add_argument("--ablation-step", type=positive_int, default=64,
                   help="placement ablation (activation/uniform/grid x 1/2/4 patches, all on the same frames): "
                        "the test frames whose number is a multiple of N (default 64)")
    p.add_argument("--variant-step", type=positive_int, default=1, help="evaluate every N-th variant of each video")
    p.add_argument("--n-boot", type=bounded_int(10, 1_000_000), default=500, help="bootstrap resamples of content windows")
    p.add_argument("--paired-with", metavar="CSV",
                   help="an earlier eval-nr frames.csv: paired SROCC difference for models of the same split "
                        "on the same frames (paired.csv)")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=1, help="checkpoints evaluated in parallel processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_nr)
