"""dctqa.StreamScorer: ordering, batching, backpressure, isolation of bad pairs, shutdown, counters."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

import dctqa
from dctqa.errors import (DroppedError, InputError, QueueFullError, ScorerClosedError, ScoringError,
                          ServeError)
from dctqa.serve import StreamScorer, stage

H, W = 24, 32


class Gate:
    """Callable scorer for control: each call waits for ``release``; a pair's score is its
    dist frame's first pixel (so tests mark frames with values). ``bad`` values raise."""

    def __init__(self, bad: tuple[int, ...] = (), open_: bool = False) -> None:
        self.release = threading.Event()
        if open_:
            self.release.set()
        self.entered = threading.Event()
        self.sizes: list[int] = []
        self.bad = bad

    def __call__(self, ref: torch.Tensor | None, dist: torch.Tensor) -> torch.Tensor:
        self.sizes.append(dist.shape[0])
        self.entered.set()
        assert self.release.wait(20), "test gate never released"
        v = dist[:, 0, 0, 0].double()
        if any(int(x) in self.bad for x in v):
            raise RuntimeError(f"cannot score value {self.bad}")
        return v


def marked(v: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def pairs(rng: np.random.Generator, n: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    ref = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(np.int16) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    return ref, dist


@pytest.fixture(scope="module")
def pixel_metric() -> dctqa.Metric:
    return dctqa.Metric(domain="pixel")


def wait_until(cond, timeout: float = 10.0) -> None:
    t = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < t, "condition not reached"
        time.sleep(0.002)


def test_core_module_lazy_export_and_no_wing_imports() -> None:
    """serve.py is core: it imports package-root modules only, never the study or nr wings."""
    import ast
    from pathlib import Path

    import dctqa.serve

    assert dctqa.StreamScorer is StreamScorer
    tree = ast.parse(Path(dctqa.serve.__file__).read_text())
    rel = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    absolute = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    absolute += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]
    assert rel and all("." not in m and m not in ("study", "nr") for m in rel), rel
    assert not [m for m in absolute if m.startswith("dctqa")], absolute


def test_sixteen_threads_match_sequential_score(pixel_metric, rng) -> None:
    """16 threads, 2 frame sizes, 6 pairs each: every future equals ``Metric.score`` of its pair."""
    sizes = [(H, W), (16, 40)]
    data = {t: pairs(rng, 6, *sizes[t % 2]) for t in range(16)}
    got: dict[int, list] = {}
    with StreamScorer(pixel_metric, max_batch=8, max_wait_ms=5, max_queue=32) as s:
        def feed(t: int) -> None:
            ref, dist = data[t]
            got[t] = [s.submit(f"cam{t}", ref[i], dist[i]) for i in range(len(ref))]

        threads = [threading.Thread(target=feed, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        res = {t: [f.result(timeout=30) for f in fs] for t, fs in got.items()}
        st = s.stats()
    for t, (ref, dist) in data.items():
        want = np.array([pixel_metric.score(ref[i], dist[i])[0] for i in range(len(ref))])
        np.testing.assert_array_equal(np.array(res[t]), want)
    assert st.total.pairs == 96 and st.total.failed == 0 and st.total.pending == 0
    assert sum(k * v for k, v in st.batch_sizes.items()) == 96
    assert st.mean_batch > 1  # pairs were really batched


def test_yolox_spectral_matches_sequential(yolox_backbone, rng) -> None:
    m = dctqa.Metric(backbone=yolox_backbone)
    ref, dist = pairs(rng, 6, 32, 48)
    with StreamScorer(m, max_batch=4, max_wait_ms=20) as s:
        fs = [s.submit(i % 2, ref[i], dist[i]) for i in range(6)]
        got = np.array([f.result(timeout=30) for f in fs])
    np.testing.assert_allclose(got, m.score(ref, dist), rtol=1e-12)


def test_order_per_stream_across_sizes() -> None:
    """Sizes alternate inside each stream, so batches run out of submission order; futures
    still resolve (done-callbacks fire) in submission order per stream."""
    gate = Gate()
    order: dict[str, list[int]] = {"a": [], "b": []}
    with StreamScorer(gate, max_batch=16, max_wait_ms=300, max_queue=64) as s:
        futs = []
        for i in range(20):
            sid = "ab"[i % 2]
            h = H if (i // 2) % 2 == 0 else H + 8
            f = s.submit(sid, marked(i, h), marked(i, h))
            f.add_done_callback(lambda _f, sid=sid, i=i: order[sid].append(i))
            futs.append(f)
        gate.release.set()
        assert [f.result(timeout=10) for f in futs] == list(range(20))
    assert order["a"] == list(range(0, 20, 2)) and order["b"] == list(range(1, 20, 2))
    assert len(gate.sizes) >= 2  # the two sizes never share a batch


def test_batches_group_up_to_max_batch_and_wait() -> None:
    gate = Gate(open_=True)
    with StreamScorer(gate, max_batch=4, max_wait_ms=300, max_queue=16) as s:
        fs = [s.submit("s", marked(i), marked(i)) for i in range(10)]
        [f.result(timeout=10) for f in fs]
    # 10 pairs submitted within the 300 ms window: full batches of 4, 4, then 2 after the wait
    assert gate.sizes == [4, 4, 2]


def test_block_policy_waits_then_times_out() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=2, when_full="block")
    try:
        first = s.submit("s", marked(1), marked(1))
        assert gate.entered.wait(10)                  # pair 1 is in the scorer
        queued = [s.submit("s", marked(v), marked(v)) for v in (2, 3)]
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match="queue full"):
            s.submit("s", marked(4), marked(4), timeout=0.1)
        assert time.monotonic() - t0 >= 0.09
        late: list = []
        th = threading.Thread(target=lambda: late.append(s.submit("s", marked(5), marked(5))))
        th.start()
        time.sleep(0.1)
        assert th.is_alive() and not late             # blocked while the queue is full
        gate.release.set()
        th.join(10)
        assert [f.result(timeout=10) for f in [first, *queued, late[0]]] == [1, 2, 3, 5]
        st = s.stats()
        assert st.total.submitted == 4 and st.total.pairs == 4 and st.total.dropped == 0
    finally:
        gate.release.set()
        s.close()


def test_drop_oldest_policy_counts_drops() -> None:
    gate = Gate()
    with StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=2, when_full="drop_oldest") as s:
        running = s.submit("a", marked(1), marked(1))
        assert gate.entered.wait(10)
        oldest = s.submit("b", marked(2), marked(2))
        kept = s.submit("a", marked(3), marked(3))
        newest = s.submit("a", marked(4), marked(4))   # queue full: "b"'s pair goes
        with pytest.raises(DroppedError, match="drop_oldest"):
            oldest.result(timeout=10)
        assert s.stats().queued == 2
        gate.release.set()
        assert [f.result(timeout=10) for f in (running, kept, newest)] == [1, 3, 4]
        st = s.stats()
    assert st.streams["b"].dropped == 1 and st.streams["a"].dropped == 0 and st.total.dropped == 1
    assert st.streams["a"].pairs == 3 and st.total.submitted == 4


@pytest.mark.parametrize("ref,dist,match", [
    (marked(1), marked(1, H, W + 2), "sizes must match"),
    (marked(1).astype(np.int32), marked(1).astype(np.int32), "uint8 or float"),
    (marked(1)[..., 0], marked(1)[..., 0], "grayscale"),
    (np.stack([marked(1)] * 2), np.stack([marked(1)] * 2), "one frame"),
    (None, marked(1), "needs the reference"),
    ("not a frame", marked(1), "NumPy array or torch tensor"),
])
def test_bad_pair_fails_only_its_future(pixel_metric, rng, ref, dist, match) -> None:
    r, d = pairs(rng, 2)
    with StreamScorer(pixel_metric, max_batch=4, max_wait_ms=20) as s:
        ok1 = s.submit("s", r[0], d[0])
        bad = s.submit("s", ref, dist)
        ok2 = s.submit("s", r[1], d[1])
        with pytest.raises(InputError, match=match):
            bad.result(timeout=10)
        np.testing.assert_array_equal([ok1.result(timeout=10), ok2.result(timeout=10)], pixel_metric.score(r, d))
        st = s.stats()
    assert st.streams["s"].failed == 1 and st.streams["s"].pairs == 2


def test_failing_batch_is_retried_pair_by_pair() -> None:
    gate = Gate(bad=(7,), open_=True)
    with StreamScorer(gate, max_batch=8, max_wait_ms=200) as s:
        fs = [s.submit(i % 2, marked(v), marked(v)) for i, v in enumerate([5, 6, 7, 8])]
        with pytest.raises(ScoringError, match="RuntimeError: cannot score") as ei:
            fs[2].result(timeout=10)
        assert isinstance(ei.value.__cause__, RuntimeError) and isinstance(ei.value, ServeError)
        assert [fs[i].result(timeout=10) for i in (0, 1, 3)] == [5, 6, 8]
        st = s.stats()
    assert gate.sizes == [4, 1, 1, 1, 1] and st.retried == 1 and st.total.failed == 1


def test_wrong_output_shape_is_a_scoring_error() -> None:
    with StreamScorer(lambda r, d: np.zeros(3), max_batch=1) as s:
        with pytest.raises(ScoringError, match=r"shape \(3,\) for a batch of 1"):
            s.submit("s", marked(1), marked(1)).result(timeout=10)


def test_close_drains_pending_work() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=2, max_wait_ms=0, max_queue=16)
    fs = [s.submit("s", marked(v), marked(v)) for v in range(6)]
    threading.Timer(0.1, gate.release.set).start()
    s.close()
    assert [f.result(timeout=0) for f in fs] == list(range(6))
    with pytest.raises(ScorerClosedError):
        s.submit("s", marked(1), marked(1))
    s.close()  # idempotent


def test_close_cancel_pending_fails_queued_pairs() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=16)
    fs = [s.submit("s", marked(v), marked(v)) for v in range(4)]
    assert gate.entered.wait(10)
    threading.Timer(0.1, gate.release.set).start()
    s.close(cancel_pending=True)
    assert fs[0].result(timeout=0) == 0                 # the running pair finished
    for f in fs[1:]:
        with pytest.raises(ScorerClosedError, match="closed before it was scored"):
            f.result(timeout=0)
    assert s.stats().total.failed == 3


def test_close_with_stuck_scorer_does_not_hang() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=2)
    fs = [s.submit("s", marked(v), marked(v)) for v in range(3)]
    assert gate.entered.wait(10)
    blocked: list = []

    def late() -> None:
        try:
            s.submit("s", marked(9), marked(9))
        except ScorerClosedError as exc:
            blocked.append(exc)

    th = threading.Thread(target=late)
    th.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    s.close(timeout=0.2)
    assert time.monotonic() - t0 < 5
    th.join(5)
    assert blocked, "a submit blocked on a full queue must fail at close"
    for f in fs:
        with pytest.raises(ScorerClosedError, match="did not finish within 0.2 s"):
            f.result(timeout=0)
    gate.release.set()                                # the abandoned worker exits; nothing changes
    s._thread.join(10)
    assert not s._thread.is_alive()
    with pytest.raises(ScorerClosedError):
        fs[0].result(timeout=0)


def test_cancelled_future_is_skipped() -> None:
    gate = Gate()
    with StreamScorer(gate, max_batch=1, max_wait_ms=0) as s:
        fs = [s.submit("s", marked(v), marked(v)) for v in range(3)]
        assert gate.entered.wait(10)
        assert fs[1].cancel()
        gate.release.set()
        assert fs[2].result(timeout=10) == 2 and fs[0].result(timeout=10) == 0
        st = s.stats()
    assert st.total.cancelled == 1 and st.total.pairs == 2 and gate.sizes == [1, 1]


def test_asyncio_variant(pixel_metric, rng) -> None:
    ref, dist = pairs(rng, 8)

    async def main() -> list[float]:
        with StreamScorer(pixel_metric, max_batch=4, max_wait_ms=5) as s:
            return await asyncio.gather(*(s.asubmit(i % 3, ref[i], dist[i]) for i in range(8)))

    np.testing.assert_array_equal(asyncio.run(main()), pixel_metric.score(ref, dist))


def test_asyncio_full_queue_waits_off_the_loop() -> None:
    gate = Gate()

    async def main() -> tuple[list[float], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not gate.release.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        with StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=1) as s:
            t = asyncio.create_task(ticker())
            first = asyncio.create_task(s.asubmit("s", marked(1), marked(1)))
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(s.asubmit("s", marked(v), marked(v))) for v in (2, 3)]
            await asyncio.sleep(0.1)                  # the loop keeps running while submits wait
            gate.release.set()
            out = await asyncio.gather(first, *rest)
            await t
            gate.release.clear()
            busy = asyncio.create_task(s.asubmit("s", marked(4), marked(4)))
            await asyncio.sleep(0.05)
            queued = asyncio.create_task(s.asubmit("s", marked(5), marked(5)))
            await asyncio.sleep(0.05)
            with pytest.raises(QueueFullError):
                await s.asubmit("s", marked(6), marked(6), timeout=0)
            gate.release.set()
            assert await asyncio.gather(busy, queued) == [4, 5]
        return out, ticks

    out, ticks = asyncio.run(main())
    assert sorted(out) == [1, 2, 3] and ticks >= 10


def test_counters(pixel_metric, rng) -> None:
    ref, dist = pairs(rng, 12)
    with StreamScorer(pixel_metric, max_batch=4, max_wait_ms=5) as s:
        assert s.stats().total.p50_ms is None
        fs = [s.submit(f"c{i % 3}", ref[i], dist[i]) for i in range(12)]
        s.submit("c0", ref[0], dist[0][:5])
        [f.result(timeout=10) for f in fs]
        wait_until(lambda: s.stats().total.pending == 0)
        st = s.stats()
    assert st.total.submitted == 13 and st.total.pairs == 12 and st.total.failed == 1
    assert {k: v.pairs for k, v in st.streams.items()} == {"c0": 4, "c1": 4, "c2": 4}
    assert st.streams["c0"].failed == 1 and st.streams["c0"].submitted == 5
    assert 0 < st.total.p50_ms <= st.total.p95_ms <= st.total.p99_ms < 30_000
    assert sum(k * v for k, v in st.batch_sizes.items()) == 12 == sum(v.pairs for v in st.streams.values())
    assert st.batches == sum(st.batch_sizes.values()) and st.queued == 0


def test_no_reference_scorer_protocol() -> None:
    class NR:
        def predict(self, frames: torch.Tensor) -> np.ndarray:
            return frames.float().mean(dim=(1, 2, 3)).numpy()

    with StreamScorer(NR(), max_batch=4) as s:
        assert s.submit("s", None, marked(9)).result(timeout=10) == 9.0
        with pytest.raises(InputError, match="no-reference"):
            s.submit("s", marked(9), marked(9)).result(timeout=10)
    with pytest.raises(InputError, match="cannot serve"):
        StreamScorer(object())
    with StreamScorer(NR()) as s, pytest.raises(InputError, match="hashable"):
        s.submit(["not", "hashable"], None, marked(1))


@pytest.mark.parametrize("kw,match", [({"when_full": "spill"}, "when_full"), ({"max_batch": 0}, "max_batch"),
                                      ({"max_batch": 8, "max_queue": 4}, "max_queue"),
                                      ({"max_wait_ms": -1}, "max_wait_ms")])
def test_bad_arguments(kw, match) -> None:
    with pytest.raises(InputError, match=match):
        StreamScorer(lambda r, d: d[:, 0, 0, 0], **kw)


def test_stage_host_to_device_path_on_cpu(rng) -> None:
    """The staging path (host buffer, one copy) runs on the CPU with a meta target device;
    the values path is the same-device branch."""
    ref, _ = pairs(rng, 3)
    frames = [torch.from_numpy(f).permute(2, 0, 1) for f in ref]
    out = stage(frames, torch.device("meta"), pin=False)
    assert out.device.type == "meta" and tuple(out.shape) == (3, 3, H, W) and out.dtype == torch.uint8
    same = stage(frames, torch.device("cpu"), pin=False)
    assert torch.equal(same, torch.from_numpy(ref).permute(0, 3, 1, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (pinned-memory copies to the GPU)")
def test_cuda_pinned_staging_and_cuda_frames(rng) -> None:
    ref, dist = pairs(rng, 4)
    frames = [torch.from_numpy(f).permute(2, 0, 1) for f in ref]
    out = stage(frames, torch.device("cuda"), pin=True)
    assert out.is_cuda and torch.equal(out.cpu(), torch.from_numpy(ref).permute(0, 3, 1, 2))
    m = dctqa.Metric(domain="pixel", device="cuda")
    want = m.score(ref, dist)
    with StreamScorer(m, max_batch=4, max_wait_ms=20) as s:
        host = [s.submit("h", ref[i], dist[i]) for i in range(4)]
        dev = [s.submit("d", torch.from_numpy(ref[i]).permute(2, 0, 1).cuda(),
                        torch.from_numpy(dist[i]).permute(2, 0, 1).cuda()) for i in range(4)]
        np.testing.assert_allclose([f.result(timeout=30) for f in host], want, rtol=1e-5)
        np.testing.assert_allclose([f.result(timeout=30) for f in dev], want, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_worker_bug_fails_futures_instead_of_hanging() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=3, max_wait_ms=5000)  # the batch starts once all 3 are queued

    def broken(batch):
        raise RuntimeError("bug in the worker")

    s._run = broken
    fs = [s.submit("s", marked(v), marked(v)) for v in range(3)]
    for f in fs:
        with pytest.raises(ScorerClosedError, match="worker thread failed .*bug in the worker"):
            f.result(timeout=10)
    with pytest.raises(ScorerClosedError):
        s.submit("s", marked(1), marked(1))
    s.close(timeout=5)


def test_forget_finished_stream() -> None:
    gate = Gate()
    with StreamScorer(gate, max_batch=1, max_wait_ms=0) as s:
        f = s.submit("old", marked(1), marked(1))
        with pytest.raises(InputError, match="unresolved"):
            s.forget("old")
        gate.release.set()
        f.result(timeout=10)
        wait_until(lambda: s.stats().total.pending == 0)
        s.forget("old")
        s.forget("never-seen")
        st = s.stats()
    assert "old" not in st.streams and st.total.pairs == 1


def test_histogram_percentiles_bound_the_exact_ones() -> None:
    """Each reported percentile is the upper edge of its bucket: >= the exact (inverted-CDF)
    percentile and at most 2**(1/8) above it."""
    from dctqa.serve import HIST_BUCKETS, _bucket, _hist_percentiles

    rng = np.random.default_rng(3)
    for scale in (1e-4, 2e-3, 0.05, 3.0):
        x = rng.lognormal(np.log(scale), 1.0, 5000)
        h = np.zeros(HIST_BUCKETS, np.int64)
        for v in x:
            h[_bucket(float(v))] += 1
        got = _hist_percentiles(h[None])[0]
        exact = np.percentile(x * 1000.0, [50, 95, 99], method="inverted_cdf")
        assert (got >= exact * (1 - 1e-9)).all() and (got <= exact * 2 ** (1 / 8) * (1 + 1e-9)).all(), (got, exact)
    assert np.isnan(_hist_percentiles(np.zeros((1, HIST_BUCKETS), np.int64))).all()
    assert _bucket(0.0) == 0 and _bucket(1e9) == HIST_BUCKETS - 1


def test_queue_wait_and_compute_time_reported_apart() -> None:
    """Pair 1 runs 0.3 s in the scorer; pair 2 waits behind it in the queue for about as long."""
    gate = Gate()
    with StreamScorer(gate, max_batch=1, max_wait_ms=0) as s:
        a = s.submit("a", marked(1), marked(1))
        assert gate.entered.wait(10)
        b = s.submit("b", marked(2), marked(2))
        threading.Timer(0.3, gate.release.set).start()
        a.result(timeout=10), b.result(timeout=10)
        wait_until(lambda: s.stats().total.pending == 0)
        st = s.stats()
    sa, sb = st.streams["a"], st.streams["b"]
    assert sa.compute_p50_ms >= 250 and sa.queue_p50_ms < 100
    assert sb.queue_p50_ms >= 200 and sb.compute_p50_ms < 100
    assert sa.p50_ms >= sa.compute_p50_ms and sb.p50_ms >= sb.queue_p50_ms
    assert st.total.queue_p99_ms >= sb.queue_p50_ms and st.total.compute_p99_ms >= sa.compute_p50_ms


def test_percentile_window_is_bounded() -> None:
    """The histograms cover the last latency_window .. 2 x latency_window pairs."""
    with StreamScorer(lambda r, d: d[:, 0, 0, 0].double(), max_batch=4, max_wait_ms=0, latency_window=4) as s:
        [f.result(timeout=10) for f in [s.submit("s", marked(1), marked(1)) for _ in range(21)]]
        wait_until(lambda: s.stats().total.pairs == 21)
        kept = int(s._table.hist[0, 0].sum())
        per_stream = int(s._table.hist[s._streams["s"].row, 0].sum())
    assert 4 <= kept <= 8 and 4 <= per_stream <= 8


def test_healthy_idle_busy_stuck_closed() -> None:
    gate = Gate()
    s = StreamScorer(gate, max_batch=1, max_wait_ms=0)
    try:
        assert s.healthy() and s.healthy(stall_s=0.01)  # idle: nothing waits
        f = s.submit("s", marked(1), marked(1))
        assert gate.entered.wait(10)
        assert s.healthy(stall_s=10)                   # busy for less than the bound
        time.sleep(0.15)
        assert not s.healthy(stall_s=0.1)              # one call running 0.15 s without progress
        gate.release.set()
        f.result(timeout=10)
        wait_until(lambda: s.healthy(stall_s=0.1))
        with pytest.raises(InputError, match="stall_s"):
            s.healthy(stall_s=0)
    finally:
        gate.release.set()
        s.close()
    assert not s.healthy()                             # closed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthy_false_when_worker_died() -> None:
    s = StreamScorer(Gate(open_=True), max_batch=1, max_wait_ms=0)

    def broken(batch):
        raise RuntimeError("bug in the worker")

    s._run = broken
    f = s.submit("s", marked(1), marked(1))
    with pytest.raises(ScorerClosedError):
        f.result(timeout=10)
    s._thread.join(10)
    assert not s.healthy()
    s.close(timeout=5)


def test_logging_start_drop_close(caplog) -> None:
    import logging

    gate = Gate()
    with caplog.at_level(logging.INFO, logger="dctqa"):
        with StreamScorer(gate, max_batch=1, max_wait_ms=0, max_queue=1, when_full="drop_oldest") as s:
            fs = [s.submit("s", marked(1), marked(1))]
            assert gate.entered.wait(10)
            fs += [s.submit("s", marked(v), marked(v)) for v in (2, 3)]  # the second drops the first queued
            gate.release.set()
    msgs = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert any(n == "dctqa.serve" and "started" in m for n, _, m in msgs)
    assert any(lvl == "WARNING" and "1 pair(s) dropped" in m for _, lvl, m in msgs)
    assert any("closing" in m for _, _, m in msgs)


def test_float_frames_checked_against_the_scorers_data_range(rng) -> None:
    ref, dist = pairs(rng, 2)
    want = dctqa.Metric(domain="pixel").score(ref, dist)
    unit = dctqa.Metric(domain="pixel", data_range=1.0)
    with StreamScorer(unit, max_batch=2, max_wait_ms=20) as s:
        fs = [s.submit("s", ref[i] / 255.0, dist[i] / 255.0) for i in range(2)]
        np.testing.assert_allclose([f.result(timeout=10) for f in fs], want, rtol=1e-9)
        with pytest.raises(InputError, match="expected values in 0..1"):
            s.submit("s", ref[0].astype(np.float64), dist[0].astype(np.float64)).result(timeout=10)
    with StreamScorer(dctqa.Metric(domain="pixel"), max_batch=2, max_wait_ms=20) as s:
        with pytest.raises(InputError, match="pass data_range=1.0"):
            s.submit("s", ref[0] / 255.0, dist[0] / 255.0).result(timeout=10)


def test_a_no_reference_metric_is_served_by_predict_even_with_score() -> None:
    """A registry metric of kind "NR" has score(dist) too; StreamScorer must use predict(frames)
    and refuse reference=True, not treat it as full-reference."""
    import numpy as np
    import pytest

    from dctqa.errors import InputError
    from dctqa.serve import StreamScorer, as_batch_fn

    class NR:
        kind = "NR"

        def score(self, dist):  # the registry's single-frame form; never used by the scorer
            raise AssertionError("score() must not be called")

        def predict(self, frames):
            return np.asarray(frames, dtype=np.float64).reshape(len(frames), -1).mean(axis=1)

    fn, needs_ref = as_batch_fn(NR())
    assert needs_ref is False
    with pytest.raises(InputError, match="no-reference"):
        as_batch_fn(NR(), reference=True)
    frame = np.full((8, 8, 3), 7, dtype=np.uint8)
    with StreamScorer(NR(), max_batch=1) as s:
        assert s.submit("cam", None, frame).result(timeout=30) == pytest.approx(7.0)
