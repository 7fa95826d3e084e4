"""dctqa.progress: bar on a terminal, lines elsewhere, nothing when quiet."""
from __future__ import annotations

import io

from dctqa.progress import progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lines_per_step_with_elapsed_and_eta():
    out, clock = io.StringIO(), Clock()
    with progress(100, "scoring", unit="frame", stream=out, step_percent=25, clock=clock) as bar:
        for _ in range(10):
            clock.t += 2.0
            bar.update(10)
    lines = out.getvalue().splitlines()
    assert lines == ["scoring: 30% (30/100 frame), elapsed 0:06, ETA 0:14",
                     "scoring: 50% (50/100 frame), elapsed 0:10, ETA 0:10",
                     "scoring: 80% (80/100 frame), elapsed 0:16, ETA 0:04",
                     "scoring: done, 100 frame in 0:20"]


def test_unknown_total_writes_at_most_every_interval():
    out, clock = io.StringIO(), Clock()
    bar = progress(None, "detect", stream=out, interval_s=30, clock=clock)
    for _ in range(100):
        clock.t += 1.0
        bar.update()
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == ["detect: 30 item, elapsed 0:30", "detect: 60 item, elapsed 1:00",
                                           "detect: 90 item, elapsed 1:30", "detect: done, 100 item in 1:40"]


def test_quiet_and_nothing_done_write_nothing():
    out = io.StringIO()
    with progress(10, "x", enabled=False, stream=out) as bar:
        bar.update(10)
    with progress(10, "y", stream=out):
        pass
    assert out.getvalue() == ""


def test_terminal_gets_a_tqdm_bar():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    with progress(4, "scoring", unit="frame", stream=out) as bar:
        assert bar._bar is not None
        bar.update(4)
    assert "scoring" in out.getvalue() and "done" not in out.getvalue()
