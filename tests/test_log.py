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


def test_extra_metrics_are_logged_and_pooled_beside_the_main_one():
    q = np.array([1.5, 2.0, 2.5])
    extra = {"psnr": np.array([40.0, np.nan, 30.0]), "blur": np.full(3, np.nan)}
    got = log.build_log(q, [0, 2, 4], {}, extra=extra)
    assert got["frames"][1]["metrics"] == {"dctqa": 2.0, "psnr": None, "blur": None}
    assert got["pooled_metrics"]["psnr"]["mean"] == 35.0 and got["pooled_metrics"]["psnr"]["undefined_frames"] == 1
    assert got["pooled_metrics"]["blur"]["mean"] is None and got["pooled_metrics"]["blur"]["undefined_frames"] == 3
    assert log.json_text(got)  # strictly valid JSON
    rows = log.log_to_rows(got)
    assert rows[0] == {"frame": 0, "dctqa": 1.5, "psnr": 40.0, "blur": None}
    assert log.csv_text(rows).splitlines()[0] == "frame,dctqa,psnr,blur"
    with pytest.raises(InputError, match="3 per-frame values"):
        log.build_log(q, [0, 2, 4], {}, extra={"psnr": np.zeros(2)})
    filt = log.build_log(q, [0, 2, 4], {}, q_filters=np.ones((3, 2)))
    assert log.log_to_rows(filt)[0] == {"frame": 0, "dctqa": 1.5}  # per-filter lists stay in JSON
