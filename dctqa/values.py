"""Predicates on argument values, shared by every check of a Python API argument (the
command line parses its own through :mod:`dctqa.argtypes`). Torch-free, bottom layer."""
from __future__ import annotations

import math

import numpy as np


def is_int(x: object) -> bool:
    """An integer (Python or NumPy) that is not a bool: ``True`` is not a count."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_real(x: object, finite: bool = True) -> bool:
    """A real number (Python or NumPy, not a bool or a string); finite unless ``finite=False``."""
    if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, (bool, np.bool_)):
        return False
    return not finite or math.isfinite(x)
