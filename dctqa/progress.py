"""The one progress helper: a tqdm bar on a terminal, plain lines elsewhere, nothing when quiet.

    with progress(total=795, desc="scoring", unit="frame", enabled=not quiet) as bar:
        for batch in ...:
            bar.update(len(batch))

On a terminal (the stream's ``isatty()``) it is a tqdm bar that disappears when done. On
anything else (a log file, a CI job, a pipe) it writes one line each time another
``step_percent`` % of ``total`` is done, with elapsed time and ETA, and one line at the
end; with an unknown total, one line at most every ``interval_s`` seconds. Nothing is
written before the first unit is done, so a run that fails at once prints only its error.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Callable


def _fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Counts units done; see the module docstring. Use :func:`progress` to make one."""

    def __init__(self, total: int | None, desc: str, unit: str, enabled: bool, stream: IO[str],
                 step_percent: float, interval_s: float, clock: Callable[[], float]) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self._stream, self._clock = stream, clock
        self._step, self._interval = float(step_percent), float(interval_s)
        self._start = clock()
        self._last_line = self._start
        self._next_pct = self._step
        self._bar = None
        self._lines = enabled and not _isatty(stream)
        if enabled and not self._lines:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False)

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines:
            self._maybe_line()

    def _maybe_line(self) -> None:
        now = self._clock()
        elapsed = now - self._start
        if self.total:
            pct = 100.0 * self.done / self.total
            if pct + 1e-9 < self._next_pct or self.done >= self.total:
                return  # the end gets its own line from close()
            while self._next_pct <= pct + 1e-9:
                self._next_pct += self._step
            eta = elapsed * (self.total - self.done) / self.done
            self._write(f"{pct:.0f}% ({self.done}/{self.total} {self.unit}), elapsed {_fmt_s(elapsed)}, "
                        f"ETA {_fmt_s(eta)}")
        elif now - self._last_line >= self._interval:
            self._last_line = now
            self._write(f"{self.done} {self.unit}, elapsed {_fmt_s(elapsed)}")

    def _write(self, text: str) -> None:
        self._stream.write(f"{self.desc}: {text}\n")
        self._stream.flush()

    def close(self) -> None:
        """Remove the bar, or write the final line (when anything was done)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._lines and self.done:
            self._lines = False
            self._write(f"done, {self.done} {self.unit} in {_fmt_s(self._clock() - self._start)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(total: int | None, desc: str, unit: str = "item", enabled: bool = True,
             stream: IO[str] | None = None, step_percent: float = 10.0, interval_s: float = 30.0,
             clock: Callable[[], float] = time.monotonic) -> Progress:
    """A :class:`Progress` for ``total`` units (``None``: unknown) written to ``stream``
    (default ``sys.stderr``); ``enabled=False`` (quiet) writes nothing."""
    return Progress(total, desc, unit, enabled, sys.stderr if stream is None else stream,
                    step_percent, interval_s, clock)
