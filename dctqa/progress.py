"""The one progress helper: a tqdm bar on a terminal, plain lines elsewhere, nothing when quiet.

    with progress(total=795, desc="scoring", unit="frame", enabled=not quiet) as bar:
        for batch in ...:
            bar.update(len(batch))
    stage("study: stage 2/4, score 25 variants")   # one line naming a stage, in both modes

On a terminal (the stream's ``isatty()``) it is a tqdm bar that disappears when done. On
anything else (a log file, a CI job, a pipe) it writes one line each time another
``step_percent`` % of ``total`` is done, with elapsed time and ETA, and one line at the
end; with an unknown total, one line at most every ``interval_s`` seconds. Nothing is
written before the first unit is done, so a run that fails at once prints only its error.

The mode is chosen per stream (``"auto"``: bar on a terminal, else lines) unless a
process-wide mode is set with :func:`using_mode` (the CLI's ``--progress bar|log|none``;
``--quiet`` is ``none``): ``"bar"`` forces the bar, ``"log"`` the lines, ``"none"``
silences every progress line and stage line.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import IO, Callable, Iterator

#: The progress modes: auto (bar on a terminal, else lines), bar, log (lines), none.
MODES = ("auto", "bar", "log", "none")
_mode = "auto"


@contextmanager
def using_mode(mode: str) -> Iterator[None]:
    """Within the block every :func:`progress` and :func:`stage` uses ``mode`` (one of
    :data:`MODES`); the previous mode is restored afterwards. Raises ``ValueError`` for others."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    previous, _mode = _mode, mode
    try:
        yield
    finally:
        _mode = previous


def resolve_mode(enabled: bool = True, stream: IO[str] | None = None) -> str:
    """``"bar"``, ``"log"`` or ``"none"``: what progress on ``stream`` (default stderr) does now."""
    if not enabled or _mode == "none":
        return "none"
    if _mode != "auto":
        return _mode
    return "bar" if _isatty(sys.stderr if stream is None else stream) else "log"


def stage(text: str, enabled: bool = True, stream: IO[str] | None = None) -> None:
    """Write one line naming a stage (both modes; nothing when quiet), e.g. ``"encode: 25 variants"``."""
    stream = sys.stderr if stream is None else stream
    mode = resolve_mode(enabled, stream)
    if mode == "bar":
        from tqdm import tqdm

        tqdm.write(text, file=stream)  # above any bar that is showing
    elif mode == "log":
        stream.write(text + "\n")
        stream.flush()


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
        mode = resolve_mode(enabled, stream)
        self._lines = mode == "log"
        if mode == "bar":
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
