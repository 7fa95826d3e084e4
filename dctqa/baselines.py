"""Baseline quality metrics: PSNR, SSIM (full-reference); Blockiness, Blur, Noise, Contrast
(no-reference), as ``shared/docs/BASELINES.md`` defines them.

The paper compares against the AGH "video quality indicators" for the four no-reference
measures; AGH publishes those only as closed binaries, so their exact formulas are not
public.  dctqa uses the published definitions below instead (and says so wherever it
reports them):

- PSNR: ``10 log10(255^2 / MSE)`` on luma, capped at 100 dB (identical frames give 100).
  The global PSNR of a sequence is the PSNR of the mean MSE (FFmpeg's "average").
- SSIM: Wang et al. 2004 on luma, 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03,
  L 255, population (co)variances, mean over the valid region; equals
  ``skimage.metrics.structural_similarity(Y1, Y2, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``.
- Blockiness: mean absolute horizontal difference across the 8x8 grid boundaries
  (columns ``j`` with ``j mod 8 = 7`` to ``j+1``) over the mean elsewhere (+1e-6), the same
  for rows, averaged (Wang, Sheikh & Bovik 2002 idea).  About 1 without blocking.
- Blur: Marziliano et al. 2002 edge width.  ``G`` = Sobel derivative along x
  (``scipy.ndimage.sobel(Y, axis=1)``) on the interior pixels.  A pixel is a vertical
  edge when ``|G| >= T``, ``|G| >= |G|`` of its left neighbour and ``|G| > |G|`` of its
  right neighbour (horizontal non-maximum suppression; first and last interior columns
  excluded).  **Threshold** ``T = 2 * mean(|G|)`` over the frame's interior (adaptive, so
  the edge set scales with content; at least 1e-9 so flat frames have no edge).  Width:
  for a rising edge (``G > 0``) the distance from the nearest local minimum on the left
  to the nearest local maximum on the right of the pixel along its row, following
  strictly monotonic luminance (a plateau ends the edge); mirrored for falling edges.
  Blur = mean width in pixels; NaN for a frame with no edge.
- Noise: Immerkaer 1996, ``sigma = sqrt(pi/2) * sum|Y * N| / (6 (W-2)(H-2))`` with the
  valid convolution by ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]``.
- Contrast: RMS contrast, the population standard deviation of ``Y``.

Luma ``Y`` is ``0.299 R + 0.587 G + 0.114 B`` in float64 from RGB uint8 (or a 2-D array
passed directly).  Every metric has a NumPy/SciPy/scikit-image reference (``*_np``,
one frame) and a batched torch version (``*_torch``, ``N x H x W`` luma on any device)
tested against it.  Frames are pooled by the arithmetic mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import InputError
from .registry import MetricInfo, metric_info

#: PSNR of identical frames, and the upper cap of every PSNR value (dB).
PSNR_CAP_DB = 100.0
#: Blockiness grid period (pixels).
BLOCK = 8
#: Blur edge threshold, as a multiple of the frame's mean |Sobel_x|.
BLUR_THRESHOLD_FACTOR = 2.0
_LUMA = (0.299, 0.587, 0.114)
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


# ----------------------------------------------------------------------------- luma

def luma(img: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB (or ``N x H x W x 3``) -> float64 luma of the same leading shape.

    A 2-D (or 3-D without a trailing 3) array is taken as luma already and returned as float64.
    """
    a = np.asarray(img)
    if a.ndim >= 3 and a.shape[-1] == 3:
        a = a.astype(np.float64)
        return _LUMA[0] * a[..., 0] + _LUMA[1] * a[..., 1] + _LUMA[2] * a[..., 2]
    if a.ndim in (2, 3):
        return a.astype(np.float64)
    raise InputError(f"expected an H x W luma or H x W x 3 RGB image, got shape {a.shape}")


def _pair(ref: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y1, y2 = luma(ref), luma(dist)
    if y1.shape != y2.shape:
        raise InputError(f"reference and distorted frames differ in size: {y1.shape} vs {y2.shape}")
    return y1, y2


def _frame(img: np.ndarray, min_side: int = 3) -> np.ndarray:
    y = luma(img)
    if y.ndim != 2:
        raise InputError(f"expected one frame (H x W or H x W x 3), got shape {np.shape(img)}")
    if min(y.shape) < min_side:
        raise InputError(f"frame of {y.shape[1]}x{y.shape[0]} is too small; need at least {min_side} pixels a side")
    return y


# ----------------------------------------------------------------------------- NumPy references

def mse_np(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean squared luma difference of one frame pair (8-bit units squared)."""
    y1, y2 = _pair(ref, dist)
    return float(np.mean((y1 - y2) ** 2))


def psnr_from_mse(mse: float | np.ndarray) -> float | np.ndarray:
    """``10 log10(255^2 / mse)`` in dB, capped at :data:`PSNR_CAP_DB` (``mse = 0`` -> cap)."""
    m = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        db = np.where(m > 0, 10.0 * np.log10(255.0 ** 2 / np.where(m > 0, m, 1.0)), PSNR_CAP_DB)
    db = np.minimum(db, PSNR_CAP_DB)
    return float(db) if db.ndim == 0 else db


def psnr_np(ref: np.ndarray, dist: np.ndarray) -> float:
    """Luma PSNR of one frame pair in dB (0..100, capped)."""
    return psnr_from_mse(mse_np(ref, dist))


def global_psnr(mse_per_frame: np.ndarray) -> float:
    """PSNR of the mean MSE over frames (FFmpeg psnr filter's "average"), dB."""
    m = np.asarray(mse_per_frame, dtype=np.float64)
    if m.size == 0:
        raise InputError("global PSNR needs at least one frame")
    return psnr_from_mse(float(m.mean()))


def ssim_np(ref: np.ndarray, dist: np.ndarray) -> float:
    """Luma SSIM of one frame pair (scikit-image, BASELINES.md settings), in [-1, 1]."""
    from skimage.metrics import structural_similarity

    y1, y2 = _pair(ref, dist)
    if y1.ndim != 2 or min(y1.shape) < 11:
        raise InputError(f"SSIM needs one frame of at least 11x11 pixels, got luma shape {y1.shape}")
    return float(structural_similarity(y1, y2, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255))


def blockiness_np(img: np.ndarray) -> float:
    """8x8-grid blockiness of one frame (>= 0, about 1 without blocking; higher = more blocky)."""
    y = _frame(img, min_side=BLOCK + 1)

    def ratio(d: np.ndarray) -> float:  # d: differences along the last axis, position j -> j+1
        on = (np.arange(d.shape[-1]) % BLOCK) == BLOCK - 1
        return float(d[:, on].mean() / (d[:, ~on].mean() + 1e-6))

    return 0.5 * (ratio(np.abs(np.diff(y, axis=1))) + ratio(np.abs(np.diff(y, axis=0)).T))


def blur_np(img: np.ndarray, threshold: float | None = None) -> float:
    """Marziliano edge width of one frame in pixels (NaN when no edge); see the module docstring.

    threshold: absolute |Sobel_x| threshold; ``None`` = ``2 * mean|Sobel_x|``.
    Straightforward per-edge-pixel walk; the reference for :func:`blur_torch`.
    """
    from scipy import ndimage

    y = _frame(img, min_side=5)
    g = ndimage.sobel(y, axis=1)[1:-1, 1:-1]
    a = np.abs(g)
    t = BLUR_THRESHOLD_FACTOR * a.mean() if threshold is None else float(threshold)
    t = max(t, 1e-9)
    edge = np.zeros_like(a, dtype=bool)
    edge[:, 1:-1] = (a[:, 1:-1] >= t) & (a[:, 1:-1] >= a[:, :-2]) & (a[:, 1:-1] > a[:, 2:])
    w = y.shape[1]
    widths = []
    for i, j in zip(*np.nonzero(edge)):
        r, c = i + 1, j + 1
        row = y[r]
        sign = 1.0 if g[i, j] > 0 else -1.0
        lo = c
        while lo > 0 and sign * (row[lo] - row[lo - 1]) > 0:
            lo -= 1
        hi = c
        while hi < w - 1 and sign * (row[hi + 1] - row[hi]) > 0:
            hi += 1
        widths.append(hi - lo)
    return float(np.mean(widths)) if widths else float("nan")


def noise_np(img: np.ndarray) -> float:
    """Immerkaer noise standard deviation of one frame (8-bit luma units, >= 0)."""
    from scipy import signal

    y = _frame(img, min_side=3)
    h, w = y.shape
    s = np.abs(signal.convolve2d(y, _IMMERKAER, mode="valid")).sum()
    return float(math.sqrt(math.pi / 2.0) * s / (6.0 * (w - 2) * (h - 2)))


def contrast_np(img: np.ndarray) -> float:
    """RMS contrast: population standard deviation of the luma (8-bit units, >= 0)."""
    return float(np.std(_frame(img, min_side=1)))


# ----------------------------------------------------------------------------- torch, batched

def luma_torch(frames, device: str | None = None, dtype=None):
    """``N x H x W x 3`` uint8 RGB (ndarray or tensor) -> ``N x H x W`` luma tensor (float64 default).

    ``N x H x W`` input is taken as luma already.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    t = torch.as_tensor(frames)
    if device is not None:
        t = t.to(device)
    if t.ndim == 4 and t.shape[-1] == 3:
        t = t.to(dtype)
        return _LUMA[0] * t[..., 0] + _LUMA[1] * t[..., 1] + _LUMA[2] * t[..., 2]
    if t.ndim == 3:
        return t.to(dtype)
    raise InputError(f"expected N x H x W x 3 RGB or N x H x W luma, got shape {tuple(t.shape)}")


def _check_batch(y, min_side: int):
    if y.ndim != 3:
        raise InputError(f"expected an N x H x W luma batch, got shape {tuple(y.shape)}")
    if min(y.shape[1:]) < min_side:
        raise InputError(f"frames of {y.shape[2]}x{y.shape[1]} are too small; need {min_side} pixels a side")


def mse_torch(y_ref, y_dist):
    """Per-frame MSE of two ``N x H x W`` luma batches -> ``(N,)``."""
    _check_batch(y_ref, 1)
    if y_ref.shape != y_dist.shape:
        raise InputError(f"reference and distorted batches differ: {tuple(y_ref.shape)} vs {tuple(y_dist.shape)}")
    return ((y_ref - y_dist) ** 2).mean(dim=(1, 2))


def psnr_torch(y_ref, y_dist):
    """Per-frame luma PSNR in dB, capped at 100 -> ``(N,)``."""
    import torch

    m = mse_torch(y_ref, y_dist)
    db = 10.0 * torch.log10(255.0 ** 2 / torch.where(m > 0, m, torch.ones_like(m)))
    return torch.where(m > 0, db.clamp(max=PSNR_CAP_DB), torch.full_like(m, PSNR_CAP_DB))


def _gauss1d(sigma: float, radius: int, dtype, device):
    import torch

    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _filter_valid(t, k):
    """Separable valid-mode filtering of ``... x H x W`` by the 1-D kernel ``k``.

    On the CPU through ``scipy.ndimage.correlate1d`` (several times faster there than
    torch's small-kernel convolutions), elsewhere by shift-and-add on the device.
    """
    n = k.numel()
    h, w = t.shape[-2], t.shape[-1]
    if t.device.type == "cpu":
        import torch
        from scipy import ndimage

        r = n // 2
        a = t.detach().contiguous().numpy()
        kk = k.to(dtype=t.dtype).numpy()
        a = ndimage.correlate1d(a, kk, axis=-1, mode="nearest")[..., r:w - r]
        a = ndimage.correlate1d(a, kk, axis=-2, mode="nearest")[..., r:h - r, :]
        return torch.from_numpy(np.ascontiguousarray(a))
    return _filter_valid_torch(t, k)


def _filter_valid_torch(t, k):
    """Shift-and-add form of :func:`_filter_valid` (any device)."""
    n = k.numel()
    h, w = t.shape[-2], t.shape[-1]
    kk = [float(v) for v in k]
    rows = t[..., 0:w - n + 1] * kk[0]
    for i in range(1, n):
        rows.add_(t[..., i:i + w - n + 1], alpha=kk[i])
    out = rows[..., 0:h - n + 1, :] * kk[0]
    for i in range(1, n):
        out.add_(rows[..., i:i + h - n + 1, :], alpha=kk[i])
    return out


def ssim_torch(y_ref, y_dist, sigma: float = 1.5):
    """Per-frame SSIM of ``N x H x W`` luma batches -> ``(N,)`` (same definition as :func:`ssim_np`).

    Separable Gaussian (radius ``int(3.5 sigma + 0.5)``) in valid mode, which equals
    scikit-image's reflect-padded filtering followed by its border crop.  Statistics are
    taken on luma - 128 (the variances do not change) to keep float32 accurate, and only
    ``vx + vy`` is needed, so four fields are filtered: x, y, x^2 + y^2, xy.
    """
    import torch

    radius = int(3.5 * sigma + 0.5)
    _check_batch(y_ref, 2 * radius + 1)
    if y_ref.shape != y_dist.shape:
        raise InputError(f"reference and distorted batches differ: {tuple(y_ref.shape)} vs {tuple(y_dist.shape)}")
    k = _gauss1d(sigma, radius, torch.float64, "cpu")
    x, y = y_ref - 128.0, y_dist - 128.0
    n = x.shape[0]
    f = _filter_valid(torch.cat([x, y, x * x + y * y, x * y]), k)
    mx, my = f[:n], f[n:2 * n]
    vsum = f[2 * n:3 * n] - mx * mx - my * my
    vxy = f[3 * n:] - mx * my
    ux, uy = mx + 128.0, my + 128.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vsum + c2))
    return s.mean(dim=(1, 2))


def blockiness_torch(y):
    """Per-frame 8x8 blockiness of an ``N x H x W`` luma batch -> ``(N,)``."""
    _check_batch(y, BLOCK + 1)

    def ratio(d):  # N x A x B, differences along the last axis
        on = d[..., BLOCK - 1::BLOCK]
        n_on, n_all = on.shape[-1] * on.shape[-2], d.shape[-1] * d.shape[-2]
        s_on, s_all = on.sum(dim=(1, 2)), d.sum(dim=(1, 2))
        return (s_on / n_on) / ((s_all - s_on) / (n_all - n_on) + 1e-6)

    dh = (y[:, :, 1:] - y[:, :, :-1]).abs()
    dv = (y[:, 1:, :] - y[:, :-1, :]).abs().transpose(1, 2)
    return 0.5 * (ratio(dh) + ratio(dv))


def blur_torch(y, threshold: float | None = None):
    """Per-frame Marziliano edge width (pixels; NaN where no edge) of ``N x H x W`` luma -> ``(N,)``.

    Vectorised form of :func:`blur_np`: along each row, the end of the monotonic run to
    the right of every pixel is a reversed running minimum of run-boundary positions, the
    start on the left a running maximum; an edge's width is their difference.
    """
    import torch

    _check_batch(y, 5)
    n, h, w = y.shape
    # Sobel along x on the interior: [-1, 0, 1] horizontally, [1, 2, 1] vertically.
    dx = y[:, :, 2:] - y[:, :, :-2]                              # N x H x (W-2)
    g = dx[:, :-2] + 2 * dx[:, 1:-1] + dx[:, 2:]                  # N x (H-2) x (W-2)
    a = g.abs()
    if threshold is None:
        t = (BLUR_THRESHOLD_FACTOR * a.mean(dim=(1, 2))).clamp(min=1e-9).view(n, 1, 1)
    else:
        t = torch.full((n, 1, 1), max(float(threshold), 1e-9), dtype=a.dtype, device=a.device)
    c = a[:, :, 1:-1]
    edge = (c >= t) & (c >= a[:, :, :-2]) & (c > a[:, :, 2:])     # N x (H-2) x (W-4)
    frame, r, col = torch.nonzero(edge, as_tuple=True)
    col = col + 2                                                  # image column of the edge pixel
    rising = g[frame, r, col - 1] > 0
    rows = y[:, 1:-1, :]
    step = rows[:, :, 1:] - rows[:, :, :-1]                        # step[j] = Y[j+1] - Y[j]
    idx = torch.arange(w, dtype=torch.int32, device=y.device).view(1, 1, w)
    last = torch.tensor(w - 1, dtype=torch.int32, device=y.device)
    first = torch.tensor(0, dtype=torch.int32, device=y.device)
    ones = torch.ones((n, h - 2, 1), dtype=torch.bool, device=y.device)
    widths = []
    for going in (step > 0, step < 0):                             # rising, falling runs
        stop = torch.cat([~going, ones], dim=2)                    # j ends the run (no step j -> j+1)
        hi = torch.flip(torch.cummin(torch.flip(torch.where(stop, idx, last), [2]), dim=2).values, [2])
        start = torch.cat([ones, ~going], dim=2)                   # j starts the run (no step j-1 -> j)
        lo = torch.cummax(torch.where(start, idx, first), dim=2).values
        widths.append(hi[frame, r, col] - lo[frame, r, col])
    width = torch.where(rising, widths[0], widths[1]).to(y.dtype)
    count = torch.zeros(n, dtype=y.dtype, device=y.device).index_add_(0, frame, torch.ones_like(width))
    total = torch.zeros(n, dtype=y.dtype, device=y.device).index_add_(0, frame, width)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def noise_torch(y):
    """Per-frame Immerkaer noise sigma of an ``N x H x W`` luma batch -> ``(N,)``.

    The kernel is the outer product of ``[1, -2, 1]`` with itself: two second differences.
    """
    _check_batch(y, 3)
    n, h, w = y.shape
    d = y[:, :, 2:] - 2 * y[:, :, 1:-1] + y[:, :, :-2]
    d = d[:, 2:] - 2 * d[:, 1:-1] + d[:, :-2]
    return math.sqrt(math.pi / 2.0) * d.abs().sum(dim=(1, 2)) / (6.0 * (w - 2) * (h - 2))


def contrast_torch(y):
    """Per-frame RMS contrast (population std of luma) of an ``N x H x W`` batch -> ``(N,)``."""
    _check_batch(y, 1)
    return y.std(dim=(1, 2), correction=0)


# ----------------------------------------------------------------------------- registry (facts: dctqa.registry)

@dataclass(frozen=True)
class BaselineMetric:
    """How a baseline is computed; its facts (kind, direction, unit, range) are the
    registry's: :attr:`info` (:func:`dctqa.registry.metric_info`)."""

    name: str
    numpy_fn: Callable
    torch_fn: Callable

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.name)


BASELINES: dict[str, BaselineMetric] = {m.name: m for m in (
    BaselineMetric("psnr", psnr_np, psnr_torch),
    BaselineMetric("ssim", ssim_np, ssim_torch),
    BaselineMetric("blockiness", blockiness_np, blockiness_torch),
    BaselineMetric("blur", blur_np, blur_torch),
    BaselineMetric("noise", noise_np, noise_torch),
    BaselineMetric("contrast", contrast_np, contrast_torch),
)}


def _full_reference(name: str) -> bool:
    return metric_info(name).kind == "FR"


def baseline_names() -> list[str]:
    """Names in :data:`BASELINES`, in report order."""
    return list(BASELINES)


def get_baseline(name: str) -> BaselineMetric:
    """Registry lookup; raises :class:`InputError` for unknown names."""
    try:
        return BASELINES[name]
    except KeyError:
        raise InputError(f"unknown baseline metric {name!r}; expected one of {baseline_names()}") from None


def compute_baselines(ref, dist, names: list[str] | None = None, device: str = "cpu",
                      dtype=None) -> dict[str, np.ndarray]:
    """All (or ``names``) baselines for a batch of frame pairs, torch on ``device``.

    ref, dist: ``N x H x W x 3`` uint8 RGB (ndarray or tensor), same shape.  No-reference
    metrics are computed on ``dist``.  Returns name -> ``(N,)`` float64 NumPy array, plus
    ``"mse"`` (for :func:`global_psnr`) whenever ``"psnr"`` is requested.
    """
    import torch

    names = baseline_names() if names is None else list(names)
    for nm in names:
        get_baseline(nm)
    if tuple(np.shape(ref)) != tuple(np.shape(dist)):
        raise InputError(f"reference and distorted batches differ: {np.shape(ref)} vs {np.shape(dist)}")
    with torch.no_grad():
        yd = luma_torch(dist, device=device, dtype=dtype)
        yr = luma_torch(ref, device=device, dtype=dtype) if any(map(_full_reference, names)) else None
        out: dict[str, np.ndarray] = {}
        for nm in names:
            fn = BASELINES[nm].torch_fn
            v = fn(yr, yd) if _full_reference(nm) else fn(yd)
            out[nm] = v.double().cpu().numpy()
        if "psnr" in names:
            out["mse"] = mse_torch(yr, yd).double().cpu().numpy()
    return out


class BaselineScorer:
    """A baseline as a ready metric object (for :func:`dctqa.create_metric`).

    ``score(ref, dist)`` (full-reference) or ``score(dist)`` (no-reference) takes
    ``H x W x 3`` or ``N x H x W x 3`` uint8 RGB and returns ``(N,)`` float64 per-frame values.
    """

    def __init__(self, name: str, device: str = "cpu", dtype=None) -> None:
        self.info = get_baseline(name).info
        self.name = name
        self.lower_better = self.info.lower_better
        self.device, self.dtype = device, dtype

    def score(self, *frames) -> np.ndarray:
        need = 2 if self.info.kind == "FR" else 1
        if len(frames) != need:
            raise InputError(f"{self.name} takes {'(ref, dist)' if need == 2 else '(dist)'} frames, "
                             f"got {len(frames)} arguments")
        batch = [np.asarray(f)[None] if np.ndim(f) == 3 else np.asarray(f) for f in frames]
        ref, dist = (batch[0], batch[1]) if need == 2 else (batch[0], batch[0])
        return compute_baselines(ref, dist, names=[self.name], device=self.device, dtype=self.dtype)[self.name]
