"""dct2 (SciPy on CPU, FFT elsewhere) against SciPy's DCT in float64."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from dctqa.ops.dct import _dct2_fft, _dct_last_fft, dct2


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (7, 5), (8, 8), (33, 65)])
@pytest.mark.parametrize("norm", [None, "ortho"])
def test_dct2_matches_scipy(h, w, norm, rng):
    x = rng.normal(size=(2, 3, h, w))
    expected = scipy.fft.dctn(x, type=2, axes=(-2, -1), norm=norm) * (0.25 if norm is None else 1.0)
    np.testing.assert_allclose(dct2(torch.tensor(x), norm).numpy(), expected, rtol=1e-10, atol=1e-10)
    got32 = dct2(torch.tensor(x, dtype=torch.float32), norm)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 16])
def test_fft_path_matches_scipy(n, rng):
    """The FFT formulation (used on GPUs) is tested on the CPU too."""
    x = rng.normal(size=(4, n))
    expected = scipy.fft.dct(x, type=2, axis=-1) * 0.5
    np.testing.assert_allclose(_dct_last_fft(torch.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_dct2_rejects_integer_input():
    with pytest.raises(TypeError, match="floating"):
        dct2(torch.zeros(2, 2, dtype=torch.int32))


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (33, 65)])
@pytest.mark.parametrize("norm", [None, "ortho"])
def test_fft_path_2d_matches_scipy(h, w, norm, rng):
    x = rng.normal(size=(2, 3, h, w))
    expected = scipy.fft.dctn(x, type=2, axes=(-2, -1), norm=norm) * (0.25 if norm is None else 1.0)
    np.testing.assert_allclose(_dct2_fft(torch.tensor(x), norm).numpy(), expected, rtol=1e-10, atol=1e-10)
