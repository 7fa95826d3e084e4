"""dctqa.QMetric (torchmetrics.Metric) against the mean of Metric.score; sum states (DDP);
the clear error without torchmetrics."""
from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchmetrics", reason="needs torchmetrics (pip install 'dctqa[torchmetrics]')")

import dctqa  # noqa: E402
from dctqa.errors import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _batch(seed: int, n: int, h: int = 20, w: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref + rng.normal(0, 5 + 10 * seed, ref.shape), 0, 255).astype(np.uint8)
    return ref, dist


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def test_attributes() -> None:
    import torchmetrics

    m = dctqa.QMetric(domain="pixel")
    assert isinstance(m, torchmetrics.Metric)
    assert m.higher_is_better is False and m.is_differentiable is False and m.full_state_update is False


def test_compute_is_mean_of_metric_score_over_updates() -> None:
    metric = dctqa.Metric(domain="pixel")
    m = dctqa.QMetric(domain="pixel")
    batches = [_batch(s, n) for s, n in ((0, 3), (1, 1), (2, 4))]
    for ref, dist in batches:
        m.update(_t(ref), _t(dist))
    want = np.concatenate([metric.score(r, d) for r, d in batches]).mean()
    got = m.compute()
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(want, rel=1e-12)
    m.reset()
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(InputError, match="before any update"):
        m.compute()
    ref, dist = batches[2]
    batch_value = m(_t(ref), _t(dist))                 # forward: this batch's mean, accumulated too
    assert float(batch_value) == pytest.approx(metric.score(ref, dist).mean(), rel=1e-12)
    assert float(m.compute()) == pytest.approx(metric.score(ref, dist).mean(), rel=1e-12)


def test_yolox_spectral(yolox_backbone) -> None:
    ref, dist = _batch(3, 2, 32, 40)
    m = dctqa.QMetric(backbone=yolox_backbone, data_range=1.0)
    m.update(_t(ref).double() / 255, _t(dist).double() / 255)
    want = dctqa.Metric(yolox_backbone).score(ref, dist).mean()
    assert float(m.compute()) == pytest.approx(want, rel=1e-6)


def test_states_are_sums_that_merge_like_ddp() -> None:
    """Two ranks' states, merged as DDP's sum reduction does, give the mean over all pairs."""
    metric = dctqa.Metric(domain="pixel")
    a, b = _batch(0, 3), _batch(1, 2)
    m1, m2 = dctqa.QMetric(domain="pixel"), dctqa.QMetric(domain="pixel")
    m1.update(_t(a[0]), _t(a[1]))
    m2.update(_t(b[0]), _t(b[1]))
    assert set(m1._reductions) == {"q_sum", "pairs", "invalid"}
    m1.merge_state(m2)
    want = np.concatenate([metric.score(*a), metric.score(*b)]).mean()
    assert float(m1.compute()) == pytest.approx(want, rel=1e-12) and int(m1.pairs) == 5


def test_bad_frames_and_arguments(monkeypatch) -> None:
    ref, dist = _batch(0, 2)
    m = dctqa.QMetric(domain="pixel")
    with pytest.raises(InputError, match="pass data_range=1.0"):  # CPU frames: raised in update
        m.update(_t(ref).float() / 255, _t(dist).float() / 255)
    with pytest.raises(InputError, match="data_range"):
        dctqa.QMetric(domain="pixel", data_range=-1)
    with pytest.raises(InputError, match="device"):
        dctqa.QMetric(domain="pixel", device="cpu")
    # The GPU path's deferred checks (here forced on the CPU): invalid pairs are counted and
    # compute() refuses to average them away.
    monkeypatch.setattr(dctqa.Metric, "score_tensor",
                        functools.partialmethod(dctqa.Metric.score_tensor, defer_checks=True))
    m.reset()
    r = _t(ref).float()
    r[0, 0, 0, 0] = float("nan")
    m.update(r, _t(dist).float())
    assert int(m.invalid) == 1 and int(m.pairs) == 1
    with pytest.raises(InputError, match="1 of 2 frame pairs had invalid"):
        m.compute()


def test_import_dctqa_without_torchmetrics() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["torchmetrics"] = None   # as if not installed
        import dctqa
        assert dctqa.Metric is not None
        try:
            dctqa.QMetric
        except ImportError as exc:
            assert 'pip install "dctqa[torchmetrics]"' in str(exc), exc
            print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
