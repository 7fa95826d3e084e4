"""Numeric settings read from ``DCTQA_*`` environment variables, checked in one place.

Every variable is parsed when it is used (not at import), so a bad value gives a
:class:`~dctqa.errors.ConfigError` naming the variable instead of a crash on import or
a silently replaced value. The compiled ops read ``DCTQA_CPU_CHUNK_MB`` and
``DCTQA_CUDA_WORKSPACE_MB`` themselves; :func:`check_op_env` validates them first, so a
bad value never reaches the C++ side in the normal path.
"""
from __future__ import annotations

import math
import os
import re

from .errors import ConfigError

_SPACE = " \t\n\r\v\f"  # C's isspace(), as the C++ reader skips it
_MAX_MB = 1 << 30  # the compiled ops' upper limit (csrc/common/checks.h, env_budget_bytes)

#: name -> (default, minimum, maximum, meaning).
NUMERIC_ENV: dict[str, tuple[float, float, float, str]] = {
    "DCTQA_SPECTRA_CACHE_MB": (1024, 0, _MAX_MB, "MiB of filter spectra the torch path caches"),
    "DCTQA_CPU_CHUNK_MB": (64, 1, _MAX_MB, "MiB of magnitude buffers per thread in the CPU op"),
    "DCTQA_CUDA_WORKSPACE_MB": (256, 1, _MAX_MB, "MiB of stored magnitudes in the CUDA op"),
    "DCTQA_MAX_PIXELS": (1 << 25, 1, 1 << 40, "largest frame, in pixels (H x W), the metric accepts"),
}

#: Variables the compiled ops read in C++ (whole MiB, at least 1).
OP_ENV = ("DCTQA_CPU_CHUNK_MB", "DCTQA_CUDA_WORKSPACE_MB")


def env_number(name: str, integer: bool = True) -> float:
    """Value of the numeric ``DCTQA_*`` variable ``name`` (its default when unset or empty).

    Raises :class:`ConfigError` when the value is not a finite number (an integer when
    ``integer``) within the variable's range.
    """
    default, minimum, maximum, meaning = NUMERIC_ENV[name]
    raw = os.environ.get(name, "").strip(_SPACE)
    if not raw:
        return int(default) if integer else float(default)
    try:
        if integer and not re.fullmatch(r"[+-]?[0-9]+", raw):  # what C++'s strtoll accepts
            raise ValueError(raw)
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"environment variable {name}={raw!r} is not {kind}; expected {kind} "
                          f">= {minimum:g} ({meaning}; default {default:g})") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ConfigError(f"environment variable {name}={raw!r} is out of range; expected a value "
                          f"from {minimum:g} to {maximum:g} ({meaning}; default {default:g})")
    return value


def check_op_env() -> None:
    """Raise :class:`ConfigError` if a variable read by the compiled ops is malformed."""
    for name in OP_ENV:
        env_number(name, integer=True)
