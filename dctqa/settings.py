"""Every ``DCTQA_*`` environment variable the Python code reads, read and checked here only.

:data:`ENV` lists them all (name, kind, default, meaning; the README's table is the same
list plus the build-time variables of ``setup.py``). Every variable is parsed when it is
used (not at import), so a bad value gives a :class:`~dctqa.errors.ConfigError` naming
the variable and what is expected, never a crash on import or a silently replaced value.

Accessors, one per question the code asks:

- :func:`env_number` (the numeric variables), :func:`max_pixels`, :func:`spectra_cache_bytes`
- :func:`ops_disabled` (``DCTQA_DISABLE_OPS``), :func:`env_flag` (``DCTQA_DISABLE_FUSED``)
- :func:`shared_dir` (``DCTQA_SHARED``), :func:`cache_root` (``DCTQA_CACHE_DIR``)
- :func:`check_op_env`: the compiled ops read ``DCTQA_CPU_CHUNK_MB``,
  ``DCTQA_CUDA_WORKSPACE_MB``, ``DCTQA_SPECTRA_CACHE_MB`` and ``DCTQA_FULL_SPECTRA``
  themselves (``csrc/common/checks.h``, with the same rules); this validates them first, so
  a bad value never reaches the C++ side in the normal path.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

_SPACE = " \t\n\r\v\f"  # C's isspace(), as the C++ reader skips it
_MAX_MB = 1 << 30  # the compiled ops' upper limit (csrc/common/checks.h)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class EnvVar:
    """One variable: ``kind`` is ``number`` (whole number unless read as float), ``flag``
    (1/true/yes/on or 0/false/no/off, any case) or ``path``; ``default`` as documented."""

    name: str
    kind: str
    default: str
    meaning: str
    minimum: float = 0
    maximum: float = 0


#: Every DCTQA_* variable read at run time (Python or the compiled ops), by name.
ENV: dict[str, EnvVar] = {v.name: v for v in (
    EnvVar("DCTQA_MAX_PIXELS", "number", str(1 << 25), "largest frame, in pixels (H x W), the metric accepts",
           1, 1 << 40),
    EnvVar("DCTQA_SPECTRA_CACHE_MB", "number", "1024", "MiB of filter spectra the torch path caches", 0, _MAX_MB),
    EnvVar("DCTQA_CPU_CHUNK_MB", "number", "64", "MiB of magnitude buffers per thread in the CPU op", 1, _MAX_MB),
    EnvVar("DCTQA_CUDA_WORKSPACE_MB", "number", "256", "MiB of stored magnitudes in the CUDA op", 1, _MAX_MB),
    EnvVar("DCTQA_DISABLE_OPS", "flag", "0", "force the torch path even where the compiled ops are built"),
    EnvVar("DCTQA_DISABLE_FUSED", "flag", "0", "turn off only the fused op spectral_qk_frames (unfused path)"),
    EnvVar("DCTQA_FULL_SPECTRA", "flag", "1",
           "let the CPU ops' spectra cache keep the whole G when a kernel reads it and it takes <= 1/4 of the bound"),
    EnvVar("DCTQA_SHARED", "path", "<checkout>/../shared", "the shared data folder (videos, models)"),
    EnvVar("DCTQA_CACHE_DIR", "path", "$XDG_CACHE_HOME/dctqa (~/.cache/dctqa)",
           "root of dctqa's on-disk caches (detections)"),
    EnvVar("DCTQA_BENCH_BUDGET_S", "number", "4", "seconds of timing per benchmark case (benchmarks only)",
           0, 1e6),
    EnvVar("DCTQA_BENCH_SERVE_S", "number", "8", "seconds of load per serving benchmark level (benchmarks only)",
           0, 1e6),
    EnvVar("DCTQA_BENCH_FUSED_QUICK", "flag", "0", "run only the small cases of the fused benchmark"),
)}

#: Variables the compiled ops read in C++ (csrc/common/checks.h): whole MiB >= 1 (the
#: budgets), MiB from 0 to 2^30 with fractions (the spectra cache, as the torch path reads
#: it), on/off (DCTQA_FULL_SPECTRA, unset = on).
OP_ENV = ("DCTQA_CPU_CHUNK_MB", "DCTQA_CUDA_WORKSPACE_MB")
OP_ENV_BOUNDS = ("DCTQA_SPECTRA_CACHE_MB",)
OP_ENV_FLAGS = ("DCTQA_FULL_SPECTRA",)


def _raw(name: str, kind: str) -> tuple[EnvVar, str]:
    var = ENV[name]
    if var.kind != kind:
        raise KeyError(f"{name} is a {var.kind} variable, not a {kind}")
    return var, os.environ.get(name, "").strip(_SPACE)


def env_number(name: str, integer: bool = True) -> float:
    """Value of the numeric ``DCTQA_*`` variable ``name`` (its default when unset or empty).

    Raises :class:`ConfigError` when the value is not a finite number (an integer when
    ``integer``) within the variable's range.
    """
    var, raw = _raw(name, "number")
    default, minimum, maximum = float(var.default), var.minimum, var.maximum
    if not raw:
        return int(default) if integer else default
    try:
        if integer and not re.fullmatch(r"[+-]?[0-9]+", raw):  # what C++'s strtoll accepts
            raise ValueError(raw)
        value = int(raw) if integer else float(raw)
    except ValueError:
        what = "a whole number" if integer else "a number"
        raise ConfigError(f"environment variable {name}={raw!r} is not {what}; expected {what} "
                          f">= {minimum:g} ({var.meaning}; default {default:g})") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ConfigError(f"environment variable {name}={raw!r} is out of range; expected a value "
                          f"from {minimum:g} to {maximum:g} ({var.meaning}; default {default:g})")
    return value


def env_flag(name: str) -> bool:
    """The on/off variable ``name``: ``1/true/yes/on`` or ``0/false/no/off`` (any case; unset
    or empty = off). Anything else raises :class:`ConfigError`."""
    var, raw = _raw(name, "flag")
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"environment variable {name}={raw!r} is not an on/off value; expected one of "
                      f"1, true, yes, on or 0, false, no, off ({var.meaning}; default off)")


def env_path(name: str) -> Path | None:
    """The folder variable ``name`` as a Path (``~`` expanded), or ``None`` when unset or empty.

    Raises :class:`ConfigError` for a value no file system accepts (a NUL byte) or an
    existing file that is not a folder.
    """
    var, raw = _raw(name, "path")
    if not raw:
        return None
    if "\0" in raw:
        raise ConfigError(f"environment variable {name} holds a NUL byte; expected a folder path ({var.meaning})")
    path = Path(os.path.expanduser(raw))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"environment variable {name}={raw!r} names a file, expected a folder ({var.meaning})")
    return path


def max_pixels() -> int:
    """``DCTQA_MAX_PIXELS``: the largest frame (H x W pixels) a Metric accepts by default."""
    return int(env_number("DCTQA_MAX_PIXELS"))


def spectra_cache_bytes() -> int:
    """``DCTQA_SPECTRA_CACHE_MB`` in bytes: the bound of the torch path's filter-spectra cache."""
    return int(env_number("DCTQA_SPECTRA_CACHE_MB", integer=False) * (1 << 20))


def ops_disabled() -> bool:
    """``DCTQA_DISABLE_OPS``: whether the compiled ops are bypassed for the torch path."""
    return env_flag("DCTQA_DISABLE_OPS")


def shared_dir() -> Path:
    """The shared data folder (videos, YOLOX-Nano): ``$DCTQA_SHARED``, else ``../shared``
    beside this checkout."""
    return env_path("DCTQA_SHARED") or Path(__file__).resolve().parents[1].parent / "shared"


def cache_root() -> Path:
    """Root of dctqa's on-disk caches: ``$DCTQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/dctqa``
    (``~/.cache/dctqa``)."""
    root = env_path("DCTQA_CACHE_DIR")
    if root is not None:
        return root
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "dctqa"


def check_op_env() -> None:
    """Raise :class:`ConfigError` if a variable read by the compiled ops is malformed."""
    for name in OP_ENV:
        env_number(name, integer=True)
    for name in OP_ENV_BOUNDS:
        env_number(name, integer=False)
    for name in OP_ENV_FLAGS:
        env_flag(name)
