"""Tuning of the compiled ops: the CPU kernel mode, the level of the hand-written x86 paths,
and the one cache of filter spectra. Process-wide; for tests, benchmarks and operators.

Everything here goes through the extension's one configuration call
(``dctqa._C.configure``), the same call that hands over the settings read from the
environment (:func:`configure` reads those again). Each function is a no-op (or returns
``None``) when the extension is not loaded.

The x86 paths are chosen once, through the table of function pointers of
``csrc/common/cpu_features.h`` that the extension fills when it loads and again when
:func:`set_cpu_intrinsics` changes the level; no kernel call checks the CPU.
"""
from __future__ import annotations

from .. import settings
from ..errors import InputError
from .dispatch import _extension, _load

#: Kernels of the CPU spectral ops (:func:`set_cpu_kernel_mode`), in the extension's numbering.
CPU_KERNEL_MODES = ("auto", "planes", "stream", "stream-check")

#: Levels of the hand-written x86 paths (:func:`set_cpu_intrinsics`), in the extension's numbering.
CPU_INTRINSICS = ("none", "avx2", "all")


def _ext():
    """The extension when loaded, else ``None``."""
    return _extension() if _load()["loaded"] else None


def configure() -> dict:
    """Read the kernel settings from the environment again (:func:`dctqa.settings.reload`)
    and hand them to the extension; returns them. :class:`~dctqa.errors.ConfigError` for a
    malformed value."""
    return settings.reload()


def config() -> dict | None:
    """The extension's settings in force (``cpu_chunk_bytes``, ``cuda_workspace_bytes``,
    ``spectra_cache_bytes``, ``full_spectra``, ``intrinsics``, ``kernel_mode``; numbers as
    the extension holds them), or ``None`` without the extension."""
    ext = _ext()
    return None if ext is None else dict(ext.config())


def cpu_kernel_info() -> dict | None:
    """The CPU spectral kernel in use and its counters, or ``None`` without the extension:
    ``{"mode", "intrinsics", "avx512", "avx2_fma", "streamed", "fallbacks", "missed"}``: the
    mode name (:data:`CPU_KERNEL_MODES`); the level of the hand-written x86 paths
    (:data:`CPU_INTRINSICS`, :func:`set_cpu_intrinsics`) and which of them the table of x86
    paths holds on this CPU at that level (AVX-512F; AVX2 + FMA);
    then counts of (frame pair, filter) results since the process started: finished by the
    streaming kernel, finished by its exact plane fallback, and of the latter those whose
    median bracket missed (the others: a trial floor too far from the exact one)."""
    ext = _ext()
    if ext is None:
        return None
    info = dict(ext.cpu_kernel_info())
    info["mode"] = CPU_KERNEL_MODES[info["mode"]]
    info["intrinsics"] = CPU_INTRINSICS[info["intrinsics"]]
    return info


def set_cpu_kernel_mode(mode: str) -> None:
    """Choose the CPU spectral kernel for the whole process (tests and benchmarks):

    * ``"auto"`` (default): the streaming kernel for frames of at least 3 072 pixels (64 x 48)
      (it keeps no magnitude plane; see ``csrc/spectral_qk/cpu/spectral_stream.cpp``), the
      plane kernel for smaller ones;
    * ``"planes"``: the plane kernel always (A^o and A^c stored whole, then selection and ratio);
    * ``"stream"``: the streaming kernel whenever it can run (frames of 4+ rows, 64+ sampled values);
    * ``"stream-check"``: the streaming kernel, then every result recomputed by its exact fallback.

    The kernels agree to well within METRIC.md's 1e-4 of Q (the streaming kernel's series
    remainder is the largest part). No-op without the extension."""
    if mode not in CPU_KERNEL_MODES:
        raise InputError(f"CPU kernel mode must be one of {', '.join(CPU_KERNEL_MODES)}, got {mode!r}")
    ext = _ext()
    if ext is not None:
        ext.configure(kernel_mode=CPU_KERNEL_MODES.index(mode))


def set_cpu_intrinsics(level: bool | str) -> None:
    """Limit the hand-written x86 paths of the CPU kernels for the whole process (tests and
    benchmarks): ``"all"`` or ``True`` (default: whatever the CPU has), ``"avx2"`` (AVX2 + FMA
    at most, as on a CPU without AVX-512: the streaming kernel's tile 8 columns wide, DCT
    lines 8 per vector, 12-bit reciprocal (square-root) estimates, the bracket pass's
    compress by permutation) or ``"none"`` / ``False`` (the portable versions, as on a CPU
    without either: a 4-column tile and DCT lines in SSE2 vectors, true square roots and
    divisions, the scalar bracket pass). The extension refills its table of x86 paths for
    the level. Each level differs by a few float32 ulp per value at most (METRIC.md allows
    1e-4 of Q). Functions the compiler clones per instruction set (plain portable loops) are
    not affected. No-op without the extension."""
    names = {True: "all", False: "none"}
    name = names.get(level, level) if isinstance(level, bool) else level
    if name not in CPU_INTRINSICS:
        raise InputError(f"set_cpu_intrinsics takes True, False or one of {', '.join(CPU_INTRINSICS)}, "
                         f"got {level!r}")
    ext = _ext()
    if ext is not None:
        ext.configure(intrinsics=CPU_INTRINSICS.index(name))


def spectra_cache_info() -> dict | None:
    """dctqa's one cache of filter spectra (kept by the compiled CPU ops, shared by every
    call and thread in the process): ``{"bytes", "entries", "hits", "misses", "max_bytes"}``
    (``max_bytes`` from ``DCTQA_SPECTRA_CACHE_MB``, default 1024 MiB, or
    :func:`spectra_cache_set_max_bytes`), or ``None`` when the extension is not loaded (the
    torch path then builds the spectra for each call and keeps none)."""
    ext = _ext()
    return None if ext is None else dict(ext.spectra_cache_info())


def spectra_cache_clear() -> None:
    """Empty the spectra cache and reset its counters (no-op without the extension)."""
    ext = _ext()
    if ext is not None:
        ext.spectra_cache_clear()


def spectra_cache_set_max_bytes(max_bytes: int) -> None:
    """Bound the spectra cache to ``max_bytes`` (an int >= 0; evicts down to it) until the
    next :func:`configure`, which restores ``DCTQA_SPECTRA_CACHE_MB``."""
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise InputError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
    ext = _ext()
    if ext is not None:
        ext.configure(spectra_cache_bytes=max_bytes)
