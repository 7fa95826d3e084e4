"""``dctqa demo``: the whole idea in one minute on a fresh machine.

Builds a short clip (a slow pan over a real photograph bundled with scikit-image),
encodes it with libx264 at CRF 23/29/35/41/47, scores every version against the clip
with the best backbone available offline, and writes a table and a plot.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .backbones import get_backbone, onnx_spec, parse_spec
from .errors import DctqaError, WeightsError
from .fileio import OutputSet
from .progress import progress as _progress, stage
from .settings import shared_dir

PAPER_BACKBONE = "fasterrcnn_resnet50_fpn"


def choose_backbone() -> tuple[str, str]:
    """(backbone name, why): the paper's detector if its COCO weights are in torchvision's
    cache, else YOLOX-Nano from the shared folder, else the CNN-free pixel domain."""
    from .weights import TORCHVISION_DETECTORS, hub_cache_path

    import torchvision.models.detection as det

    enum = getattr(det, TORCHVISION_DETECTORS[PAPER_BACKBONE][1]).DEFAULT
    if hub_cache_path(enum.url).is_file():
        try:
            get_backbone(PAPER_BACKBONE)
            return PAPER_BACKBONE, "the paper's detector; its COCO weights are in torchvision's cache"
        except WeightsError:
            pass
    yolox = shared_dir() / "models" / "yolox_nano.onnx"
    if yolox.is_file():
        return (onnx_spec(yolox), "a real COCO detector available offline (YOLOX-Nano); the paper's Faster R-CNN "
                "weights are not in torchvision's cache (see docs/backbones.md: weights offline)")
    return "pixel", ("no detector weights found offline (neither torchvision's cache nor "
                     f"{yolox}); the pixel domain needs none")


def make_clip(path: Path, frames: int = 40, size: tuple[int, int] = (288, 384), fps: int = 10) -> np.ndarray:
    """The demo's clip: a slow pan over scikit-image's ``coffee`` photograph (400 x 600), written
    losslessly (FFV1) by :func:`dctqa.study.clips.write_pan_clip`; returns the frames."""
    from .study.clips import write_pan_clip

    return write_pan_clip(path, "coffee", frames, size, fps)


def run_demo(out_dir: str | os.PathLike = "demo_out", frames: int = 40, progress: bool = False,
             backbone: str | None = None) -> list[dict]:
    """Run the demo; returns the table rows (also in ``out_dir/results.json``).

    ``out_dir`` is checked before any work; if the run fails or is interrupted, a folder
    it created is removed again, and the plot and ``results.json`` appear only together.
    """
    with OutputSet() as outputs:
        return _run_demo(outputs, Path(out_dir), frames, progress, backbone)


def _run_demo(outputs: OutputSet, out: Path, frames: int, progress: bool, backbone: str | None) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .study.codec import DEFAULT_CRFS, EncodeSettings, encode_sweep
    from .io import read_frames
    from .metric import Metric
    from .log import json_text

    if frames < 2:
        raise DctqaError(f"--frames must be at least 2, got {frames}")
    outputs.make_dir(out)
    plot, results = out / "q_psnr_vs_crf.png", out / "results.json"
    outputs.add(plot)
    outputs.add(results)
    name, why = (backbone, "chosen by the caller") if backbone else choose_backbone()
    print(f"backbone: {name}\n  why: {why}")
    src = out / "source.mkv"
    make_clip(src, frames)
    ref = read_frames(src)
    print(f"clip: {len(ref)} frames {ref.shape[2]}x{ref.shape[1]}, a pan over scikit-image's 'coffee' photo "
          f"(lossless FFV1: {src})")
    stage(f"demo: encoding {len(DEFAULT_CRFS)} H.264 variants (CRF {', '.join(map(str, DEFAULT_CRFS))})",
          enabled=progress)
    with _progress(len(ref), "demo: encode", unit="frame", enabled=progress) as bar:
        variants = encode_sweep(src, out / "h264", EncodeSettings(crfs=DEFAULT_CRFS, cap_bpp=(), include_uncapped=True),
                                progress=bar.update)
    metric = Metric(name)
    stage(f"demo: scoring {len(variants)} variants (Q, PSNR, SSIM)", enabled=progress)
    bar = _progress(len(variants), "demo: score", unit="variant", enabled=progress, step_percent=100 / len(variants))
    with bar:
        rows = _score_variants(ref, variants, metric, bar)
    print(f"\n{'CRF':>4} {'kbit/s':>9} {'PSNR dB':>8} {'SSIM':>7} {'Q mean':>8} {'Q max':>8}")
    for r in rows:
        print(f"{r['crf']:>4} {r['bitrate_kbps']:>9.1f} {r['psnr_db']:>8.2f} {r['ssim']:>7.4f} "
              f"{r['q_mean']:>8.4f} {r['q_max']:>8.4f}")
    print("Q = 1 for identical frames; higher = more of what the detector's filters see was lost.")
    crf = [r["crf"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(crf, [r["q_mean"] for r in rows], "o-", color="tab:red", label="dctqa Q (mean)")
    ax.set_xlabel("x264 CRF")
    ax.set_ylabel("dctqa Q (higher = worse)", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(crf, [r["psnr_db"] for r in rows], "s--", color="tab:blue", label="PSNR")
    ax2.set_ylabel("PSNR (dB)", color="tab:blue")
    spec = parse_spec(name)
    ax.set_title(f"dctqa demo: {spec.path.name if spec.path is not None else name}")
    fig.tight_layout()
    with outputs.staged(plot, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    outputs.write_text(results, json_text({"backbone": name, "why": why, "params": metric.params(), "rows": rows}))
    print(f"\nwrote {plot} and {results}")
    sys.stdout.flush()
    return rows


def _score_variants(ref: np.ndarray, variants: list, metric, bar) -> list[dict]:
    """One table row per variant (by CRF): bitrate, PSNR, SSIM, Q mean and max; ``bar`` counts variants."""
    from .baselines import compute_baselines, global_psnr
    from .io import read_frames

    rows = []
    for v in sorted(variants, key=lambda v: v.crf):
        dist = read_frames(v.path)
        q = metric.score(ref, dist)
        base = compute_baselines(ref, dist, ["psnr", "ssim"])
        rows.append({"crf": v.crf, "bitrate_kbps": round(v.bitrate_kbps, 1),
                     "psnr_db": float(np.mean(base["psnr"])), "psnr_global_db": float(global_psnr(base["mse"])),
                     "ssim": float(np.mean(base["ssim"])), "q_mean": float(q.mean()), "q_max": float(q.max()),
                     "file": str(v.path)})
        bar.update(1)
    return rows
