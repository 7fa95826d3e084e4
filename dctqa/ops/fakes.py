"""Fake (meta) kernels of the compiled ops: output shape and dtype only, for FakeTensor /
meta tensors (``torch.compile``, ``torch.library.opcheck``). Registered by
:mod:`dctqa.ops.dispatch` once the extension has loaded."""
from __future__ import annotations

import torch


def _spectral_fake(co, cc, filters, epsilon):
    torch._check(co.dim() == 4 and filters.dim() == 4, lambda: "co and filters must be 4-D")
    return co.new_empty((co.shape[0], filters.shape[0]), dtype=torch.float64)


def _ratio_fake(ao, ac, epsilon):
    torch._check(ao.dim() == 3, lambda: "ao must be 3-D [N, K, M]")
    return ao.new_empty((ao.shape[0], ao.shape[1]), dtype=torch.float64)


def _frames_fake(ref, dist, filters, channel_index, scale, mean, std, epsilon):
    torch._check(ref.dim() == 4 and filters.dim() == 4, lambda: "ref and filters must be 4-D")
    return filters.new_empty((ref.shape[0], filters.shape[0]), dtype=torch.float64)


def _patches_fake(act, height, width, stride, offset, patch, num, seed, sigma):
    torch._check(act.dim() == 4, lambda: "act must be 4-D [N, C, h, w]")
    return (act.new_empty((act.shape[0], act.shape[2], act.shape[3])),
            act.new_empty((act.shape[0], num, 2), dtype=torch.int64))


FAKES = {"spectral_qk": _spectral_fake, "ratio_qk": _ratio_fake, "spectral_qk_frames": _frames_fake,
         "sample_patches": _patches_fake}


def register_fakes() -> None:
    """Register every op's fake kernel (``dctqa::<op>``); a second call is a no-op."""
    for name, fn in FAKES.items():
        try:
            torch.library.register_fake(f"dctqa::{name}", fn)
        except RuntimeError as exc:  # already registered (module reloaded)
            if "already" not in str(exc).lower():
                raise
