"""Every ``DCTQA_*`` environment variable the Python code reads, read and checked here only.

:data:`ENV` lists them all (name, kind, default, meaning; ``docs/configuration.md`` is
generated from it by :mod:`dctqa.configdoc`, with the build-time variables of ``setup.py``).
Every variable is parsed when it is used (not at import), so a bad value gives a
:class:`~dctqa.errors.ConfigError` naming the variable and what is expected, never a crash
on import or a silently replaced value.

Accessors, one per question the code asks:

- :func:`env_number` (the numeric variables), :func:`max_pixels`, :func:`spectra_cache_bytes`,
  :func:`decode_threads`
- :func:`ops_disabled` (``DCTQA_DISABLE_OPS``), :func:`env_flag` (``DCTQA_DISABLE_FUSED``)
- :func:`shared_dir` (``DCTQA_SHARED``), :func:`cache_root` (``DCTQA_CACHE_DIR``)
- :func:`kernel_settings`: the variables of the compiled ops (``DCTQA_CPU_CHUNK_MB``,
  ``DCTQA_CUDA_WORKSPACE_MB``, ``DCTQA_SPECTRA_CACHE_MB``, ``DCTQA_FULL_SPECTRA``), read
  once per process (at the first op call) and handed to the extension in one call
  (``dctqa._C.configure``, by :mod:`dctqa.ops.dispatch`); the C++ side never reads the
  environment. :func:`reload` (alias :func:`check_op_env`) reads them again and hands the
  new values over (tests, or a process that changes its environment).
"""
from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
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
    EnvVar("DCTQA_SPECTRA_CACHE_MB", "number", "1024",
           "MiB of filter spectra the compiled CPU ops cache (dctqa's one spectra cache)", 0, _MAX_MB),
    EnvVar("DCTQA_CPU_CHUNK_MB", "number", "64", "MiB of magnitude buffers per thread in the CPU op", 1, _MAX_MB),
    EnvVar("DCTQA_CUDA_WORKSPACE_MB", "number", "256", "MiB of stored magnitudes in the CUDA op", 1, _MAX_MB),
    EnvVar("DCTQA_DISABLE_OPS", "flag", "0", "force the torch path even where the compiled ops are built"),
    EnvVar("DCTQA_DISABLE_FUSED", "flag", "0", "turn off only the fused op spectral_qk_frames (unfused path)"),
    EnvVar("DCTQA_FULL_SPECTRA", "flag", "1",
           "let the CPU ops' spectra cache keep the whole G when a kernel reads it and it takes <= 1/4 of the bound"),
    EnvVar("DCTQA_DECODE_THREADS", "number", "0",
           "threads of each video decoder (0 = FFmpeg's automatic choice; score-many's --threads overrides it "
           "per actor)", 0, 256),
    EnvVar("DCTQA_SHARED", "path", "<checkout>/../shared", "the shared data folder (videos, models)"),
    EnvVar("DCTQA_CACHE_DIR", "path", "$XDG_CACHE_HOME/dctqa (~/.cache/dctqa)",
           "root of dctqa's on-disk caches (detections)"),
    EnvVar("DCTQA_BENCH_BUDGET_S", "number", "4", "seconds of timing per benchmark case (benchmarks only)",
           0, 1e6),
    EnvVar("DCTQA_BENCH_SERVE_S", "number", "8", "seconds of load per serving benchmark level (benchmarks only)",
           0, 1e6),
    EnvVar("DCTQA_BENCH_FUSED_QUICK", "flag", "0", "run only the small cases of the fused benchmark"),
)}

#: Variables of the compiled ops, read by :func:`kernel_settings` (whole MiB >= 1 for the
#: budgets; MiB from 0 to 2^30 with fractions for the spectra cache; on/off, unset = on).
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


def decode_threads() -> int:
    """``DCTQA_DECODE_THREADS``: threads of each video decoder, 0 = FFmpeg's automatic choice
    (frame threads, about one per core: fast for one stream, oversubscribed for many)."""
    return int(env_number("DCTQA_DECODE_THREADS"))


def spectra_cache_bytes() -> int:
    """``DCTQA_SPECTRA_CACHE_MB`` in bytes: the bound of the compiled ops' filter-spectra cache
    (read now; :func:`kernel_settings` holds the value handed to the extension)."""
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


_kernel_lock = threading.Lock()
_kernel_values: dict | None = None
_generation = 0  # reloads so far
_listeners: list[Callable[[dict], None]] = []


def _read_kernel_settings() -> dict:
    """The compiled ops' variables, parsed now (:class:`ConfigError` if one is malformed)."""
    full = os.environ.get("DCTQA_FULL_SPECTRA", "").strip(_SPACE)
    return {
        "cpu_chunk_bytes": int(env_number("DCTQA_CPU_CHUNK_MB")) << 20,
        "cuda_workspace_bytes": int(env_number("DCTQA_CUDA_WORKSPACE_MB")) << 20,
        "spectra_cache_bytes": spectra_cache_bytes(),
        "full_spectra": True if not full else env_flag("DCTQA_FULL_SPECTRA"),
    }


def kernel_settings() -> dict:
    """The settings of the compiled ops, read from the environment once per process (the
    first call) and kept: ``{"cpu_chunk_bytes", "cuda_workspace_bytes",
    "spectra_cache_bytes"}`` (bytes: DCTQA_CPU_CHUNK_MB, DCTQA_CUDA_WORKSPACE_MB,
    DCTQA_SPECTRA_CACHE_MB MiB x 2^20) and ``"full_spectra"`` (DCTQA_FULL_SPECTRA, unset = on).
    Raises :class:`ConfigError` for a malformed value (and reads again on the next call)."""
    global _kernel_values
    with _kernel_lock:
        if _kernel_values is None:
            _kernel_values = _read_kernel_settings()
        return dict(_kernel_values)


def kernel_generation() -> int:
    """How many times :func:`reload` has run (a holder of handed-over values compares it)."""
    return _generation


def on_kernel_settings(listener: Callable[[dict], None]) -> None:
    """Call ``listener(values)`` whenever :func:`reload` reads new kernel settings
    (:mod:`dctqa.ops.dispatch` hands them to the loaded extension this way)."""
    _listeners.append(listener)


def reload() -> dict:
    """Read the compiled ops' variables again now and hand them to every listener (the
    loaded extension). Raises :class:`ConfigError` if one is malformed; the old values are
    then dropped, so the next op call reads (and refuses) them again."""
    global _kernel_values, _generation
    with _kernel_lock:
        _kernel_values = None
        _generation += 1
        _kernel_values = _read_kernel_settings()
        values = dict(_kernel_values)
    for listener in list(_listeners):
        listener(values)
    return values


def check_op_env() -> None:
    """Raise :class:`ConfigError` if a variable of the compiled ops is malformed; otherwise
    the values read are handed over (:func:`reload`)."""
    reload()
