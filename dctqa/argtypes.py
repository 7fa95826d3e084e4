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


def add_progress_options(p: argparse.ArgumentParser) -> None:
    """``--progress auto|bar|log|none`` and ``--quiet`` (= none), read by :func:`progress_mode`."""
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "log", "none"),
                   help="auto (default): a bar on a terminal, else one line per stage and per 10%% with "
                        "elapsed time and ETA (log); bar or log to force one; none = --quiet")
    p.add_argument("--quiet", action="store_true", help="no progress at all (same as --progress none)")


def progress_mode(args: argparse.Namespace) -> str:
    """The progress mode the command line asked for (``--quiet`` wins)."""
    return "none" if getattr(args, "quiet", False) else getattr(args, "progress", "auto")
