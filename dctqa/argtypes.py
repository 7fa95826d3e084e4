"""Command-line pieces every CLI shares (the top ``dctqa.cli`` and the wings' plugins):
argument types and the progress options. Core-level so that a wing's CLI never imports the
top CLI."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the error names the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def bounded_int(low: int, high: int | None = None):
    """argparse type: an integer in ``low..high`` (no upper bound when ``high`` is ``None``)."""
    where = f"in {low}..{high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {where}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {where}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def finite_float(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False):
    """argparse type: a finite number in ``[low, high]`` (``(low, ...`` with ``low_open``,
    ``..., high)`` with ``high_open``)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = (not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
        if bad:
            lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
            hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
            raise argparse.ArgumentTypeError(f"must be a finite number {' and '.join(x for x in (lo, hi) if x)}, "
                                             f"got {text!r}".replace("number  ", "number "))
        return value

    parse.__name__ = "number"
    return parse


def name_list(valid, what: str = "name"):
    """argparse type: a comma-separated list of names from ``valid`` -> tuple, in the given
    order without repeats; an unknown or empty name is an error that lists the valid ones."""
    choices = tuple(valid)

    def parse(text: str) -> tuple[str, ...]:
        names = [n.strip() for n in text.split(",")]
        bad = [n for n in names if n not in choices]
        if bad:
            shown = ", ".join(repr(n) for n in bad)
            raise argparse.ArgumentTypeError(f"unknown {what}{'s' if len(bad) > 1 else ''} {shown}; expected a "
                                             f"comma-separated list of: {', '.join(choices)}")
        return tuple(dict.fromkeys(names))

    parse.__name__ = f"{what} list"
    return parse


def add_progress_options(p: argparse.ArgumentParser) -> None:
    """``--progress auto|bar|log|none`` and ``--quiet`` (= none), read by :func:`progress_mode`."""
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "log", "none"),
                   help="auto (default): a bar on a terminal, else one line per stage and per 10%% with "
                        "elapsed time and ETA (log); bar or log to force one; none = --quiet")
    p.add_argument("--quiet", action="store_true", help="no progress at all (same as --progress none)")


def progress_mode(args: argparse.Namespace) -> str:
    """The progress mode the command line asked for (``--quiet`` wins)."""
    return "none" if getattr(args, "quiet", False) else getattr(args, "progress", "auto")
