"""The study: encode -> score -> detect -> AP per window -> tables -> report.

Every expensive step is a named stage cached under ``<out>/cache`` (see
:mod:`dctqa.study.stages`), keyed by the content hashes of the videos involved and every
setting that changes the result, so a rerun (or a run with more videos) reuses all
finished work. The statistics are in :mod:`dctqa.study.analysis`.

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

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..backbones.spec import onnx_spec, parse_spec
from ..errors import InputError, VideoError
from ..fileio import OutputSet, check_output_dir
from ..progress import progress, stage
from ..settings import shared_dir
from .codec import EncodeSettings, Variant, encode_sweep, read_manifest, write_reference
from .noref import NR_COLUMN, load_nr_model, nr_stage
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
    detector: name for :func:`dctqa.study.detect.create_detector`. frame_stride: detect on every
    n-th source frame; metric_stride: score every n-th frame (a multiple of frame_stride;
    ``None`` = frame_stride). window: AP window in source frames. device: torch/onnx device.
    jobs: worker processes for the score stage (1 = in this process).
    gt_score_threshold / pred_score_threshold: reference detections scoring at least the
    first are the pseudo ground truth; detections on a variant scoring below the second are
    dropped before AP (applied to cached detections, so changing it never reruns the
    detector). min_gt, keep_duplicates, dup_tolerance, resampling: see
    :class:`dctqa.study.analysis.AnalysisSettings`. sensitivity_gt x sensitivity_pred: the
    threshold grid of the sensitivity table (empty: no table).
    nr_model: a ``dctqa train-nr`` checkpoint: adds the no-reference column ``dctqa_nr``
    (:mod:`dctqa.study.noref`), predicted from ``nr_patches`` patches per frame placed by
    ``nr_sampling`` (``activation``, ``uniform`` or ``grid``); ``None``: no such column.
    """

    videos: list[Path]
    out: Path
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    backbones: list[str] = field(default_factory=lambda: [default_model()])
    domains: tuple[str, ...] = ("spectral", "feature")
    pixel: bool = True
    baselines: tuple[str, ...] = ("psnr", "ssim", "blockiness", "blur", "noise", "contrast")
    detector: Any = field(default_factory=default_model)  # a name, or a dctqa.study.detect.Detector instance
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
    nr_model: Path | None = None
    nr_patches: int = 2
    nr_sampling: str = "activation"

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
        if self.nr_model is not None:  # checked (with nr_patches, nr_sampling) by run_study, before any work
            self.nr_model = Path(self.nr_model)
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
    two videos do not hold the same number of sampled frames or differ in size
    (:class:`dctqa.io.FramePairs` with ``strict=True``: a variant must keep every frame).
    """
    import torch

    from ..baselines import compute_baselines
    from ..io import FramePairs
    from ..metric import Metric

    metrics = [(s.column, Metric(backbone=s.backbone, domain=s.domain, device=device, batch_size=batch_size,
                                 weights=weights if s.domain != "pixel" else None)) for s in specs]
    values: dict[str, list[np.ndarray]] = {}
    timings = {"decode": 0.0, "metric": 0.0, "baselines": 0.0}
    n = 0
    t0 = time.perf_counter()
    for ref, dist, _ in FramePairs(ref_path, dist_path, batch_size, stride=stride, strict=True):
        timings["decode"] += time.perf_counter() - t0
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
        n += len(ref)
        t0 = time.perf_counter()
    timings["decode"] += time.perf_counter() - t0
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
            total = n if cfg.encode.max_frames is None else min(n, cfg.encode.max_frames)
            stage(f"study: stage 1/{STAGES} encode {video.name} ({total} frames, "
                  f"{len(cfg.videos)} video(s) in the study)", enabled=cfg.progress)
            with progress(total, f"study: encode {video.name}", unit="frame", enabled=cfg.progress) as bar:
                vs = encode_sweep(video, vdir, cfg.encode, progress=bar.update)
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


#: The stages ``dctqa study`` announces ("study: stage i/N ..."): encode, score, detect + AP,
#: then tables and the report together.
STAGES = 4


class _Run:
    """What the stages of one :func:`run_study` call share: the config, the stage cache,
    the metric configurations, the timings collected and the detector (made on first use)."""

    def __init__(self, cfg: StudyConfig, nr_model: Any = None) -> None:
        self.cfg, self.out = cfg, cfg.out
        self.cache = StageCache(cfg.out / "cache")
        self.det_cache = cfg.out / "cache"  # the stage cache's root: detections in its detect/ folder
        self.specs = metric_specs(cfg)
        self.spec_keys = [_spec_key(s, cfg.out / "cache", cfg.detector_weights) for s in self.specs]
        self.timings: dict[str, dict[str, float]] = {}
        self._detector = None
        self.nr_model = nr_model
        self.nr_columns = [NR_COLUMN] if nr_model is not None else []

    def add_time(self, part: str, computed: float, this_run: float) -> None:
        t = self.timings.setdefault(part, {"computed_s": 0.0, "this_run_s": 0.0})
        t["computed_s"] += computed
        t["this_run_s"] += this_run

    def detector(self):
        if self._detector is None:
            from .detect import create_detector

            cfg = self.cfg
            self._detector = (create_detector(cfg.detector, weights=cfg.detector_weights, device=cfg.device)
                              if isinstance(cfg.detector, str) else cfg.detector)
        return self._detector


def run_study(cfg: StudyConfig) -> StudyResult:
    """Run (or resume) the whole study described by ``cfg``; see the module docstring.

    Writes under ``cfg.out``: ``variants/`` (encoded videos), ``cache/`` (stages),
    ``windows.csv`` (with duplicate marks), ``correlations.csv`` (pooled), ``within.csv``
    (within content window / video), ``differences.csv`` (paired differences and verdicts),
    ``sensitivity.csv`` (threshold grid), ``variants.csv``, ``frames.csv``, ``plots/*.png``
    and ``report.md``.  Returns a :class:`StudyResult`. The stages, in order:
    :func:`encode_stage`, :func:`score_stage`, :func:`nr_prediction_stage` (with
    ``cfg.nr_model``, whose checkpoint is loaded and checked first, before any output),
    :func:`detect_ap_stage`, :func:`tables_stage`, :func:`report_stage`; each announces
    itself ("study: stage i/N ...") when ``cfg.progress``.
    """
    t_start = time.perf_counter()
    nr_model = _load_nr_model(cfg)  # a bad checkpoint fails here, before any output
    check_study_inputs(cfg)
    with OutputSet(inputs=cfg.videos) as outputs:  # on failure: the folder goes if nothing finished in it
        outputs.make_dir(cfg.out, keep_work=True)
        return _run_stages(cfg, nr_model, t_start)


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


def _run_stages(cfg: StudyConfig, nr_model, t_start: float) -> StudyResult:
    run = _Run(cfg, nr_model)
    variants, refs, src_sha = encode_stage(cfg, run.cache, run.add_time)
    frames = score_stage(run, variants, refs, src_sha)
    if nr_model is not None:
        nr_prediction_stage(run, variants, frames)
    n_variants = sum(len(vs) for vs in variants.values())
    stage(f"study: stage 3/{STAGES} detect and AP per window ({n_variants} variants "
          f"and {len(cfg.videos)} reference(s))", enabled=cfg.progress)
    with progress(n_variants + len(cfg.videos), "study: detect+AP", unit="step", enabled=cfg.progress) as bar:
        windows = detect_ap_stage(run, variants, refs, src_sha, frames, cfg.gt_score_threshold,
                                  cfg.pred_score_threshold, on_step=bar.update)
    grid = len(cfg.sensitivity_gt) * len(cfg.sensitivity_pred)
    stage(f"study: stage 4/{STAGES} correlations ({cfg.n_boot} bootstrap resamples), "
          f"{f'threshold sensitivity ({grid} AP tables), ' if grid else ''}tables and report", enabled=cfg.progress)
    analysis, sensitivity = tables_stage(run, windows, variants, refs, src_sha, frames)
    return report_stage(run, analysis, sensitivity, frames, variants, t_start)


def score_stage(run: _Run, variants: dict[str, list[Variant]], refs: dict[str, Path], src_sha: dict[str, str]
                ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The score stage: per-frame values of every metric for every variant (cached per
    variant; ``cfg.jobs`` worker processes compute the missing ones). Returns
    video stem -> variant name -> column -> array."""
    cfg, cache = run.cfg, run.cache
    jobs = [(video, v, score_key(cfg, src_sha[video.stem], v.path, run.spec_keys, run.specs, run.out / "cache"))
            for video in cfg.videos for v in variants[video.stem]]
    frames: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    pending = []
    stage(f"study: stage 2/{STAGES} score every metric on {len(jobs)} variants", enabled=cfg.progress)
    with progress(len(jobs), "study: score", unit="variant", enabled=cfg.progress) as bar:
        for video, v, key in jobs:
            args = (str(refs[video.stem]), str(v.path), run.specs, cfg.baselines, cfg.metric_stride, cfg.device,
                    cfg.batch_size, cfg.detector_weights)
            t0 = time.perf_counter()
            hit = cache.cached_arrays("score", key) if cfg.jobs > 1 else None
            if cfg.jobs > 1 and hit is None:  # computed by a worker below
                pending.append((video.stem, v.name, key, args))
                continue
            arrs, meta = hit or cache.arrays("score", key, lambda args=args: _score_job(args))
            _account_score(run.add_time, meta, time.perf_counter() - t0)
            frames.setdefault(video.stem, {})[v.name] = arrs
            bar.update(1)
        if pending:
            _score_in_workers(run, pending, frames, bar.update)
    return frames


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


def nr_prediction_stage(run: _Run, variants: dict[str, list[Variant]], frames: dict) -> None:
    """The ``nr`` stage: ``dctqa_nr`` of every variant's scored frames into ``frames``
    (:func:`dctqa.study.noref.nr_stage`; cached per variant and checkpoint)."""
    from ..fileio import file_sha256

    cfg = run.cfg
    jobs = [(video.stem, v) for video in cfg.videos for v in variants[video.stem]]
    stage(f"study: stage 2/{STAGES} no-reference prediction ({NR_COLUMN}, {cfg.nr_patches} {cfg.nr_sampling} "
          f"patches per frame) on {len(jobs)} variants", enabled=cfg.progress)
    with progress(len(jobs), "study: dctqa_nr", unit="variant", enabled=cfg.progress) as bar:
        nr_stage(run.cache, run.nr_model, file_sha256(cfg.nr_model, memo_dir=run.out / "cache"), jobs, frames,
                 patches=cfg.nr_patches, sampling=cfg.nr_sampling, stride=cfg.metric_stride,
                 memo_dir=run.out / "cache", add_time=run.add_time, on_step=bar.update)


def _score_in_workers(run: _Run, pending: list[tuple], frames: dict, update) -> None:
    """Score ``pending`` (stem, variant name, key, args) in ``cfg.jobs`` processes, storing
    each result in the stage cache and ``frames``."""
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // run.cfg.jobs)
    with ProcessPoolExecutor(max_workers=run.cfg.jobs, initializer=_init_worker, initargs=(threads,)) as ex:
        futs = [(stem, name, key, ex.submit(_score_job, args), time.perf_counter())
                for stem, name, key, args in pending]
        for stem, name, key, fut, t0 in futs:
            res = fut.result()
            arrs, meta = run.cache.arrays("score", key, lambda res=res: res)
            meta["seconds"] = time.perf_counter() - t0
            _account_score(run.add_time, meta, time.perf_counter() - t0)
            frames.setdefault(stem, {})[name] = arrs
            update(1)


def detect_ap_stage(run: _Run, variants: dict[str, list[Variant]], refs: dict[str, Path], src_sha: dict[str, str],
                    frames: dict, gt_thr: float, pred_thr: float, on_step=None, main: bool = True
                    ) -> list[dict[str, Any]]:
    """The detect + AP stage at one pair of score thresholds: detections of every reference
    and variant (detection cache), AP per content window (stage cache), joined with the
    metric values into the window table's rows. ``main=False``: a threshold-sensitivity
    table (its time counted apart). ``on_step(1)`` after each variant and each video."""
    from .tables import window_rows

    cfg = run.cfg
    rows: list[dict[str, Any]] = []
    for video in cfg.videos:
        for v in variants[video.stem]:
            t0 = time.perf_counter()
            res, meta = _ap_stage(cfg, run.cache, run.detector(), refs[video.stem], src_sha[video.stem], v,
                                  gt_thr, pred_thr, run.det_cache)
            dt = time.perf_counter() - t0
            detect_now = res["detect_s"] if not meta["cached"] else 0.0
            if main:
                run.add_time("detection", res["detect_s"], detect_now)
                run.add_time("ap", res["ap_s"], dt - detect_now)
            else:  # the sensitivity grid: detections are already cached by the main table
                run.add_time("sensitivity_ap", res["ap_s"] + res["detect_s"], dt)
            rows.extend(window_rows(video.stem, v, res["windows"], frames[video.stem][v.name],
                                    [s.column for s in run.specs] + run.nr_columns, list(cfg.baselines)))
            if on_step:
                on_step(1)
        if on_step:
            on_step(1)
    return rows


def _metric_columns(run: _Run) -> list[str]:
    return [s.column for s in run.specs] + run.nr_columns + [c for b in run.cfg.baselines
                                            for c in (["psnr", "psnr_global"] if b == "psnr" else [b])]


def tables_stage(run: _Run, windows: list[dict[str, Any]], variants, refs, src_sha, frames):
    """The tables stage: correlations, within-content statistics and paired differences
    (cached on the window table), and the threshold-sensitivity grid (each grid point's AP
    table from :func:`detect_ap_stage`). Returns (analysis, sensitivity rows)."""
    from . import report as report_mod
    from .analysis import headline

    cfg = run.cfg
    t0 = time.perf_counter()
    settings = _analysis_settings(cfg, _metric_columns(run))
    stems = [v.stem for v in cfg.videos]
    analysis = _cached_analysis(run.cache, windows, stems, settings)
    run.add_time("correlations", analysis.extra_meta["seconds"], time.perf_counter() - t0)
    t0 = time.perf_counter()
    main = (cfg.gt_score_threshold, cfg.pred_score_threshold)
    sens_tables = {(g, p): (windows if (g, p) == main else
                            detect_ap_stage(run, variants, refs, src_sha, frames, g, p, main=False))
                   for g in cfg.sensitivity_gt for p in cfg.sensitivity_pred}
    key = {"stage": "sensitivity", "tables": [[g, p, _sha(report_mod.rows_to_csv(t))] for (g, p), t in
                                              sens_tables.items()], "settings": _settings_key(settings)}
    sensitivity, meta = run.cache.document("sensitivity", key, lambda: [
        dict(gt_score=g, pred_score=p, **h) for (g, p), t in sens_tables.items()
        for h in headline(t, stems, settings)])
    run.add_time("correlations", meta["seconds"], time.perf_counter() - t0)
    return analysis, sensitivity


def report_stage(run: _Run, analysis, sensitivity: list[dict[str, Any]], frames: dict,
                 variants: dict[str, list[Variant]], t_start: float) -> StudyResult:
    """The report stage: the CSV tables, ``report.md`` (with plots) and ``timings.json``."""
    from . import report as report_mod

    out, timings = run.out, run.timings
    t0 = time.perf_counter()
    result = StudyResult(windows=analysis.rows, correlations=analysis.correlations, frames=frames,
                         variants=variants, metric_columns=_metric_columns(run), timings=timings,
                         report=out / "report.md", out=out, analysis=analysis, sensitivity=sensitivity)
    with OutputSet(inputs=run.cfg.videos) as outputs:  # the tables, report.md and timings.json: all or none
        for name, rows in (("windows", analysis.rows), ("correlations", analysis.correlations),
                           ("within", analysis.within), ("differences", analysis.differences),
                           ("sensitivity", sensitivity), ("variants", report_mod.variant_rows(variants))):
            outputs.write_text(out / f"{name}.csv", report_mod.rows_to_csv(rows))
        outputs.write_text(out / "frames.csv", report_mod.frames_csv(frames))
        run.add_time("report", 0.0, 0.0)
        timings["total_wall"] = {"computed_s": float("nan"), "this_run_s": time.perf_counter() - t_start}
        report_mod.write_report(result, run.cfg, run.cache, outputs=outputs)
        timings["report"]["this_run_s"] = time.perf_counter() - t0
        timings["total_wall"]["this_run_s"] = time.perf_counter() - t_start
        outputs.write_text(out / "timings.json", json.dumps(timings, indent=1))
    return result


def _ap_stage(cfg: StudyConfig, cache: StageCache, detector, ref: Path, ref_sha: str, v: Variant,
              gt_thr: float, pred_thr: float, det_cache: Path) -> tuple[dict, dict]:
    """Cached AP per window of one variant at the given ground-truth and prediction score
    thresholds -> ({"windows": [WindowAP as dict], "detect_s", "ap_s"}, meta). Detections
    come from the detection cache; the prediction threshold filters them afterwards (a
    threshold of 0 keeps them all and leaves the stage key as before the option existed)."""
    from .detect.ap import window_ap
    from .detect.cache import cache_key, cached_detect
    from .detect.groundtruth import pseudo_ground_truth
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


def _account_score(add_time, meta: dict, wall: float) -> None:
    t = meta.get("timings", {})
    for part in ("decode", "metric", "baselines"):
        add_time(part, float(t.get(part, 0.0)), float(t.get(part, 0.0)) if not meta["cached"] else 0.0)
    if meta["cached"]:
        add_time("cache_load", 0.0, wall)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
