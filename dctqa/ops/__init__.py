"""The floor of the package: the compiled torch ops, their torch fallbacks and caches.

The extension ``dctqa._C`` registers four torch ops (schemas in ``csrc/<op>/<op>.cpp``):
``spectral_qk``, ``ratio_qk``, the fused ``spectral_qk_frames`` and the no-reference wing's
``sample_patches``. This package holds

* :mod:`~dctqa.ops.dispatch`: the only module that knows whether the compiled op exists for
  a device (as the extension reports it); the checked wrappers :func:`spectral_qk`,
  :func:`ratio_qk`, :func:`spectral_qk_frames`, :func:`sample_patches` call it or the
  fallback; it hands the kernel settings (:func:`dctqa.settings.kernel_settings`) to the
  extension when it loads;
* :mod:`~dctqa.ops.tuning`: the control plane (kernel mode, intrinsics level,
  ``cpu_kernel_info``, the one filter-spectra cache's controls, :func:`~dctqa.ops.tuning.configure`);
* the torch fallbacks: :mod:`~dctqa.ops.spectral_torch`,
  :mod:`~dctqa.ops.ratio_torch`, :mod:`~dctqa.ops.patches_torch`, and the fused op's :mod:`~dctqa.ops.preprocess` and
  :mod:`~dctqa.ops.dct` (the 2-D DCT-II the domains use too);
* :mod:`~dctqa.ops.fakes`: the fake kernels for ``torch.compile``.

The ops import nothing above them except :mod:`dctqa.errors`, :mod:`dctqa.constants` and
:mod:`dctqa.settings` (checked by import-linter, ``.importlinter``).
"""
from __future__ import annotations

from . import tuning
from .dispatch import (CUDA_MAX_CHANNELS, CUDA_MAX_ROWS, FUSED_OP, PATCHES_OP, available, deferred_finite_check,
                       implementation_for, ratio_qk, sample_patches, spectral_qk, spectral_qk_frames)

__all__ = ["CUDA_MAX_CHANNELS", "CUDA_MAX_ROWS", "FUSED_OP", "PATCHES_OP", "available", "deferred_finite_check",
           "implementation_for",
           "ratio_qk", "sample_patches", "spectral_qk", "spectral_qk_frames", "tuning"]
