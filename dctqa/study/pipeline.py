"""The study: encode -> score -> detect -> AP per window -> tables -> report.

Every expensive step is a named stage cached under ``<out>/cache`` (see
:mod:`dctqa.study.stages`), keyed by the content hashes of the videos involved and every
setting that changes the result, so a rerun (or a run with more videos) reuses all
finished work. The statistics are in :mod:`dctqa.study.analysis`. Every stage is a
function ``stage(run)`` of one :class:`dctqa.study.run.StudyRun`; :func:`study_stages` is the
pipeline's tuple of them, which numbers their progress lines ("study: stage i/N ...").

Stages per source video: ``encode`` (all variants), per variant ``score`` (per-frame
values of every dctqa configuration and every baseline, on frames ``0, s, 2s, ...`` with
``s = metric_stride``), ``detect`` (the detector on the reference and on each variant,
every ``frame_stride``-th frame; cached by :func:`dctqa.study.detect.cache.cached_detect`) and
``ap`` (AP50 and AP@[.5:.95] per window of ``window`` source frames against pseudo ground
truth: the reference's detections scoring at least ``gt_score_threshold``; predictions
below ``pred_score_threshold`` dropped).  With ``nr_model`` (a no-reference checkpoint), the
``nr`` stage adds the predicted Q ``dctqa_nr`` of each variant's scored frames
(:mod:`dctqa.study.noref`; the checkpoint is checked before any encoding).  Then the window
table, the analysis (cached on the table's content), the threshold sensitivity grid (AP again
from the cached detections) and the report.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VideoError
from ..fileio import OutputSet, check_output_dir, strict_json
from .codec import EncodeSettings, Variant, encode_sweep, read_manifest, write_reference
from .config import StudyConfig
from .noref import load_nr_model, nr_stage
from .run import STAGE_EXECUTOR, Stage, StudyRun, run_stages
from .scoring import NR_COLUMN, init_score_worker, score_pair
from .stages import StageCache


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the window table rows, the correlation rows,
    per-frame values (video -> variant -> column -> array), variants, timings, paths."""

    windows: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    frames: dict[str, dict[str, dict[str, np.ndarray]]]
    variants: dict[str, list[Variant]]
    metric_columns: list[str]
    timings: dict[str, dict[str, float]]
    report: Path
    out: Path
    analysis: Any = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def study_stages(run: StudyRun) -> tuple[Stage, ...]:
    """The stages of ``dctqa study`` in order (their positions number the progress lines):
    encode, score, the no-reference prediction (only with a model), detect + AP, then the
    tables and the report together."""
    nr = (nr_prediction_stage,) if run.nr_model is not None else ()
    return (encode_stage, score_stage, *nr, detect_ap_stage, tables_and_report_stage)


def run_study(cfg: StudyConfig) -> StudyResult:
    """Run (or resume) the whole study described by ``cfg``; see the module docstring.

    Writes under ``cfg.out``: ``variants/`` (encoded videos), ``cache/`` (stages),
    ``windows.csv`` (with duplicate marks), ``correlations.csv`` (pooled), ``within.csv``
    (within content window / video), ``differences.csv`` (paired differences and verdicts),
    ``sensitivity.csv`` (threshold grid; its header alone when the grid is empty and the stage
    skipped), ``variants.csv``, ``frames.csv``, ``plots/*.png``
    and ``report.md``.  Returns a :class:`StudyResult`. The stages, in order
    (:func:`study_stages`): :func:`encode_stage`, :func:`score_stage`,
    :func:`nr_prediction_stage` (with ``cfg.nr_model``, whose checkpoint is loaded and checked
    first, before any output), :func:`detect_ap_stage`, :func:`tables_and_report_stage`
    (:func:`tables_stage`, :func:`report_stage`); each announces itself ("study: stage i/N
    ...") when ``cfg.progress``.
    """
    t_start = time.perf_counter()
    nr_model = _load_nr_model(cfg)  # a bad checkpoint fails here, before any output
    check_study_inputs(cfg)
    with OutputSet(inputs=cfg.videos) as outputs:  # on failure: the folder goes if nothing finished in it
        outputs.make_dir(cfg.out, keep_work=True)
        run = StudyRun.start(cfg, nr_model)
        run.started = t_start
        return run_stages(run, study_stages(run)).result


def check_study_inputs(cfg: StudyConfig) -> None:
    """Every check of ``cfg`` that needs no work, before the first output: the backbones
    and the detector (names, ONNX files), the detector's weights file, the device, and the
    output folder, which may not be one of the videos. Raises :class:`InputError`."""
    from ..backbones import check_backbone
    from ..metric import check_device
    from .detect import check_detector

    for b in cfg.backbones:
        check_backbone(b)
    if isinstance(cfg.detector, str):
        check_detector(cfg.detector, cfg.detector_weights, cfg.device)
    else:
        check_device(cfg.device)
    check_output_dir(cfg.out)


def _load_nr_model(cfg: StudyConfig) -> Any:
    """The ``dctqa_nr`` metric of ``cfg.nr_model`` (``None`` without one), checked against the
    study's backbones, the settings and every video's frame size: a bad checkpoint or setting
    fails here, before any encoding."""
    if cfg.nr_model is None:
        return None
    from ..io import probe

    sizes = list(dict.fromkeys((i.height, i.width) for i in map(probe, cfg.videos)))
    return load_nr_model(cfg.nr_model, cfg.backbones, patches=cfg.nr_patches,
                         sampling=cfg.nr_sampling, frame_sizes=sizes, device=cfg.device)


# ----------------------------------------------------------------------------- encode

def encode_stage(run: StudyRun) -> None:
    """The encode stage: every variant of every video of ``run.cfg`` (cached). Fills
    ``run.variants`` and ``run.refs`` (the reference each variant is scored against) per
    video stem, and ``run.hashes`` (the reference's sha256 per stem). With a
    :data:`~dctqa.study.run.STAGE_EXECUTOR`, each video missing from the cache is encoded
    (all its variants, in one decoding pass) by an :func:`encode_job` there."""
    from ..fileio import file_sha256

    cfg = run.cfg
    shas = {video: file_sha256(video, memo_dir=run.cache_root) for video in cfg.videos}
    done = _encode_in_workers(run, shas) if STAGE_EXECUTOR.get() is not None else {}
    for video in cfg.videos:
        sha = shas[video]
        run.hashes[video.stem] = sha
        vdir = _variant_dir(cfg, video, sha)
        t0 = time.perf_counter()
        run.variants[video.stem], computed_s = _encoded_variants(run, video, vdir, sha, done.get(video))
        run.add_time("encode", computed_s, done[video][1] if video in done else time.perf_counter() - t0)
        _warn_short(run, video, run.variants[video.stem])
        if cfg.encode.max_frames is not None:  # trimmed study: a lossless copy of the first frames is the reference
            ref = vdir / f"reference-{cfg.encode.max_frames}.mkv"
            if not ref.is_file():
                write_reference(video, ref, cfg.encode.max_frames)
            run.refs[video.stem] = ref
            run.hashes[video.stem] = file_sha256(ref, memo_dir=run.cache_root)
        else:
            run.refs[video.stem] = video


def _warn_short(run: StudyRun, video: Path, variants: list[Variant]) -> None:
    """Warn (:meth:`StudyRun.warn`) when ``video`` has fewer frames than ``--max-frames`` asked for."""
    asked = run.cfg.encode.max_frames
    if variants and asked is not None and variants[0].frames < asked:
        n = variants[0].frames
        run.warn(f"{video.name} has {n} frames, fewer than the {asked} asked for (--max-frames); "
                 f"the {run.label} uses all {n}")


def _warn_cut_short(run: StudyRun) -> None:
    """Warn (:meth:`StudyRun.warn`) for each video of the window table ``run.windows`` whose
    last AP window is cut short (fewer source frames than ``cfg.window``): such windows are
    marked (``window_frames``) and left out of the statistics
    (:func:`dctqa.study.analysis.select_rows`)."""
    from .analysis import is_cut_short

    names = {v.stem: v.name for v in run.cfg.videos}
    for r in {r["video"]: r for r in run.windows if is_cut_short(r)}.values():
        start, n = r["window_start"], r["window_start"] + r["window_frames"]
        run.warn(f"{names.get(r['video'], r['video'])}: its last AP window (frames {start}-{n - 1}) holds "
                 f"{n - start} of {r['window_end'] - start} frames; it is marked cut short (window_frames in "
                 "windows.csv) and left out of the statistics"
                 + (" (the video is shorter than one window: no window of it counts)" if start == 0 else ""))


def _variant_dir(cfg: StudyConfig, video: Path, sha: str) -> Path:
    """The folder of the variants of ``video`` (content sha256 ``sha``)."""
    return cfg.out / "variants" / f"{video.stem}-{sha[:10]}"


def _encode_key(cfg: StudyConfig, sha: str) -> dict:
    return {"stage": "encode", "source_sha256": sha, "settings": cfg.encode.to_dict()}


def encode_job(src: str, out_dir: str, settings: EncodeSettings) -> tuple[list[str], float]:
    """The encode stage's work on one video, as a worker runs it (module-level, plain
    arguments): :func:`dctqa.study.codec.encode_sweep` of ``src`` into ``out_dir`` with the
    :class:`~dctqa.study.codec.EncodeSettings` ``settings`` (its files all or none). Returns
    the variants' names and the seconds it took."""
    t0 = time.perf_counter()
    names = [v.name for v in encode_sweep(src, out_dir, settings)]
    return names, time.perf_counter() - t0


def _stage_executor(run: StudyRun):
    """An executor for the stages' jobs: :data:`STAGE_EXECUTOR`'s, else ``cfg.jobs`` local
    processes; each worker runs ``cpu_count // jobs`` torch threads."""
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // run.cfg.jobs)
    executor = STAGE_EXECUTOR.get() or ProcessPoolExecutor
    return executor(max_workers=run.cfg.jobs, initializer=init_score_worker, initargs=(threads,))


def _encode_in_workers(run: StudyRun, shas: dict[Path, str]) -> dict[Path, tuple[list[str], float]]:
    """Encode, with :func:`_stage_executor`, every video of ``shas`` (video -> content sha256)
    whose encode result is not cached: video -> :func:`encode_job`'s result."""
    cfg = run.cfg
    todo = [(v, sha) for v, sha in shas.items() if not run.cache.has_document("encode", _encode_key(cfg, sha))]
    done: dict[Path, tuple[list[str], float]] = {}
    if not todo:
        return done
    run.announce(f"encode {len(todo)} of {len(shas)} video(s) in workers")
    with run.bar(len(todo), "encode", unit="video") as bar, _stage_executor(run) as ex:
        futs = [(v, ex.submit(encode_job, str(v), str(_variant_dir(cfg, v, sha)), cfg.encode)) for v, sha in todo]
        for v, fut in futs:
            done[v] = fut.result()
            bar.update(1)
    return done


def _encoded_variants(run: StudyRun, video: Path, vdir: Path, sha: str,
                      done: tuple[list[str], float] | None = None) -> tuple[list[Variant], float]:
    """The variants of one video (encoded into ``vdir`` unless the cache and the files are
    there, or ``done``: what :func:`encode_job` returned for them) and the seconds their
    encoding took."""
    cfg = run.cfg
    key = _encode_key(cfg, sha)

    def do_encode() -> list[str]:
        from ..io import probe

        n = probe(video).frames or 0
        total = n if cfg.encode.max_frames is None else min(n, cfg.encode.max_frames)
        run.announce(f"encode {video.name} ({total} frames, {len(cfg.videos)} video(s) in the study)")
        with run.bar(total, f"encode {video.name}", unit="frame") as bar:
            vs = encode_sweep(video, vdir, cfg.encode, progress=bar.update)
        return [v.name for v in vs]

    if done is not None:  # encoded by a worker: the files are in place
        names, meta = run.cache.document("encode", key, lambda: done[0], seconds=done[1])
    else:
        names, meta = run.cache.document("encode", key, do_encode)
    vs = read_manifest(vdir / "variants.json") if (vdir / "variants.json").is_file() else []
    if meta["cached"] and ([v.name for v in vs] != names or not all(v.path.is_file() for v in vs)):
        run.cache.misses["encode"] = run.cache.misses.get("encode", 0) + 1
        vs = encode_sweep(video, vdir, cfg.encode)  # files removed since: encode again
    return vs, meta["seconds"]


# ----------------------------------------------------------------------------- score

def score_stage(run: StudyRun) -> None:
    """The score stage: per-frame values of every metric (:func:`dctqa.study.scoring.score_pair`)
    for every variant of the run into ``run.frames`` (video stem -> variant name -> column ->
    array; cached per variant; ``cfg.jobs`` worker processes, or the
    :data:`~dctqa.study.run.STAGE_EXECUTOR`'s workers, compute the missing ones)."""
    cfg, cache = run.cfg, run.cache
    jobs = [(stem, v, run.score_key(stem, v)) for stem, v in run.pairs()]
    pending = []
    workers = cfg.jobs > 1 or STAGE_EXECUTOR.get() is not None
    run.announce(f"score every metric on {len(jobs)} variants")
    with run.bar(len(jobs), "score", unit="variant") as bar:
        for stem, v, key in jobs:
            args = (str(run.refs[stem]), str(v.path), run.specs, cfg.baselines, cfg.metric_stride, cfg.device,
                    cfg.batch_size, cfg.detector_weights)
            t0 = time.perf_counter()
            hit = cache.cached_arrays("score", key) if workers else None
            if workers and hit is None:  # computed by a worker below
                pending.append((stem, v.name, key, args))
                continue
            arrs, meta = hit or cache.timed_arrays("score", key, lambda args=args: score_pair(*args))
            _account_score(run, meta, time.perf_counter() - t0)
            run.frames.setdefault(stem, {})[v.name] = arrs
            bar.update(1)
        if pending:
            _score_in_workers(run, pending, bar.update)


def _score_in_workers(run: StudyRun, pending: list[tuple], update) -> None:
    """Score ``pending`` (stem, variant name, key, args) in workers (:func:`_stage_executor`),
    storing each result in the stage cache and ``run.frames``."""
    with _stage_executor(run) as ex:
        futs = [(stem, name, key, ex.submit(score_pair, *args), time.perf_counter())
                for stem, name, key, args in pending]
        for stem, name, key, fut, t0 in futs:
            res = fut.result()
            arrs, meta = run.cache.timed_arrays("score", key, lambda res=res: res)
            meta["seconds"] = time.perf_counter() - t0
            _account_score(run, meta, time.perf_counter() - t0)
            run.frames.setdefault(stem, {})[name] = arrs
            update(1)


def _account_score(run: StudyRun, meta: dict, wall: float) -> None:
    t = meta.get("timings", {})
    for part in ("decode", "metric", "baselines"):
        run.add_time(part, float(t.get(part, 0.0)), float(t.get(part, 0.0)) if not meta["cached"] else 0.0)
    if meta["cached"]:
        run.add_time("cache_load", 0.0, wall)


def nr_prediction_stage(run: StudyRun) -> None:
    """The ``nr`` stage: ``dctqa_nr`` of every variant's scored frames into ``run.frames``
    (:func:`dctqa.study.noref.nr_stage`; cached per variant and checkpoint)."""
    cfg = run.cfg
    n = len(run.pairs())
    run.announce(f"no-reference prediction ({NR_COLUMN}, {cfg.nr_patches} {cfg.nr_sampling} patches per frame) "
                 f"on {n} variants")
    with run.bar(n, NR_COLUMN, unit="variant") as bar:
        nr_stage(run, on_step=bar.update)


# ----------------------------------------------------------------------------- detect + AP

def detect_ap_stage(run: StudyRun) -> None:
    """The detect + AP stage at the study's score thresholds: the window table's rows into
    ``run.windows`` (:func:`ap_table`). With a :data:`~dctqa.study.run.STAGE_EXECUTOR` and a
    detector given by name, the detections missing from the cache are computed first, one
    :func:`detection_job` per video (each reference and each variant) there."""
    cfg = run.cfg
    n_variants = len(run.pairs())
    run.announce(f"detect and AP per window ({n_variants} variants and {len(run.variants)} reference(s))")
    if STAGE_EXECUTOR.get() is not None and isinstance(cfg.detector, str):
        _detect_in_workers(run)
    with run.bar(n_variants + len(run.variants), "detect+AP", unit="step") as bar:
        run.windows = ap_table(run, cfg.gt_score_threshold, cfg.pred_score_threshold, on_step=bar.update)
    _warn_cut_short(run)


#: Detectors built by :func:`detection_job` in this process, by (name, weights, device).
_JOB_DETECTORS: dict[tuple, Any] = {}


def detection_job(name: str, weights: str | None, device: str, video_path: str, frame_stride: int,
                  torch_threads: int, batch_size: int = 8) -> tuple[dict[str, np.ndarray], float]:
    """The detect stage's work on one video, as a worker runs it (module-level, plain arguments):
    detector ``name`` built as :meth:`StudyRun.detector` builds it (:func:`dctqa.study.detect.create_detector`
    with ``weights`` and ``device`` only; kept for the process's later calls), then
    :func:`dctqa.study.detect.cache.detection_arrays` of every ``frame_stride``-th frame,
    ``batch_size`` frames per call (as :func:`_ap_stage`'s :func:`~dctqa.study.detect.cache.cached_detect`),
    with ``torch_threads`` torch threads (the driver's: torch's resize in the detectors'
    letterboxing rounds differently with another thread count; onnxruntime's own threads do
    not change the detections). Returns ``(arrays, seconds)``."""
    import torch

    from .detect import create_detector
    from .detect.cache import detection_arrays

    t0 = time.perf_counter()
    detector = _JOB_DETECTORS.get((name, weights, device))
    if detector is None:
        detector = _JOB_DETECTORS.setdefault((name, weights, device),
                                             create_detector(name, weights=weights, device=device))
    before = torch.get_num_threads()
    torch.set_num_threads(int(torch_threads))
    try:
        arrays = detection_arrays(detector, video_path, frame_stride, batch_size=batch_size)
    finally:
        torch.set_num_threads(before)
    return arrays, time.perf_counter() - t0


def _detect_in_workers(run: StudyRun) -> None:
    """Detections of every video whose main-table AP is not cached (its reference and itself)
    and whose detections are not either, by :func:`detection_job` in :func:`_stage_executor`
    with this process's torch threads (what the detections here would use); the driver stores
    them in the detection cache, where :func:`_ap_stage` then finds them."""
    import torch

    from .detect.cache import lookup_detections, store_detections

    cfg, detector, root = run.cfg, run.detector(), run.cache_root
    thr = (cfg.gt_score_threshold, cfg.pred_score_threshold)
    videos = [p for stem, v in run.pairs() if not run.cache.has_document("ap", _ap_key(run, stem, v, *thr))
              for p in (run.refs[stem], v.path)]
    todo = [p for p in dict.fromkeys(videos) if lookup_detections(detector, p, cfg.frame_stride, root) is None]
    if not todo:
        return
    with run.bar(len(todo), "detect", unit="video") as bar, _stage_executor(run) as ex:
        futs = [(p, ex.submit(detection_job, cfg.detector, cfg.detector_weights, cfg.device, str(p),
                              cfg.frame_stride, torch.get_num_threads())) for p in todo]
        for p, fut in futs:
            arrays, seconds = fut.result()
            store_detections(detector, p, cfg.frame_stride, root, arrays)
            run.add_time("detection", seconds, seconds)
            bar.update(1)


def ap_table(run: StudyRun, gt_thr: float, pred_thr: float, on_step=None, main: bool = True
             ) -> list[dict[str, Any]]:
    """The window table at one pair of score thresholds: detections of every reference and
    variant (detection cache), AP per content window (stage cache), joined with the metric
    values of ``run.frames``. ``main=False``: a threshold-sensitivity table (its time counted
    apart). ``on_step(1)`` after each variant and each video."""
    from .tables import window_rows

    rows: list[dict[str, Any]] = []
    columns = [s.column for s in run.specs] + run.nr_columns
    for stem, vs in run.variants.items():
        for v in vs:
            t0 = time.perf_counter()
            res, meta = _ap_stage(run, stem, v, gt_thr, pred_thr)
            dt = time.perf_counter() - t0
            detect_now = res["detect_s"] if not meta["cached"] else 0.0
            if main:
                run.add_time("detection", res["detect_s"], detect_now)
                run.add_time("ap", res["ap_s"], dt - detect_now)
            else:  # the sensitivity grid: detections are already cached by the main table
                run.add_time("sensitivity_ap", res["ap_s"] + res["detect_s"], dt)
            rows.extend(window_rows(stem, v, res["windows"], run.frames[stem][v.name], columns,
                                    list(run.cfg.baselines)))
            if on_step:
                on_step(1)
        if on_step:
            on_step(1)
    return rows


def _ap_stage(run: StudyRun, stem: str, v: Variant, gt_thr: float, pred_thr: float) -> tuple[dict, dict]:
    """Cached AP per window of one variant at the given ground-truth and prediction score
    thresholds -> ({"windows": [WindowAP as dict], "detect_s", "ap_s"}, meta). Detections
    come from the detection cache; the prediction threshold filters them afterwards (a
    threshold of 0 keeps them all and leaves the stage key as before the option existed);
    ``cfg.classes`` restricts ground truth and AP to those COCO classes."""
    from .detect.ap import window_ap
    from .detect.cache import cached_detect
    from .detect.groundtruth import pseudo_ground_truth

    cfg, detector, ref, root = run.cfg, run.detector(), run.refs[stem], run.cache_root
    key = _ap_key(run, stem, v, gt_thr, pred_thr)

    def do_ap():
        from ..io import probe

        t0 = time.perf_counter()
        fi_r, ref_dets = cached_detect(detector, ref, cfg.frame_stride, cache_dir=root)
        fi_d, dets = cached_detect(detector, v.path, cfg.frame_stride, cache_dir=root)
        t1 = time.perf_counter()
        if not np.array_equal(fi_r, fi_d):
            raise VideoError(f"{v.path.name}: {len(fi_d)} sampled frames, reference {len(fi_r)}")
        gt = pseudo_ground_truth(ref_dets, gt_thr, categories=cfg.classes)
        if pred_thr > 0:
            dets = [d.select(d.scores >= pred_thr) for d in dets]
        info = probe(ref)
        wins = window_ap(gt, dets, fi_d, window=cfg.window, image_size=(info.height, info.width),
                         categories=cfg.classes)
        return {"windows": [asdict(w) for w in wins], "detect_s": t1 - t0, "ap_s": time.perf_counter() - t1}

    return run.cache.document("ap", key, do_ap)


def _ap_key(run: StudyRun, stem: str, v: Variant, gt_thr: float, pred_thr: float) -> dict:
    """The ``ap`` stage's key of variant ``v`` of video ``stem`` at the given score thresholds."""
    from .detect.cache import cache_key
    from ..fileio import file_sha256

    cfg, detector = run.cfg, run.detector()
    vsha = file_sha256(v.path, memo_dir=run.cache_root)
    key = {"stage": "ap", "ref_det": cache_key(run.hashes[stem], detector, cfg.frame_stride),
           "dist_det": cache_key(vsha, detector, cfg.frame_stride), "window": cfg.window,
           "gt_score_threshold": gt_thr}
    if pred_thr > 0:
        key["pred_score_threshold"] = pred_thr
    if cfg.classes is not None:  # every class: the key as before the option existed
        key["classes"] = list(cfg.classes)
    return key


# ----------------------------------------------------------------------------- tables and report

def tables_and_report_stage(run: StudyRun) -> None:
    """The last stage: :func:`tables_stage`, then :func:`report_stage`."""
    cfg = run.cfg
    grid = len(cfg.sensitivity_gt) * len(cfg.sensitivity_pred)
    run.announce(f"correlations ({cfg.n_boot} bootstrap resamples), "
                 f"{f'threshold sensitivity ({grid} AP tables), ' if grid else 'no threshold sensitivity (empty grid), '}"
                 "tables and report")
    tables_stage(run)
    report_stage(run)


def _metric_columns(run: StudyRun) -> list[str]:
    return [s.column for s in run.specs] + run.nr_columns + [c for b in run.cfg.baselines
                                                               for c in (["psnr", "psnr_global"] if b == "psnr" else [b])]


#: Why the threshold-sensitivity stage is skipped when its grid is empty.
NO_GRID = "no threshold grid: --sensitivity-gt or --sensitivity-pred is empty"


def tables_stage(run: StudyRun) -> None:
    """The tables: correlations, within-content statistics and paired differences (cached on
    the window table) into ``run.analysis``, and the threshold-sensitivity grid (each grid
    point's AP table from :func:`ap_table`) into ``run.sensitivity``."""
    from . import report as report_mod
    from .analysis import headline

    cfg = run.cfg
    t0 = time.perf_counter()
    settings = _analysis_settings(cfg, _metric_columns(run))
    stems = [v.stem for v in cfg.videos]
    run.analysis = _cached_analysis(run.cache, run.windows, stems, settings)
    run.add_time("correlations", run.analysis.extra_meta["seconds"], time.perf_counter() - t0)
    if not cfg.sensitivity_gt or not cfg.sensitivity_pred:
        run.sensitivity = []
        run.cache.skip("sensitivity", NO_GRID)
        return
    t0 = time.perf_counter()
    main = (cfg.gt_score_threshold, cfg.pred_score_threshold)
    sens_tables = {(g, p): (run.windows if (g, p) == main else ap_table(run, g, p, main=False))
                   for g in cfg.sensitivity_gt for p in cfg.sensitivity_pred}
    key = {"stage": "sensitivity", "tables": [[g, p, _sha(report_mod.rows_to_csv(t))] for (g, p), t in
                                              sens_tables.items()], "settings": _settings_key(settings)}
    run.sensitivity, meta = run.cache.document("sensitivity", key, lambda: [
        dict(gt_score=g, pred_score=p, **h) for (g, p), t in sens_tables.items()
        for h in headline(t, stems, settings)])
    run.add_time("correlations", meta["seconds"], time.perf_counter() - t0)


def report_stage(run: StudyRun) -> None:
    """The report: the CSV tables (a table without rows: its header), ``report.md`` (with plots)
    and ``timings.json`` (strict JSON; ``total_wall`` has no ``computed_s``: ``null``), all or
    none; the :class:`StudyResult` into ``run.result``. The report's time table shows the
    numbers of ``timings.json`` (both are taken once every other part of the report is done)."""
    from . import report as report_mod

    out, timings, analysis, cols = run.cfg.out, run.timings, run.analysis, _metric_columns(run)
    t0 = time.perf_counter()
    result = StudyResult(windows=analysis.rows, correlations=analysis.correlations, frames=run.frames,
                         variants=run.variants, metric_columns=cols, timings=timings,
                         report=out / "report.md", out=out, analysis=analysis, sensitivity=run.sensitivity,
                         notes=run.notes)
    with OutputSet(inputs=run.cfg.videos) as outputs:  # the tables, report.md and timings.json: all or none
        for name, rows in (("windows", analysis.rows), ("correlations", analysis.correlations),
                           ("within", analysis.within), ("differences", analysis.differences),
                           ("sensitivity", run.sensitivity), ("variants", report_mod.variant_rows(run.variants))):
            outputs.write_text(out / f"{name}.csv", report_mod.table_csv(name, rows, cols))
        outputs.write_text(out / "frames.csv", report_mod.frames_csv(run.frames, cols))
        run.add_time("report", 0.0, 0.0)
        timings["total_wall"] = {"computed_s": None, "this_run_s": 0.0}

        def finish_timings() -> None:  # called by write_report just before it renders the time table
            now = time.perf_counter()
            timings["report"]["this_run_s"] = timings["report"]["computed_s"] = now - t0  # never cached
            timings["total_wall"]["this_run_s"] = now - run.started

        report_mod.write_report(result, run.cfg, run.cache, outputs=outputs, finish_timings=finish_timings)
        outputs.write_text(out / "timings.json", strict_json(timings, indent=1) + "\n")
    run.result = result


def _analysis_settings(cfg: StudyConfig, metric_columns: list[str]):
    from .analysis import AnalysisSettings

    return AnalysisSettings(metrics=metric_columns, crf_subsets=cfg.subsets, resampling=cfg.resampling,
                            n_boot=cfg.n_boot, seed=cfg.seed, min_gt=cfg.min_gt, dup_tolerance=cfg.dup_tolerance,
                            keep_duplicates=cfg.keep_duplicates)


def _settings_key(settings) -> dict:
    d = asdict(settings)
    d["crf_subsets"] = [list(c) for c in d["crf_subsets"]]
    return d


def _cached_analysis(cache: StageCache, windows: list[dict], stems: list[str], settings):
    """:func:`dctqa.study.analysis.analyze`, its tables cached on the window table's content
    and the settings; ``extra_meta`` of the result holds the cache meta."""
    from . import report as report_mod
    from .analysis import Analysis, mark_duplicates, select_rows

    key = {"stage": "analysis", "format": 1, "table_sha256": _sha(report_mod.rows_to_csv(windows)),
           "videos": stems, "settings": _settings_key(settings)}

    def compute():
        from .analysis import analyze

        a = analyze(windows, stems, settings)
        return {"correlations": a.correlations, "within": a.within, "differences": a.differences}

    doc, meta = cache.document("analysis", key, compute)
    marked = mark_duplicates(windows, settings.metrics, settings.dup_tolerance)
    a = Analysis(selection=select_rows(marked, settings.min_gt, settings.keep_duplicates), rows=marked,
                 correlations=doc["correlations"], within=doc["within"], differences=doc["differences"],
                 settings=settings, videos=stems)
    a.extra_meta = meta
    return a


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
