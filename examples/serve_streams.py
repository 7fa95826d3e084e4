"""Score many camera streams live with one dctqa.StreamScorer.

One decoder thread per stream decodes a shared video with PyAV (``dctqa.io.iter_frames``),
compresses each frame with H.264 as the camera's encoder would (``dctqa.study.codec.transcode_live``)
and submits the (original, compressed) pair. The scorer batches pairs of all streams; a
done-callback prints each stream's Q as it arrives, in frame order. Counters at the end.

Run from the repository root (after ``make``; the example imports the dctqa of its checkout):

    .venv/bin/python examples/serve_streams.py                      # 3 streams, 40 frames each
    .venv/bin/python examples/serve_streams.py --streams 6 --frames 200 --crf 41 --fps 25
"""
from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dctqa of this checkout
import dctqa  # noqa: E402

from dctqa.study.codec import transcode_live  # noqa: E402
from dctqa.settings import shared_dir  # noqa: E402
from dctqa.io import iter_frames  # noqa: E402

PRINT_LOCK = threading.Lock()


def feed(scorer: dctqa.StreamScorer, name: str, video: Path, args: argparse.Namespace) -> None:
    """Decoder thread: decode, compress, submit; ``--fps`` paces it like a live camera (0: as fast as possible)."""
    size = None if args.height is None else (args.height, args.height * 4 // 3 // 2 * 2)
    frames = iter_frames(video, size=size, max_frames=args.frames)
    t0 = time.perf_counter()
    for i, (ref, dist) in enumerate(transcode_live(frames, crf=args.crf)):
        if args.fps:
            time.sleep(max(0.0, t0 + i / args.fps - time.perf_counter()))
        fut = scorer.submit(name, ref, dist)       # blocks while the queue is full (backpressure)
        fut.add_done_callback(lambda f, i=i: show(name, i, f))


def show(name: str, i: int, fut) -> None:
    """Runs on the scorer's thread when a pair is done: keep it short."""
    text = f"Q={fut.result():.4f}" if fut.exception() is None else f"error: {fut.exception()}"
    with PRINT_LOCK:
        print(f"{name:<24} frame {i:>4}  {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=3, help="number of camera streams (videos are reused)")
    ap.add_argument("--frames", type=int, default=40, help="frames per stream")
    ap.add_argument("--crf", type=int, default=35, help="x264 CRF of the simulated cameras (0..51)")
    ap.add_argument("--fps", type=float, default=0.0, help="pace each stream at this rate (0: as fast as possible)")
    ap.add_argument("--height", type=int, default=None, help="resize frames to this height (4:3); default: as decoded")
    ap.add_argument("--backbone", default=None, help="default: onnx:<shared>/models/yolox_nano.onnx, else pixel")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=20.0)
    args = ap.parse_args(argv)
    videos = sorted((shared_dir() / "videos").glob("*.mp4")) + sorted((shared_dir() / "videos").glob("*.avi"))
    if not videos:
        print(f"error: no videos in {shared_dir() / 'videos'} (set DCTQA_SHARED)", file=sys.stderr)
        return 2
    yolox = shared_dir() / "models" / "yolox_nano.onnx"
    backbone = args.backbone or (f"onnx:{yolox}" if yolox.is_file() else "pixel")
    metric = dctqa.Metric(backbone=backbone, domain="pixel" if backbone == "pixel" else "spectral")
    names = [f"cam{k}:{v.stem}" for k, v in zip(range(args.streams), itertools.cycle(videos))]
    with dctqa.StreamScorer(metric, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                            max_queue=4 * args.max_batch) as scorer:
        threads = [threading.Thread(target=feed, args=(scorer, n, v, args), name=n)
                   for n, v in zip(names, itertools.cycle(videos))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    st = scorer.stats()                              # close() above scored every pending pair
    print(f"\n{'stream':<24}{'pairs':>7}{'dropped':>9}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for name, s in [*st.streams.items(), ("all", st.total)]:
        p50 = f"{s.p50_ms:9.1f}" if s.p50_ms is not None else f"{'-':>9}"
        p99 = f"{s.p99_ms:9.1f}" if s.p99_ms is not None else f"{'-':>9}"
        print(f"{name:<24}{s.pairs:>7}{s.dropped:>9}{s.failed:>8}{p50}{p99}")
    print(f"batches: {st.batches}, mean batch {st.mean_batch:.2f} pairs, metric {metric!r}")
    return 0 if st.total.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
