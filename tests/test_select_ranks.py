"""The CPU kernels' rank selection (``select_ranks`` in csrc/common/cpu_reduce.cpp): one
histogram over the key range, then std::nth_element inside the bins holding the ranks. The
streaming kernel takes its median bracket and its exact median from it, so it must be exact
for every distribution: checked against NumPy's sort through the extension's test hook."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dctqa import ops

_AVAIL = ops.available()
pytestmark = pytest.mark.skipif(not _AVAIL["cpp"], reason=f"compiled ops not built: {_AVAIL['extension_error']}")


def _select(x: np.ndarray, ranks, in_place: bool = False) -> list[float]:
    from dctqa import _C

    return _C._select_ranks(np.ascontiguousarray(x, np.float32).tobytes(), list(ranks), in_place)


def _cases():
    g = np.random.default_rng(7)
    yield "lognormal", np.exp(g.normal(0, 3, 20000))
    yield "magnitudes", np.abs(g.normal(0, 1, 16384) + 1j * g.normal(0, 1, 16384)) * 4
    yield "narrow", 100 + g.random(12000) * 3  # a gathered bracket: all within 3 %
    yield "ties", g.integers(0, 5, 9999).astype(float)
    yield "signed", g.normal(0, 1e6, 5000)
    yield "zeros", np.r_[np.zeros(700), g.random(300)]
    yield "tiny", np.r_[np.full(50, 1e-40), np.full(50, 1.17549435e-38), np.zeros(3)]  # subnormals


@pytest.mark.parametrize("name,x", list(_cases()), ids=[c[0] for c in _cases()])
def test_ranks_are_exact(name, x):
    x = x.astype(np.float32)
    s = np.sort(x)
    n = len(x)
    for ranks in ([0], [n - 1], [(n - 1) // 2], [n // 3, n // 3 + 1], [n // 2 - 40, n // 2 + 40], [5, n - 5, n // 2]):
        assert _select(x, ranks) == [float(s[r]) for r in ranks], ranks
    assert _select(x, [(n - 1) // 2], in_place=True) == [float(s[(n - 1) // 2])]


def test_all_equal_and_single_value():
    assert _select(np.full(100, 2.5), [0, 99]) == [2.5, 2.5]
    assert _select(np.array([7.0]), [0], in_place=True) == [7.0]


def test_hook_rejects_bad_ranks():
    with pytest.raises(ValueError, match="ranks"):
        _select(np.ones(4), [4])
    with pytest.raises(ValueError, match="in_place"):
        _select(np.ones(4), [0, 1], in_place=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=True, width=32), min_size=1, max_size=300),
       st.data())
def test_ranks_are_exact_for_any_floats(values, data):
    x = np.array(values, np.float32)
    ranks = data.draw(st.lists(st.integers(0, len(x) - 1), min_size=1, max_size=4))
    s = np.sort(x)
    assert _select(x, ranks) == [float(s[r]) for r in ranks]
