"""Constants fixed by ``shared/docs/METRIC.md`` (version 1)."""
from __future__ import annotations

#: Version of the metric definition every implementation computes; recorded in logs.
METRIC_VERSION = 1

#: Relative floor of the ratio: ``eps_k = EPSILON * lower_median(A^o_k) + ABS_FLOOR``.
EPSILON = 0.01

#: Absolute term added to every ``eps_k`` so that all-zero responses stay finite.
ABS_FLOOR = 1e-12

#: Names of the three domains of METRIC.md.
DOMAINS = ("spectral", "feature", "pixel")

#: The paper's backbone, used when none is named.
DEFAULT_BACKBONE = "fasterrcnn_resnet50_fpn"
