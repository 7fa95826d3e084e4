"""dctqa.log: the core's CSV writer can produce what the study's writer produces (issue 8)."""
from __future__ import annotations

import numpy as np
import pytest

from dctqa import log
from dctqa.errors import InputError

ROWS = [{"video": "a", "frame": 3, "q": 1.23456789, "psnr": None, "ssim": float("nan")},
        {"video": "b,c", "frame": 4, "q": 2.0, "psnr": 40.1234567, "ssim": 0.5}]


def test_csv_defaults_exact_and_crlf():
    text = log.csv_text(ROWS)
    assert text.splitlines()[1] == "a,3,1.23456789,,"
    assert text.endswith("\r\n") and '"b,c"' in text
    with pytest.raises(InputError, match="no rows"):
        log.csv_text([])


def test_csv_options_match_the_study_writer():
    from dctqa.study.report import rows_to_csv

    assert log.csv_text(ROWS, float_format=".6g", lineterminator="\n", empty_ok=True) == rows_to_csv(ROWS)
    assert log.csv_text([], empty_ok=True) == rows_to_csv([]) == ""


def test_harmonic_mean_near_the_float64_limit_is_finite():
    """1/x underflows for x near 1.8e308; the pooled harmonic mean stays the (finite) value."""
    big = 1.7976931348623153e+308
    assert log.pooled([big])["harmonic_mean"] == big
    assert log.pooled([big, 1e308])["harmonic_mean"] == pytest.approx(2 / (1 / big + 1 / 1e308), rel=1e-12)
    assert log.json_text(log.build_log(np.array([big]), [0], {}))  # strictly valid JSON
