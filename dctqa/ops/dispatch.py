"""Dispatch: the one place that knows whether the compiled ops exist for a device.

The extension ``dctqa._C`` registers four torch ops (schemas in ``csrc/*/*.cpp``):

* ``torch.ops.dctqa.spectral_qk(co, cc, filters, epsilon) -> Tensor[N, K] float64``
* ``torch.ops.dctqa.ratio_qk(ao, ac, epsilon) -> Tensor[N, K] float64``
* ``torch.ops.dctqa.spectral_qk_frames(ref, dist, filters, channel_index, scale, mean, std,
  epsilon) -> Tensor[N, K] float64``: the whole spectral (and pixel) metric from RGB
  frames, preprocessing and DCTs included ("fused"; CPU kernel only so far)
* ``torch.ops.dctqa.sample_patches(...)``: the no-reference wing's sampler

Which kernels a build holds is reported by the extension itself (``dctqa._C.kernels()``,
``{op: ["CPU", "CUDA"]}``), read once when it loads. Fake (meta) kernels are registered
on loading (:mod:`dctqa.ops.fakes`) so that the ops work under ``torch.compile``. On
loading, the kernel settings (:func:`dctqa.settings.kernel_settings`, read once) are handed
to the extension in one call (``dctqa._C.configure``), and again on
:func:`dctqa.settings.reload`. If the extension does not load, one warning goes to the
``dctqa.ops`` logger and every op takes its torch path.

The wrappers below check their arguments, call the op when it has a kernel for the tensors'
device and fall back to the torch path otherwise (or when ``DCTQA_DISABLE_OPS=1``):
:mod:`dctqa.ops.spectral_torch`, :mod:`dctqa.ops.ratio_torch`, and
:mod:`dctqa.ops.preprocess` + :mod:`dctqa.ops.dct` for the fused op. The tuning controls
(kernel mode, intrinsics level, spectra cache) are in :mod:`dctqa.ops.tuning`.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import math
import threading
from typing import TYPE_CHECKING

import torch

from .. import settings
from ..errors import ConfigError, InputError
from ..settings import env_flag, ops_disabled
from .dct import dct2
from .fakes import register_fakes
from .patches_torch import sample_patches_torch
from .preprocess import preprocess_torch
from .ratio_torch import ratio_qk_torch
from .spectral_torch import spectral_qk_torch

if TYPE_CHECKING:  # pragma: no cover
    from ..backbones.base import Preprocess

_OPS = ("spectral_qk", "ratio_qk")
FUSED_OP = "spectral_qk_frames"
PATCHES_OP = "sample_patches"  # the no-reference wing's sampler (dctqa.nr.sampling)
_log = logging.getLogger("dctqa.ops")
_lock = threading.RLock()
_state: dict | None = None


def _extension():
    """The compiled module ``dctqa._C`` (imported by name: it is a shared object, not a
    Python module of the package, and importing it through ``dctqa`` would make the floor
    import the package root)."""
    return importlib.import_module("dctqa._C")


def _load() -> dict:
    """Imports ``dctqa._C`` once and hands it the kernel settings; returns ``{"loaded": bool,
    "error": str | None, "kernels": {op: set of dispatch keys}, "generation": the
    :func:`dctqa.settings.kernel_generation` handed over, -1 before}``. A failure is logged
    once (a warning on the ``dctqa.ops`` logger) with its reason."""
    global _state
    with _lock:
        if _state is not None:
            return _state
        try:
            ext = _extension()  # registers torch.ops.dctqa.*
            kernels = {op: set(keys) for op, keys in ext.kernels().items()}
        except (ImportError, OSError, AttributeError) as exc:
            # not built, built against another torch, a missing CUDA runtime library, or an
            # extension older than this package (no kernels())
            _state = {"loaded": False, "error": f"{type(exc).__name__}: {exc}", "kernels": {}, "generation": -1}
            _log.warning("dctqa: the C++ extension did not load (%s); using the slow torch fallback",
                         _state["error"])
            return _state
        register_fakes()
        _state = {"loaded": True, "error": None, "kernels": kernels, "generation": -1}
        settings.on_kernel_settings(_hand_over)
        try:
            _hand_over(settings.kernel_settings())
        except ConfigError:
            pass  # a malformed variable: the first op call raises it (_configured)
        return _state


def _hand_over(values: dict) -> None:
    """Give the kernel settings to the loaded extension (one call)."""
    gen = settings.kernel_generation()
    _extension().configure(**values)
    if _state is not None:
        _state["generation"] = gen


def _configured() -> None:
    """Before every op call, whichever path runs: make sure the kernel settings of the last
    :func:`dctqa.settings.reload` were read (once; :class:`~dctqa.errors.ConfigError` if one
    is malformed, so a bad value is never ignored, on the torch path either) and handed to
    the extension when it is loaded. After the first call this compares one int."""
    st = _load()
    if st["generation"] == settings.kernel_generation():
        return
    with _lock:
        gen = settings.kernel_generation()
        if st["generation"] != gen:
            values = settings.kernel_settings()
            if st["loaded"]:
                _extension().configure(**values)
            st["generation"] = gen


def _has_kernel(op: str, dispatch_key: str) -> bool:
    return dispatch_key in _load()["kernels"].get(op, ())


def available() -> dict:
    """Which implementations exist in this process.

    Returns ``{"reference": True, "torch": True, "cpp": bool, "cpp_fused": bool, "cuda": bool,
    "cuda_device": bool, "extension_error": str | None}``: ``cpp``/``cuda`` say whether
    the compiled ops have CPU/CUDA kernels (as the extension reports them: ``cuda`` is about
    the build, ``cuda_device`` about the hardware); ``cpp_fused`` whether the fused
    frames-to-Q op (``spectral_qk_frames``) has a CPU kernel; ``extension_error`` says why
    the extension did not load.
    ``DCTQA_DISABLE_OPS=1`` does not change this report, only :func:`implementation_for`.
    """
    st = _load()
    return {
        "reference": True,
        "torch": True,
        "cpp": all(_has_kernel(op, "CPU") for op in _OPS),
        "cpp_fused": _has_kernel(FUSED_OP, "CPU"),
        "cuda": all(_has_kernel(op, "CUDA") for op in _OPS),
        "cuda_device": torch.cuda.is_available(),
        "extension_error": st["error"],
    }


def implementation_for(device: torch.device | str, op: str = "spectral_qk") -> str:
    """What :func:`spectral_qk` / :func:`ratio_qk` (``op="ratio_qk"``) /
    :func:`spectral_qk_frames` (``op="spectral_qk_frames"``) / :func:`sample_patches`
    (``op="sample_patches"``) run for tensors on ``device``:
    ``"cuda-op"``, ``"cpp-op"`` or ``"torch"``; for the fused op ``"cpp-fused"``, or
    ``"torch"`` when it has no kernel for the device or ``DCTQA_DISABLE_FUSED=1`` (its
    fallback then runs the preprocessing and DCTs in torch/SciPy and :func:`spectral_qk`,
    which still uses the ``spectral_qk`` op)."""
    if op not in _OPS + (FUSED_OP, PATCHES_OP):
        raise InputError(f"unknown op {op!r}; expected one of {_OPS + (FUSED_OP, PATCHES_OP)}")
    if ops_disabled():
        return "torch"
    dev = torch.device(device)
    if op == FUSED_OP:
        if env_flag("DCTQA_DISABLE_FUSED"):
            return "torch"
        return "cpp-fused" if dev.type == "cpu" and _has_kernel(op, "CPU") else "torch"
    if dev.type == "cuda" and _has_kernel(op, "CUDA"):
        return "cuda-op"
    if dev.type == "cpu" and _has_kernel(op, "CPU"):
        return "cpp-op"
    return "torch"


def _check_float_tensor(name: str, t: object, dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != dim:
        raise InputError(f"{name} must have {dim} dimensions, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InputError(f"{name} must be a floating tensor, got {t.dtype}")


#: Limits of the CUDA kernels (csrc/spectral_qk/cuda/spectral_qk_cuda.h); inputs beyond them
#: run on the torch path on that device, so the result never depends on the device.
CUDA_MAX_CHANNELS = 4
CUDA_MAX_ROWS = 65535
_MAX_PLANE = 1 << 31  # pixels per plane / frequencies per row the ops index with int32


def _check_epsilon(epsilon: object) -> None:
    try:
        ok = math.isfinite(float(epsilon)) and float(epsilon) >= 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")


#: While set (by :func:`deferred_finite_check`), the wrappers skip their finiteness check.
_DEFER_FINITE = contextvars.ContextVar("dctqa_defer_finite", default=False)


@contextlib.contextmanager
def deferred_finite_check():
    """Within this block the op wrappers return ``Q_k`` without checking it is finite.

    The check reads a device value on the host (a sync on CUDA); a caller that keeps the
    scores on the device (``Metric.score_tensor``) marks bad pairs itself instead."""
    token = _DEFER_FINITE.set(True)
    try:
        yield
    finally:
        _DEFER_FINITE.reset(token)


def _finite_result(op: str, q: torch.Tensor, inputs: str) -> torch.Tensor:
    """``q``, or :class:`InputError` when a ``Q_k`` is NaN or infinite: with finite inputs
    of sane size every ``Q_k`` is finite (the floor keeps the ratios finite), so only NaN or
    infinity in the inputs, or filter responses beyond float32 (``|sum_c X_c G_c|`` above
    about 1e19, squared past 3.4e38), give one. Never returns such a score."""
    if not _DEFER_FINITE.get() and q.numel() and not bool(torch.isfinite(q).all()):
        raise InputError(f"{op}: a Q_k came out NaN or infinite; {inputs} must be finite, and small enough "
                         f"that the filter responses stay within float32 (|response| below about 1e19)")
    return q


def _op_ready(t: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether tensors of this dtype/device/layout may go to a compiled op at all."""
    ts = (t, *others)
    return (all(x.dtype == torch.float32 and x.layout == torch.strided for x in ts)
            and all(x.device == t.device for x in ts))


def spectral_qk(co: torch.Tensor, cc: torch.Tensor, filters: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Per-filter ``Q_k`` of METRIC.md's spectral domain, ``[N, K]`` float64.

    co, cc: ``[N, C, H, W]`` unnormalised 2-D DCT-II of the preprocessed reference /
    distorted frames (float32 for the ops; other float dtypes go to the torch path);
    filters: ``[K, C, kh, kw]`` (cross-correlation convention); epsilon: relative floor.
    Every argument is checked here (:class:`InputError`), so the ops' own checks are never
    reached in normal use; inputs the CUDA kernel cannot take (more than
    :data:`CUDA_MAX_CHANNELS` channels, more than :data:`CUDA_MAX_ROWS` rows) run on the
    torch path, so every device gives the CPU op's result. ``C = 0`` gives ``Q_k = 1``.
    NaN or infinity in the inputs raise :class:`InputError` (never a NaN score), and so do
    filter responses ``|sum_c X_c G_c|`` above about 1e19 on the compiled ops, which square
    them in float32 (the torch path takes complex absolute values and goes further).
    """
    _check_float_tensor("co", co, 4)
    _check_float_tensor("cc", cc, 4)
    _check_float_tensor("filters", filters, 4)
    if co.shape != cc.shape:
        raise InputError(f"co and cc differ in shape: {tuple(co.shape)} vs {tuple(cc.shape)}")
    if filters.shape[1] != co.shape[1]:
        raise InputError(f"filters have {filters.shape[1]} input channels, frames have {co.shape[1]}")
    if co.device != cc.device:
        raise InputError(f"co and cc are on different devices: {co.device} vs {cc.device}")
    if co.shape[2] == 0 or co.shape[3] == 0 or filters.shape[2] == 0 or filters.shape[3] == 0:
        raise InputError(f"empty frames or filters: {tuple(co.shape)}, {tuple(filters.shape)}")
    if co.shape[2] * co.shape[3] >= _MAX_PLANE:
        raise InputError(f"frames of {co.shape[2]} x {co.shape[3]} pixels: at most 2^31 - 1 pixels are supported")
    _check_epsilon(epsilon)
    n, c = co.shape[:2]
    k = filters.shape[0]
    if c == 0 or k == 0 or n == 0:
        # Nothing to compute (an empty result), or no channel: every magnitude is 0, so
        # Q_k = (0 + eps) / (0 + eps) = 1 exactly, as the CPU op computes it.
        return torch.ones((n, k), dtype=torch.float64, device=co.device)
    _configured()
    impl = implementation_for(co.device, "spectral_qk")
    if impl == "cuda-op" and (c > CUDA_MAX_CHANNELS or co.shape[2] > CUDA_MAX_ROWS):
        impl = "torch"
    if impl != "torch" and _op_ready(co, cc):
        f = filters.detach().to(device=co.device, dtype=torch.float32).contiguous()
        return _finite_result("spectral_qk", torch.ops.dctqa.spectral_qk(co, cc, f, float(epsilon)),
                              "co, cc and filters")
    return _finite_result("spectral_qk", spectral_qk_torch(co, cc, filters, epsilon), "co, cc and filters")


def ratio_qk(ao: torch.Tensor, ac: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Per-filter ``Q_k`` from magnitudes, ``[N, K]`` float64.

    ao, ac: ``[N, K, ...]`` magnitudes (>= 0) of the reference / distorted responses,
    same shape; the trailing dims are the frequencies. ``eps_k = epsilon *
    lower_median(ao[n, k]) + 1e-12``; ``Q_k = mean((ao + eps_k) / (ac + eps_k))``.
    """
    if not isinstance(ao, torch.Tensor) or not isinstance(ac, torch.Tensor):
        raise InputError("ao and ac must be torch tensors")
    if ao.shape != ac.shape:
        raise InputError(f"ao and ac differ in shape: {tuple(ao.shape)} vs {tuple(ac.shape)}")
    if ao.dim() < 3:
        raise InputError(f"ao must be [N, K, ...] with at least one frequency dim, got {tuple(ao.shape)}")
    if not (ao.is_floating_point() and ac.is_floating_point()):
        raise InputError(f"ao and ac must be floating tensors, got {ao.dtype} and {ac.dtype}")
    if ao.numel() == 0 and ao.shape[0] * ao.shape[1] != 0:
        raise InputError(f"ao has no frequencies: {tuple(ao.shape)}")
    if ao.device != ac.device:
        raise InputError(f"ao and ac are on different devices: {ao.device} vs {ac.device}")
    _check_epsilon(epsilon)
    n, k = ao.shape[:2]
    m = ao[0, 0].numel() if n * k else 0
    _configured()
    impl = implementation_for(ao.device, "ratio_qk")
    if impl == "cuda-op" and n * k >= _MAX_PLANE:
        impl = "torch"
    if impl != "torch" and ao.numel() > 0 and m < _MAX_PLANE and _op_ready(ao, ac):
        return _finite_result("ratio_qk", torch.ops.dctqa.ratio_qk(ao.reshape(n, k, -1), ac.reshape(n, k, -1),
                                                                    float(epsilon)), "ao and ac")
    return _finite_result("ratio_qk", ratio_qk_torch(ao, ac, epsilon), "ao and ac")


def spectral_qk_frames(ref: torch.Tensor, dist: torch.Tensor, filters: torch.Tensor,
                       preprocess: "Preprocess", epsilon: float) -> torch.Tensor:
    """Per-filter ``Q_k`` of METRIC.md's spectral domain straight from RGB frames, ``[N, K]`` float64.

    ref, dist: ``[N, 3, H, W]`` RGB frames (channels first, any strides: pass an
    ``N x H x W x 3`` array as ``torch.from_numpy(a).permute(0, 3, 1, 2)``), uint8 or float
    in 0..255, same shape; filters: ``[K, 3, kh, kw]``; preprocess: the backbone's
    :class:`~dctqa.backbones.Preprocess`; epsilon: relative floor. The pixel domain is this
    with its identity ``K = 3``, ``1 x 1`` bank. Runs the fused op (``cpp-fused``) for CPU
    uint8 / float32 frames, else preprocessing + :func:`dctqa.ops.dct.dct2` + :func:`spectral_qk`.
    """
    for name, t in (("ref", ref), ("dist", dist)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
            raise InputError(f"{name} must be a tensor [N, 3, H, W] (RGB, channels first), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if t.dtype != torch.uint8 and not t.is_floating_point():
            raise InputError(f"{name} must be uint8 or float (0..255), got {t.dtype}")
    if ref.shape != dist.shape:
        raise InputError(f"ref and dist differ in shape: {tuple(ref.shape)} vs {tuple(dist.shape)}")
    if ref.device != dist.device:
        raise InputError(f"ref and dist are on different devices: {ref.device} vs {dist.device}")
    _check_float_tensor("filters", filters, 4)
    if filters.shape[1] != 3 or filters.shape[2] == 0 or filters.shape[3] == 0:
        raise InputError(f"filters must be [K, 3, kh, kw] with kh, kw >= 1, got {tuple(filters.shape)}")
    if ref.shape[2] == 0 or ref.shape[3] == 0:
        raise InputError(f"empty frames: {tuple(ref.shape)}")
    _configured()
    if implementation_for(ref.device, FUSED_OP) == "cpp-fused" and ref.shape[0] > 0:
        if ref.dtype != dist.dtype or ref.dtype not in (torch.uint8, torch.float32):
            ref, dist = ref.float(), dist.float()
        f = filters.detach().to(device="cpu", dtype=torch.float32)
        p = preprocess
        q = torch.ops.dctqa.spectral_qk_frames(ref, dist, f, list(p.channel_index), float(p.scale),
                                               [float(m) for m in p.mean], [float(s) for s in p.std],
                                               float(epsilon))
        return _finite_result("spectral_qk_frames", q, "the frames and filters")
    co = dct2(preprocess_torch(ref, preprocess, ref.device))
    cc = dct2(preprocess_torch(dist, preprocess, ref.device))
    return spectral_qk(co, cc, filters.to(ref.device), epsilon)


def sample_patches(act: torch.Tensor, height: int, width: int, *, stride: int = 1, offset: int = 0,
                   patch: int = 224, num: int = 2, seed: int = 0, sigma: float = 8.0,
                   impl: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation-map patch sampling (:mod:`dctqa.ops.patches_torch` defines it): ``(prob
    [N, h, w] float32, corners [N, num, 2] int64)`` for activation maps ``act`` ``[N, C, h,
    w]`` of a ``height x width`` frame; ``impl`` forces ``"op"`` or ``"torch"`` (default: the
    op when it has a kernel for ``act``'s device)."""
    if not isinstance(act, torch.Tensor) or act.dim() != 4 or not act.is_floating_point():
        raise InputError(f"act must be a float tensor [N, C, h, w], got "
                         f"{getattr(act, 'shape', type(act).__name__)}")
    if min(act.shape[1:]) < 1:
        raise InputError(f"act has an empty dimension: {tuple(act.shape)}")
    if not (1 <= patch <= min(height, width)):
        raise InputError(f"a {patch}x{patch} patch does not fit a {height}x{width} frame")
    if stride < 1 or offset < 0 or num < 0 or not (0 <= sigma <= 1e4):
        raise InputError(f"need stride >= 1, offset >= 0, num >= 0, 0 <= sigma <= 1e4; got "
                         f"{stride}, {offset}, {num}, {sigma}")
    lo, hi = (float(v) for v in torch.aminmax(act.detach()))  # one pass; NaN or inf show in the extremes
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError("activation maps contain NaN or infinity")
    chosen = implementation_for(act.device, PATCHES_OP) if impl in (None, "op") else "torch"
    if impl == "op" and chosen == "torch":
        raise InputError(f"no compiled sample_patches kernel for {act.device}")
    if chosen == "torch":
        return sample_patches_torch(act, height, width, stride, offset, patch, num, seed, sigma)
    return torch.ops.dctqa.sample_patches(act.to(torch.float32), int(height), int(width), int(stride),
                                          int(offset), int(patch), int(num), int(seed), float(sigma))
