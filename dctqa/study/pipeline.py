"""The study: encode -> score -> detect -> AP per window -> tables -> report.

Every expensive step is a named stage cached under ``<out>/cache`` (see
:mod:`dctqa.study.stages`), keyed by the content hashes of the videos involved and every
setting that changes the result, so a rerun (or a run with more videos) reuses all
finished work. The statistics are in :mod:`dctqa.study.analysis`.

Stages per source video: ``encode`` (all variants), per variant ``score`` (per-frame
values of every dctqa configuration and every baseline, on frames ``0, s, 2s, ...`` with
``s = metric_stride``), ``detect`` (the detector on the reference and on each variant,
every ``frame_stride``-th frame; cached by :func:`dctqa.detect.cache.cached_detect`) and
``ap`` (AP50 and AP@[.5:.95] per window of ``window`` source frames against pseudo ground
truth: the reference's detections scoring at least ``gt_score_threshold``; predictions
below ``pred_score_threshold`` dropped).  Then the window table, the analysis (cached on the
table's content), the threshold sensitivity grid (AP again from the cached detections) and
the report.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backbones.spec import onnx_spec, parse_spec
from ..codec import EncodeSettings, Variant, encode_sweep, read_manifest, write_reference
from ..errors import InputError, VideoError
from ..fileio import atomic_write_text
from ..settings import shared_dir
from .stages import StageCache

#: CRF subsets of the paper's Table 2 (high compression), besides "all windows".
DEFAULT_SUBSETS: tuple[tuple[int, ...], ...] = ((35, 41, 47), (41, 47))
SCORE_FORMAT = 1
#: Threshold grids of the sensitivity table: ground-truth score and prediction score
#: (0 = every detection the detector returned; YOLOX keeps >= 0.05).
DEFAULT_SENSITIVITY_GT: tuple[float, ...] = (0.3, 0.5, 0.7)
DEFAULT_SENSITIVITY_PRED: tuple[float, ...] = (0.0, 0.25, 0.5)


def default_model() -> str:
    """``onnx:<shared>/models/yolox_nano.onnx``, the default backbone and detector."""
    return onnx_spec(shared_dir() / "models" / "yolox_nano.onnx")


@dataclass
class StudyConfig:
    """Everything that defines a study run.

    backbones: names for :class:`dctqa.Metric` (``onnx:PATH``, torchvision names), each
    scored in every domain of ``domains``; ``pixel`` adds the pixel-domain ablation.
    detector: name for :func:`dctqa.detect.create_detector`. frame_stride: detect on every
    n-th source frame; metric_stride: score every n-th frame (a multiple of frame_stride;
    ``None`` = frame_stride). window: AP window in source frames. device: torch/onnx device.
    jobs: worker processes for the score stage (1 = in this process).
    gt_score_threshold / pred_score_threshold: reference detections scoring at least the
    first are the pseudo ground truth; detections on a variant scoring below the second are
    dropped before AP (applied to cached detections, so changing it never reruns the
    detector). min_gt, keep_duplicates, dup_tolerance, resampling: see
    :class:`dctqa.study.analysis.AnalysisSettings`. sensitivity_gt x sensitivity_pred: the
    threshold grid of the sensitivity table (empty: no table).
    """

    videos: list[Path]
    out: Path
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    backbones: list[str] = field(default_factory=lambda: [default_model()])
    domains: tuple[str, ...] = ("spectral", "feature")
    pixel: bool = True
    baselines: tuple[str, ...] = ("psnr", "ssim", "blockiness", "blur", "noise", "contrast")
    detector: Any = field(default_factory=default_model)  # a name, or a dctqa.detect.Detector instance
    detector_weights: str | None = None
    device: str = "cpu"
    frame_stride: int = 2
    metric_stride: int | None = None
    window: int = 100
    gt_score_threshold: float = 0.5
    pred_score_threshold: float = 0.0
    min_gt: int = 10
    keep_duplicates: bool = False
    dup_tolerance: float = 0.05
    resampling: str = "content"
    sensitivity_gt: tuple[float, ...] = DEFAULT_SENSITIVITY_GT
    sensitivity_pred: tuple[float, ...] = DEFAULT_SENSITIVITY_PRED
    subsets: tuple[tuple[int, ...], ...] = DEFAULT_SUBSETS
    n_boot: int = 1000
    seed: int = 0
    jobs: int = 1
    batch_size: int = 8
    progress: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        self.videos = [Path(v) for v in self.videos]
        self.out = Path(self.out)
        if not self.videos:
            raise InputError("the study needs at least one video")
        for v in self.videos:
            if not v.is_file():
                raise VideoError(f"video {str(v)!r} does not exist")
        stems = [v.stem for v in self.videos]
        if len(set(stems)) != len(stems):
            raise InputError(f"two videos share a file name stem ({stems}); rename one")
        for name, val in (("frame_stride", self.frame_stride), ("window", self.window), ("jobs", self.jobs),
                          ("batch_size", self.batch_size)):
            if int(val) != val or val < 1:
                raise InputError(f"{name} must be a positive integer, got {val!r}")
        if self.metric_stride is None:
            self.metric_stride = self.frame_stride
        if self.metric_stride < 1 or self.metric_stride % self.frame_stride:
            raise InputError(f"metric_stride ({self.metric_stride}) must be a positive multiple of "
                             f"frame_stride ({self.frame_stride})")
        for name, vals in (("gt_score_threshold", [self.gt_score_threshold]),
                           ("pred_score_threshold", [self.pred_score_threshold]),
                           ("sensitivity_gt", self.sensitivity_gt), ("sensitivity_pred", self.sensitivity_pred)):
            for val in vals:
                if not 0.0 <= val <= 1.0:
                    raise InputError(f"{name} must be in [0, 1], got {val}")
        from .analysis import AnalysisSettings

        AnalysisSettings(metrics=[], resampling=self.resampling, min_gt=self.min_gt, n_boot=self.n_boot,
                         dup_tolerance=self.dup_tolerance)  # validates those settings
        from ..baselines import get_baseline
        from ..constants import DOMAINS

        for b in self.baselines:
            get_baseline(b)
        for d in self.domains:
            if d not in DOMAINS or d == "pixel":
                raise InputError(f"domain {d!r}: expected 'spectral' or 'feature' (pixel is its own switch)")
        if not self.backbones and not self.pixel and not self.baselines:
            raise InputError("nothing to score: give a backbone, keep the pixel domain or a baseline")


# ----------------------------------------------------------------------------- metric configurations

@dataclass(frozen=True)
class MetricSpec:
    """One dctqa configuration: column name, backbone name, domain."""

    column: str
    backbone: str
    domain: str


def _short(backbone: str) -> str:
    base = parse_spec(backbone).label
    return re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_")


def metric_specs(cfg: StudyConfig) -> list[MetricSpec]:
    """The dctqa configurations of ``cfg`` in report order (column names ``dctqa_<domain>_<backbone>``)."""
    specs = [MetricSpec(f"dctqa_{d}_{_short(b)}", b, d) for b in cfg.backbones for d in cfg.domains]
    if cfg.pixel:
        specs.append(MetricSpec("dctqa_pixel", "pixel", "pixel"))
    cols = [s.column for s in specs]
    if len(set(cols)) != len(cols):
        raise InputError(f"two backbones give the same column name: {cols}")
    return specs


def _model_identity(name: str, cache_root: Path) -> str:
    """Content hash of an ``onnx:PATH`` file, else the name itself."""
    from ..fileio import file_sha256

    spec = parse_spec(name)
    if spec.kind == "onnx":
        p = spec.path
        if not p.is_file():
            raise InputError(f"model file {str(p)!r} not found (from {name!r})")
        return file_sha256(p, memo_dir=cache_root)
    return name


def _spec_key(spec: MetricSpec, cache_root: Path, weights: str | None) -> dict:
    from ..constants import EPSILON, METRIC_VERSION

    return {"backbone": "onnx" if parse_spec(spec.backbone).kind == "onnx" else spec.backbone,
            "model": _model_identity(spec.backbone, cache_root), "domain": spec.domain,
            "epsilon": EPSILON, "metric_version": METRIC_VERSION, "weights": weights}


# ----------------------------------------------------------------------------- score stage

def score_pair(ref_path: str | os.PathLike, dist_path: str | os.PathLike, specs: Sequence[MetricSpec],
               baselines: Sequence[str], stride: int, device: str = "cpu", batch_size: int = 8,
               weights: str | None = None) -> dict[str, np.ndarray]:
    """Per-frame values of every metric on frames ``0, stride, 2*stride, ...`` of two videos.

    Returns ``frame_indices`` (F,) int64, one (F,) float64 array per metric column (dctqa
    columns from ``specs``, baselines by name plus ``mse``), and ``__timings__`` (JSON of
    seconds spent in decode, metric, baselines).  Raises :class:`VideoError` when the
    two videos do not hold the same number of sampled frames.
    """
    import torch

    from ..baselines import compute_baselines
    from ..io import iter_frames
    from ..metric import Metric

    metrics = [(s.column, Metric(backbone=s.backbone, domain=s.domain, device=device, batch_size=batch_size,
                                 weights=weights if s.domain != "pixel" else None)) for s in specs]
    values: dict[str, list[np.ndarray]] = {}
    timings = {"decode": 0.0, "metric": 0.0, "baselines": 0.0}
    ref_it, dist_it = iter_frames(ref_path, stride=stride), iter_frames(dist_path, stride=stride)
    n = 0
    while True:
        t0 = time.perf_counter()
        br, bd = [], []
        for _ in range(batch_size):
            fr, fd = next(ref_it, None), next(dist_it, None)
            if (fr is None) != (fd is None):
                raise VideoError(f"{str(dist_path)!r} and its reference {str(ref_path)!r} hold different numbers "
                                 f"of frames (sampled every {stride}: they differ after {n + len(br)})")
            if fr is None:
                break
            if fr.shape != fd.shape:
                raise VideoError(f"{str(dist_path)!r} is {fd.shape[1]}x{fd.shape[0]}, its reference "
                                 f"{fr.shape[1]}x{fr.shape[0]}")
            br.append(fr)
            bd.append(fd)
        timings["decode"] += time.perf_counter() - t0
        if not br:
            break
        ref, dist = np.stack(br), np.stack(bd)
        t0 = time.perf_counter()
        for col, m in metrics:
            values.setdefault(col, []).append(m.score(ref, dist))
        timings["metric"] += time.perf_counter() - t0
        if baselines:
            t0 = time.perf_counter()
            for k, v in compute_baselines(ref, dist, names=list(baselines), device=device,
                                          dtype=torch.float32).items():
                values.setdefault(k, []).append(v)
            timings["baselines"] += time.perf_counter() - t0
        n += len(br)
    if n == 0:
        raise VideoError(f"{str(ref_path)!r} holds no frame")
    out = {k: np.concatenate(v).astype(np.float64) for k, v in values.items()}
    out["frame_indices"] = np.arange(n, dtype=np.int64) * stride
    out["__timings__"] = np.array(json.dumps(timings))
    return out


def _score_job(args: tuple) -> dict[str, np.ndarray]:
    return score_pair(*args)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- results

def encode_stage(cfg: StudyConfig, cache: StageCache, add_time=None
                 ) -> tuple[dict[str, list[Variant]], dict[str, Path], dict[str, str]]:
    """The encode stage: every variant of every video (cached). Returns ``variants`` and
    ``refs`` (the reference each variant is scored against) per video stem, and the
    reference's sha256 per stem. ``add_time(part, computed_s, this_run_s)`` collects timings."""
    from ..fileio import file_sha256

    out = cfg.out
    variants: dict[str, list[Variant]] = {}
    src_sha: dict[str, str] = {}
    refs: dict[str, Path] = {}
    for video in cfg.videos:
        sha = file_sha256(video, memo_dir=out / "cache")
        src_sha[video.stem] = sha
        vdir = out / "variants" / f"{video.stem}-{sha[:10]}"
        key = {"stage": "encode", "source_sha256": sha, "settings": cfg.encode.to_dict()}
        t0 = time.perf_counter()

        def do_encode(video=video, vdir=vdir):
            from ..io import probe

            n = probe(video).frames or 0
            bar = _bar(cfg, n if cfg.encode.max_frames is None else min(n, cfg.encode.max_frames),
                       f"encode {video.name}")
            try:
                vs = encode_sweep(video, vdir, cfg.encode, progress=bar.update)
            finally:
                bar.close()
            return [v.name for v in vs]

        names, meta = cache.document("encode", key, do_encode)
        vs = read_manifest(vdir / "variants.json") if (vdir / "variants.json").is_file() else []
        if meta["cached"] and ([v.name for v in vs] != names or not all(v.path.is_file() for v in vs)):
            cache.misses["encode"] = cache.misses.get("encode", 0) + 1
            vs = encode_sweep(video, vdir, cfg.encode)  # files removed since: encode again
        variants[video.stem] = vs
        if add_time is not None:
            add_time("encode", meta["seconds"], time.perf_counter() - t0)
        if cfg.encode.max_frames is not None:  # trimmed study: a lossless copy of the first frames is the reference
            ref = vdir / f"reference-{cfg.encode.max_frames}.mkv"
            if not ref.is_file():
                write_reference(video, ref, cfg.encode.max_frames)
            refs[video.stem] = ref
            src_sha[video.stem] = file_sha256(ref, memo_dir=out / "cache")
        else:
            refs[video.stem] = video
    return variants, refs, src_sha


def score_key(cfg: StudyConfig, ref_sha: str, dist_path: Path, spec_keys: list[dict], specs: Sequence[MetricSpec],
              cache_root: Path) -> dict:
    """Cache key of the score stage for one variant (shared with ``dctqa.nr.data``)."""
    from ..fileio import file_sha256

    return {"stage": "score", "format": SCORE_FORMAT, "ref_sha256": ref_sha,
            "dist_sha256": file_sha256(dist_path, memo_dir=cache_root), "metrics": spec_keys,
            "metric_columns": [s.column for s in specs], "baselines": list(cfg.baselines),
            "stride": cfg.metric_stride}


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


def _bar(cfg: StudyConfig, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, leave=False,
                disable=not (cfg.progress and sys.stderr.isatty()))


def run_study(cfg: StudyConfig) -> StudyResult:
    """Run (or resume) the whole study described by ``cfg``; see the module docstring.

    Writes under ``cfg.out``: ``variants/`` (encoded videos), ``cache/`` (stages),
    ``windows.csv`` (with duplicate marks), ``correlations.csv`` (pooled), ``within.csv``
    (within content window / video), ``differences.csv`` (paired differences and verdicts),
    ``sensitivity.csv`` (threshold grid), ``variants.csv``, ``frames.csv``, ``plots/*.png``
    and ``report.md``.  Returns a :class:`StudyResult`.
    """
    from ..detect import create_detector
    from ..fileio import file_sha256
    from . import report as report_mod
    from .analysis import headline
    from .tables import window_rows

    t_start = time.perf_counter()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    cache = StageCache(out / "cache")
    det_cache = out / "cache" / "detect"
    specs = metric_specs(cfg)
    spec_keys = [_spec_key(s, out / "cache", cfg.detector_weights) for s in specs]
    timings: dict[str, dict[str, float]] = {}

    def add_time(part: str, computed: float, this_run: float) -> None:
        t = timings.setdefault(part, {"computed_s": 0.0, "this_run_s": 0.0})
        t["computed_s"] += computed
        t["this_run_s"] += this_run

    # ---- encode
    variants, refs, src_sha = encode_stage(cfg, cache, add_time)

    # ---- score
    jobs = []
    for video in cfg.videos:
        for v in variants[video.stem]:
            jobs.append((video, v, score_key(cfg, src_sha[video.stem], v.path, spec_keys, specs, out / "cache")))
    frames: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    pending = []
    bar = _bar(cfg, len(jobs), "score")
    for video, v, key in jobs:
        args = (str(refs[video.stem]), str(v.path), specs, cfg.baselines, cfg.metric_stride, cfg.device, cfg.batch_size,
                cfg.detector_weights)
        if cfg.jobs > 1:
            pending.append((video, v, key, args))
            continue
        t0 = time.perf_counter()
        arrs, meta = cache.arrays("score", key, lambda args=args: _score_job(args))
        _account_score(add_time, meta, time.perf_counter() - t0)
        frames.setdefault(video.stem, {})[v.name] = arrs
        bar.update(1)
    if pending:
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
        with ProcessPoolExecutor(max_workers=cfg.jobs, initializer=_init_worker, initargs=(threads,)) as ex:
            futs = {}
            for video, v, key, args in pending:
                t0 = time.perf_counter()
                try:  # already cached: no need for a worker
                    arrs, meta = cache.arrays("score", key, _raise_miss)
                    _account_score(add_time, meta, time.perf_counter() - t0)
                    frames.setdefault(video.stem, {})[v.name] = arrs
                    bar.update(1)
                except _Miss:
                    futs[(video.stem, v.name)] = (ex.submit(_score_job, args), key, time.perf_counter())
            for (stem, name), (fut, key, t0) in futs.items():
                res = fut.result()
                arrs, meta = cache.arrays("score", key, lambda res=res: res)
                meta["seconds"] = time.perf_counter() - t0
                _account_score(add_time, meta, time.perf_counter() - t0)
                frames.setdefault(stem, {})[name] = arrs
                bar.update(1)
    bar.close()

    # ---- detect + AP
    detector = None
    bar = _bar(cfg, len(jobs) + len(cfg.videos), "detect+AP")

    def get_detector():
        nonlocal detector
        if detector is None:
            detector = (create_detector(cfg.detector, weights=cfg.detector_weights, device=cfg.device)
                        if isinstance(cfg.detector, str) else cfg.detector)
        return detector

    def table(gt_thr: float, pred_thr: float, progress=None, main: bool = True) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for video in cfg.videos:
            for v in variants[video.stem]:
                t0 = time.perf_counter()
                res, meta = _ap_stage(cfg, cache, get_detector(), refs[video.stem], src_sha[video.stem], v,
                                      gt_thr, pred_thr, det_cache)
                dt = time.perf_counter() - t0
                if main:
                    add_time("detection", res["detect_s"], res["detect_s"] if not meta["cached"] else 0.0)
                    add_time("ap", res["ap_s"], dt - (res["detect_s"] if not meta["cached"] else 0.0))
                else:  # the sensitivity grid: detections are already cached by the main table
                    add_time("sensitivity_ap", res["ap_s"] + res["detect_s"], dt)
                rows.extend(window_rows(video.stem, v, res["windows"], frames[video.stem][v.name],
                                        [s.column for s in specs], list(cfg.baselines)))
                if progress:
                    progress(1)
            if progress:
                progress(1)
        return rows

    windows = table(cfg.gt_score_threshold, cfg.pred_score_threshold, bar.update)
    bar.close()

    metric_columns = [s.column for s in specs] + [c for b in cfg.baselines
                                                  for c in (["psnr", "psnr_global"] if b == "psnr" else [b])]
    # ---- tables
    t0 = time.perf_counter()
    settings = _analysis_settings(cfg, metric_columns)
    stems = [v.stem for v in cfg.videos]
    analysis = _cached_analysis(cache, windows, stems, settings)
    add_time("correlations", analysis.extra_meta["seconds"], time.perf_counter() - t0)
    t0 = time.perf_counter()
    grid = [(g, p) for g in cfg.sensitivity_gt for p in cfg.sensitivity_pred]
    sens_tables = {(g, p): (windows if (g, p) == (cfg.gt_score_threshold, cfg.pred_score_threshold)
                            else table(g, p, main=False)) for g, p in grid}
    key = {"stage": "sensitivity", "tables": [[g, p, _sha(report_mod.rows_to_csv(t))] for (g, p), t in
                                              sens_tables.items()], "settings": _settings_key(settings)}
    sensitivity, meta = cache.document("sensitivity", key, lambda: [
        dict(gt_score=g, pred_score=p, **h) for (g, p), t in sens_tables.items()
        for h in headline(t, stems, settings)])
    add_time("correlations", meta["seconds"], time.perf_counter() - t0)

    t0 = time.perf_counter()
    result = StudyResult(windows=analysis.rows, correlations=analysis.correlations, frames=frames,
                         variants=variants, metric_columns=metric_columns, timings=timings,
                         report=out / "report.md", out=out, analysis=analysis, sensitivity=sensitivity)
    atomic_write_text(out / "windows.csv", report_mod.rows_to_csv(analysis.rows))
    atomic_write_text(out / "correlations.csv", report_mod.rows_to_csv(analysis.correlations))
    atomic_write_text(out / "within.csv", report_mod.rows_to_csv(analysis.within))
    atomic_write_text(out / "differences.csv", report_mod.rows_to_csv(analysis.differences))
    atomic_write_text(out / "sensitivity.csv", report_mod.rows_to_csv(sensitivity))
    atomic_write_text(out / "variants.csv", report_mod.rows_to_csv(report_mod.variant_rows(variants)))
    atomic_write_text(out / "frames.csv", report_mod.frames_csv(frames))
    add_time("report", 0.0, 0.0)
    timings["total_wall"] = {"computed_s": float("nan"), "this_run_s": time.perf_counter() - t_start}
    report_mod.write_report(result, cfg, cache)
    timings["report"]["this_run_s"] = time.perf_counter() - t0
    timings["total_wall"]["this_run_s"] = time.perf_counter() - t_start
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=1))
    return result


def _ap_stage(cfg: StudyConfig, cache: StageCache, detector, ref: Path, ref_sha: str, v: Variant,
              gt_thr: float, pred_thr: float, det_cache: Path) -> tuple[dict, dict]:
    """Cached AP per window of one variant at the given ground-truth and prediction score
    thresholds -> ({"windows": [WindowAP as dict], "detect_s", "ap_s"}, meta). Detections
    come from the detection cache; the prediction threshold filters them afterwards (a
    threshold of 0 keeps them all and leaves the stage key as before the option existed)."""
    from ..detect.ap import window_ap
    from ..detect.cache import cache_key, cached_detect
    from ..detect.groundtruth import pseudo_ground_truth
    from ..fileio import file_sha256

    vsha = file_sha256(v.path, memo_dir=cfg.out / "cache")
    key = {"stage": "ap", "ref_det": cache_key(ref_sha, detector, cfg.frame_stride),
           "dist_det": cache_key(vsha, detector, cfg.frame_stride), "window": cfg.window,
           "gt_score_threshold": gt_thr}
    if pred_thr > 0:
        key["pred_score_threshold"] = pred_thr

    def do_ap():
        from ..io import probe

        t0 = time.perf_counter()
        fi_r, ref_dets = cached_detect(detector, ref, cfg.frame_stride, cache_dir=det_cache)
        fi_d, dets = cached_detect(detector, v.path, cfg.frame_stride, cache_dir=det_cache)
        t1 = time.perf_counter()
        if not np.array_equal(fi_r, fi_d):
            raise VideoError(f"{v.path.name}: {len(fi_d)} sampled frames, reference {len(fi_r)}")
        gt = pseudo_ground_truth(ref_dets, gt_thr)
        if pred_thr > 0:
            dets = [d.select(d.scores >= pred_thr) for d in dets]
        info = probe(ref)
        wins = window_ap(gt, dets, fi_d, window=cfg.window, image_size=(info.height, info.width))
        return {"windows": [asdict(w) for w in wins], "detect_s": t1 - t0, "ap_s": time.perf_counter() - t1}

    return cache.document("ap", key, do_ap)


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


class _Miss(Exception):
    pass


def _raise_miss():
    raise _Miss()


def _account_score(add_time, meta: dict, wall: float) -> None:
    t = meta.get("timings", {})
    for part in ("decode", "metric", "baselines"):
        add_time(part, float(t.get(part, 0.0)), float(t.get(part, 0.0)) if not meta["cached"] else 0.0)
    if meta["cached"]:
        add_time("cache_load", 0.0, wall)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
