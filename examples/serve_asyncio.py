"""Embed dctqa.StreamScorer in an asyncio server (standard library only: asyncio.start_server).

Protocol, one TCP connection per camera (requests in order, any number per connection):
request ``"<stream_id> <height> <width>\\n"`` then ``2 * height * width * 3`` bytes (reference
frame, then the compressed frame, uint8 RGB, row-major); reply ``"<Q>\\n"`` or ``"error: ...\\n"``.
Handlers ``await scorer.asubmit(...)``, so the event loop never blocks: pairs of all
connections meet in the scorer's batches.

Run from the repository root:

    .venv/bin/python examples/serve_asyncio.py                 # server + 3 demo clients, then exit
    .venv/bin/python examples/serve_asyncio.py --serve --port 8765   # serve until Ctrl-C
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dctqa of this checkout
import dctqa  # noqa: E402
from dctqa.settings import shared_dir  # noqa: E402

MAX_SIDE = 8192


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scorer: dctqa.StreamScorer) -> None:
    """One connection: read requests, score them through the shared scorer, reply in order."""
    try:
        while line := await reader.readline():
            try:
                sid, h, w = line.decode().split()
                h, w = int(h), int(w)
                if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
                    raise ValueError(f"frame size {h} x {w} outside 1..{MAX_SIDE}")
                data = await reader.readexactly(2 * h * w * 3)
            except (ValueError, UnicodeDecodeError, asyncio.IncompleteReadError) as exc:
                writer.write(f"error: bad request ({exc})\n".encode())
                break
            pair = np.frombuffer(data, np.uint8).reshape(2, h, w, 3)
            try:
                q = await scorer.asubmit(sid, pair[0], pair[1])
                writer.write(f"{q:.6f}\n".encode())
            except dctqa.DctqaError as exc:
                writer.write(f"error: {exc}\n".encode())
            await writer.drain()
    finally:
        writer.close()


async def demo_client(port: int, name: str, frames: list[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """A camera: sends its (original, compressed) pairs and prints each reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    for i, (ref, dist) in enumerate(frames):
        h, w, _ = ref.shape
        writer.write(f"{name} {h} {w}\n".encode() + ref.tobytes() + dist.tobytes())
        await writer.drain()
        replies.append((await reader.readline()).decode().strip())
        print(f"{name:<6} frame {i:>3}  Q={replies[-1]}", flush=True)
    writer.close()
    await writer.wait_closed()
    return replies


def camera_frames(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (original, H.264-compressed) pairs of a shared video at 384 x 288, or noisy
    synthetic frames when the shared videos are absent."""
    video = shared_dir() / "videos" / "vtest.avi"
    if video.is_file():
        from dctqa.study.codec import transcode_live
        from dctqa.io import iter_frames

        return list(transcode_live(iter_frames(video, size=(288, 384), stride=seed + 1, max_frames=n * (seed + 1))))
    g = np.random.default_rng(seed)
    ref = g.integers(0, 256, (n, 288, 384, 3), dtype=np.uint8)
    return [(r, np.clip(r.astype(np.int16) + g.integers(-9, 10, r.shape), 0, 255).astype(np.uint8)) for r in ref]


async def main(args: argparse.Namespace) -> int:
    yolox = shared_dir() / "models" / "yolox_nano.onnx"
    metric = dctqa.Metric(backbone=f"onnx:{yolox}") if yolox.is_file() else dctqa.Metric(domain="pixel")
    with dctqa.StreamScorer(metric, max_batch=8, max_wait_ms=20) as scorer:
        server = await asyncio.start_server(lambda r, w: handle(r, w, scorer), "127.0.0.1", args.port)
        port = server.sockets[0].getsockname()[1]
        print(f"scoring on 127.0.0.1:{port} with {metric!r}", flush=True)
        async with server:
            if args.serve:
                await server.serve_forever()
            data = [camera_frames(args.frames, k) for k in range(args.clients)]
            replies = await asyncio.gather(*(demo_client(port, f"cam{k}", d) for k, d in enumerate(data)))
        st = scorer.stats()
    print(f"{st.total.pairs} pairs, p50 {st.total.p50_ms:.0f} ms, p99 {st.total.p99_ms:.0f} ms, "
          f"mean batch {st.mean_batch:.2f}")
    return 0 if all(not r.startswith("error") for rs in replies for r in rs) else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    ap.add_argument("--serve", action="store_true", help="serve until interrupted (no demo clients)")
    ap.add_argument("--clients", type=int, default=3, help="demo clients (cameras)")
    ap.add_argument("--frames", type=int, default=5, help="frames per demo client")
    try:
        sys.exit(asyncio.run(main(ap.parse_args())))
    except KeyboardInterrupt:
        pass
