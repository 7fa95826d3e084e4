"""The serving examples in examples/ run as the README shows them (on a few frames)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO, shared_file


def _run(*args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Warning" not in p.stderr, p.stderr
    return p.stdout


def test_serve_streams_example() -> None:
    shared_file("videos/vtest.avi")  # skips with the reason when ../shared is absent
    out = _run("examples/serve_streams.py", "--streams", "2", "--frames", "3", "--height", "144")
    lines = re.findall(r"^(cam\d:\S+)\s+frame\s+(\d+)\s+Q=(\d+\.\d+)$", out, re.M)
    assert len(lines) == 6, out
    for cam in {c for c, _, _ in lines}:
        assert [int(i) for c, i, _ in lines if c == cam] == [0, 1, 2]   # live, in frame order
    assert all(float(q) > 1.0 for _, _, q in lines)                  # compressed frames: Q > 1
    assert re.search(r"^all\s+6\s+0\s+0\s", out, re.M), out


def test_serve_asyncio_example() -> None:
    """Runs with the shared video and YOLOX-Nano when present, else synthetic frames (pixel domain)."""
    out = _run("examples/serve_asyncio.py", "--clients", "2", "--frames", "2")
    qs = re.findall(r"^cam\d\s+frame\s+\d+\s+Q=(\d+\.\d+)$", out, re.M)
    assert len(qs) == 4 and all(float(q) > 1.0 for q in qs), out
    assert "4 pairs" in out
