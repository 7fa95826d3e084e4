"""Cross-content forms of the ratio ``Q_k`` (issue 25): the same spectra, another reduction.

Metric version 1 (METRIC.md) reduces the per-frequency ratio
``r_k[u, v] = (A^o_k + eps_k) / (A^c_k + eps_k)`` by its plain mean. These forms keep the
spectra ``A^o_k``, ``A^c_k`` [N, K, ...] and the floor ``eps_k = EPSILON * lower_median(A^o_k)
+ 1e-12`` of version 1 and change only the reduction over the frequencies (``M`` of them):

* ``"mean"``: version 1, ``Q_k = mean r_k`` (1 for identical frames);
* ``"log"``: the log-domain mean, ``Q_k = exp(mean log r_k)`` (1 for identical frames);
* ``"relative"``: ``(Q_k - 1) / (Qmax_k - 1)`` with ``Qmax_k = mean (A^o_k + eps_k) / eps_k =
  1 + mean(A^o_k) / eps_k``, the version-1 value if the distorted response were 0 everywhere
  (0 for identical frames; at most 1; below 0 when the distorted frame has more energy);
* ``"weighted"``: the mean of ``r_k`` weighted by the reference's magnitude ``A^o_k``,
  ``1 + sum A^o (A^o - A^c) / (A^c + eps) / sum A^o`` (1 for identical frames).

All four are invariant to scaling both spectra by the same factor (the floor scales with
them). ``"relative"`` divides out the reference's own spectral shape (``mean / median`` of
``A^o_k``), the statistic that sets version 1's level on a given content. These forms are
research variants evaluated in ``docs/results/scenes/``; none is metric version 1.
"""
from __future__ import annotations

import torch

from ..constants import ABS_FLOOR, EPSILON
from ..errors import InputError
from ..ops.ratio_torch import lower_median

#: The reductions :func:`normalised_qk` computes (``"mean"`` is metric version 1).
FORMS = ("mean", "log", "relative", "weighted")


def floor_of(ao: torch.Tensor, epsilon: float = EPSILON) -> torch.Tensor:
    """Version 1's floor ``eps_k`` [N, K, 1] float64 of reference magnitudes ``ao`` [N, K, ...]."""
    return epsilon * lower_median(ao.flatten(2)).double()[..., None] + ABS_FLOOR


def normalised_qk(ao: torch.Tensor, ac: torch.Tensor, form: str = "mean",
                  epsilon: float = EPSILON) -> torch.Tensor:
    """Per-filter value ``[N, K]`` float64 of reduction ``form`` (see :data:`FORMS`).

    ao, ac: magnitudes (>= 0) of the reference and distorted frames, ``[N, K, ...]``, same
    shape, any float dtype (elementwise work in that dtype, sums in float64, as version 1's
    torch path). ``form="mean"`` equals version 1's ``Q_k``. Raises :class:`InputError` for an
    unknown form or shapes that differ.
    """
    return all_forms(ao, ac, (form,), epsilon)[form]


def all_forms(ao: torch.Tensor, ac: torch.Tensor, forms: tuple[str, ...] = FORMS,
              epsilon: float = EPSILON, floor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every reduction in ``forms`` from one pass over the spectra: ``{form: [N, K] float64}``
    (arguments as :func:`normalised_qk`). ``floor``: :func:`floor_of` ``(ao, epsilon)`` when
    the caller has it already (``[N or 1, K, 1]``), else computed here."""
    for form in forms:
        if form not in FORMS:
            raise InputError(f"unknown normalisation {form!r}; expected one of {FORMS}")
    if ao.shape != ac.shape:
        raise InputError(f"magnitude shapes differ: {tuple(ao.shape)} vs {tuple(ac.shape)}")
    ao = ao.flatten(2)
    ac = ac.flatten(2)
    eps64 = floor_of(ao, epsilon) if floor is None else floor.double()
    excess = (ao - ac).div_(ac + eps64.to(ao.dtype))  # r - 1, exactly 0 where ao == ac
    out: dict[str, torch.Tensor] = {}
    mean_excess = excess.sum(dim=-1, dtype=torch.float64) / max(1, excess.shape[-1])
    for form in forms:
        if form == "mean":
            out[form] = mean_excess + 1.0
        elif form == "log":
            out[form] = (torch.log1p(excess).sum(dim=-1, dtype=torch.float64) / max(1, excess.shape[-1])).exp()
        elif form == "relative":
            out[form] = mean_excess * eps64[..., 0] / ao.mean(dim=-1, dtype=torch.float64).clamp_min(ABS_FLOOR)
        else:
            w = ao.sum(dim=-1, dtype=torch.float64).clamp_min(ABS_FLOOR)
            out[form] = (ao * excess).sum(dim=-1, dtype=torch.float64) / w + 1.0
    return out


def identity_value(form: str) -> float:
    """The value every form gives for identical frames: 0 for ``"relative"``, else 1."""
    if form not in FORMS:
        raise InputError(f"unknown normalisation {form!r}; expected one of {FORMS}")
    return 0.0 if form == "relative" else 1.0
