"""Small helpers shared by tests (no fixtures: see conftest.py)."""
from __future__ import annotations

import io as _io
import threading
from typing import Callable

import numpy as np


def run_in_threads(work: Callable[[int], object], n: int) -> list[BaseException]:
    """Run ``work(0) .. work(n - 1)`` on ``n`` threads at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def h264_roundtrip(frames: np.ndarray, crf: int, preset: str = "veryfast") -> np.ndarray:
    """Encode ``N x H x W x 3`` uint8 RGB frames with libx264 (yuv420p) in memory and decode them back."""
    import av

    n, h, w, _ = frames.shape
    buf = _io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w + (w % 2), h + (h % 2), "yuv420p"
        s.options = {"crf": str(crf), "preset": preset}
        for f in frames:
            if h % 2 or w % 2:
                f = np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        got = np.stack([fr.to_ndarray(format="rgb24")[:h, :w] for fr in c.decode(video=0)])
    assert got.shape == frames.shape, (got.shape, frames.shape)
    return got


def make_video(path, frames: np.ndarray, codec: str = "libx264", rate: int = 10, **options) -> None:
    """Write ``frames`` (N x H x W x 3 uint8 RGB) to ``path``."""
    import av

    n, h, w, _ = frames.shape
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=rate)
        s.width, s.height = w, h
        s.pix_fmt = "yuv420p" if codec == "libx264" else s.pix_fmt
        s.options = {k: str(v) for k, v in options.items()}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
