"""Serving many camera streams with one scorer: micro-batching, backpressure, ordered futures.

:class:`StreamScorer` wraps one scorer (a :class:`dctqa.Metric`, or anything that follows
the protocol below) behind a bounded queue and one worker thread. Any thread calls
``submit(stream_id, ref, dist)`` and gets a :class:`concurrent.futures.Future` of the pair's
``Q`` (asyncio code awaits ``asubmit``). The worker groups waiting pairs of the same frame
size, dtype and device into batches of at most ``max_batch`` pairs, waiting at most
``max_wait_ms`` after the oldest waiting pair arrived, scores each batch with one call and
resolves the futures of every stream in the order that stream submitted them.

Scorer protocol (what the wrapped object must offer), chosen in this order:

* ``score(ref, dist) -> (B,)`` — full reference, e.g. :class:`dctqa.Metric`;
* ``predict(frames) -> (B,)`` — no reference (submit with ``ref=None``);
* any callable ``fn(ref, dist) -> (B,)`` (``ref`` is ``None`` with ``reference=False``).

The scorer receives ``[B, 3, H, W]`` RGB torch tensors (uint8, or float in ``0..data_range``
as submitted: the scorer's ``data_range`` attribute, e.g. :class:`dctqa.Metric`'s, else 255)
on the scorer's device (its ``device`` attribute, else the ``device`` argument,
else the CPU) and returns ``B`` finite numbers (NumPy array, tensor or sequence). It is only
ever called from the worker thread. Frames that come from the host while the device is a GPU
are gathered into a pinned (page-locked) host buffer and copied asynchronously; frames that
are already CUDA tensors are batched on the GPU.

Errors: a pair that is malformed (not ``H x W x 3`` / ``3 x H x W`` RGB, wrong dtype, ref and
dist of different sizes) fails only its own future (:class:`~dctqa.errors.InputError`); so
does a pair the scorer rejects (a failed batch is retried pair by pair). Pairs that are not
scored fail with a :class:`~dctqa.errors.ServeError` subclass: :class:`DroppedError`,
:class:`ScorerClosedError`, :class:`ScoringError` (the scorer raised a non-dctqa error).

Observability: :meth:`StreamScorer.stats` (counters; latency, queue-wait and compute-time
percentiles from fixed histograms), :meth:`StreamScorer.healthy` (for a liveness probe), and
the ``dctqa.serve`` logger (start and close at INFO; drops, retried batches and a stuck worker
at WARNING, repeated ones at counts 1, 10, 100, ...; a failed worker thread at ERROR).
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, NamedTuple, Optional, Protocol

import numpy as np
import torch

from .errors import (DctqaError, DroppedError, InputError, QueueFullError, ScorerClosedError,
                     ScoringError)
from .metric import DATA_RANGE_8BIT, _as_nchw
from .values import is_int, is_real

_log = logging.getLogger(__name__)

#: Policies of a full queue.
WHEN_FULL = ("block", "drop_oldest")

#: Latency histograms: log-spaced buckets, :data:`HIST_PER_OCTAVE` per doubling from
#: :data:`HIST_LOW_S` up to ``HIST_LOW_S * 2**HIST_OCTAVES`` (10 us .. 168 s), plus one bucket
#: below and one above. Each bucket spans a factor ``2**(1/8)`` (about 1.0905).
HIST_LOW_S = 1e-5
HIST_PER_OCTAVE = 8
HIST_OCTAVES = 24
HIST_BUCKETS = HIST_PER_OCTAVE * HIST_OCTAVES + 2
#: The value reported for each bucket (ms): its upper edge; the lowest bucket reports 0.01 ms,
#: the highest (above 168 s) its lower edge.
_BUCKET_MS = np.array([HIST_LOW_S * 2.0 ** (min(i, HIST_BUCKETS - 2) / HIST_PER_OCTAVE) * 1000.0
                       for i in range(HIST_BUCKETS)])
#: What the three histograms of a stream measure (see :class:`StreamStats`).
_LATENCY, _QUEUE, _COMPUTE = 0, 1, 2
_WHAT = [_LATENCY, _QUEUE, _COMPUTE]
#: Largest ``latency_window``: the int32 histograms hold up to two windows of pairs.
MAX_WINDOW = 2 ** 30
_PERCENTILES = np.array([0.50, 0.95, 0.99])


def _bucket(seconds: float) -> int:
    """Histogram bucket of a duration: 0 for <= 10 us, ``ceil(8 log2(s / 10 us))`` up to the top one."""
    if seconds <= HIST_LOW_S:
        return 0
    return min(HIST_BUCKETS - 1, max(1, math.ceil(math.log2(seconds / HIST_LOW_S) * HIST_PER_OCTAVE)))


def _hist_percentiles(h: np.ndarray) -> np.ndarray:
    """``h``: ``[..., HIST_BUCKETS]`` counts -> ``[..., 3]`` p50/p95/p99 in ms (NaN where empty):
    the reported value of the bucket that holds the rank ``ceil(p * n)`` pair."""
    cum = h.cumsum(axis=-1, dtype=np.int64)
    n = cum[..., -1:]
    need = np.maximum(1, np.ceil(n * _PERCENTILES))
    idx = (cum[..., None, :] >= need[..., :, None]).argmax(axis=-1)
    out = _BUCKET_MS[idx]
    out[n[..., 0] == 0] = np.nan
    return out


def _power_of_ten(n: int) -> bool:
    """1, 10, 100, ...: when a repeated event is logged again (not once per pair)."""
    return n > 0 and str(n).rstrip("0") == "1"

BatchFn = Callable[[Optional[torch.Tensor], torch.Tensor], Any]


class PairScorer(Protocol):
    """Full-reference scorer: ``[B, 3, H, W]`` ref and dist -> ``B`` scores (e.g. :class:`dctqa.Metric`)."""

    def score(self, ref: torch.Tensor, dist: torch.Tensor) -> Any: ...


class FrameScorer(Protocol):
    """No-reference scorer: ``[B, 3, H, W]`` frames -> ``B`` scores."""

    def predict(self, frames: torch.Tensor) -> Any: ...


def as_batch_fn(scorer: Any, reference: bool | None = None) -> tuple[BatchFn, bool]:
    """``(fn(ref, dist) -> B scores, needs_reference)`` for an object of the scorer protocol.

    A registry metric of kind ``"NR"`` (e.g. ``create_metric("dctqa_nr", ...)``) is served by
    its ``predict(frames)``: no-reference, whatever its ``score`` looks like."""
    if getattr(scorer, "kind", None) == "NR" and callable(getattr(scorer, "predict", None)):
        if reference:
            raise InputError("a no-reference metric (kind 'NR') scores the distorted frame alone; "
                             "reference=True does not apply")
        return (lambda r, d: scorer.predict(d)), False
    if callable(getattr(scorer, "score", None)):
        return (lambda r, d: scorer.score(r, d)), True if reference is None else reference
    if callable(getattr(scorer, "predict", None)):
        if reference:
            raise InputError("a scorer with predict(frames) is no-reference; reference=True does not apply")
        return (lambda r, d: scorer.predict(d)), False
    if callable(scorer):
        return scorer, True if reference is None else bool(reference)
    raise InputError(f"cannot serve a {type(scorer).__name__}: expected an object with score(ref, dist) "
                     f"or predict(frames), or a callable fn(ref, dist), each returning one score per pair")


def stage(frames: list[torch.Tensor], device: torch.device, pin: bool) -> torch.Tensor:
    """Stack ``[3, H, W]`` frames (any strides, one device) into ``[B, 3, H, W]`` on ``device``.

    Frames are gathered in ``H x W x 3`` order (a plain copy for frames decoded into NumPy
    arrays) and returned as a channels-first view. Host frames bound for another device go
    through one host buffer (page-locked when ``pin``) and a single non-blocking copy.
    """
    hwc = [f.permute(1, 2, 0) for f in frames]
    src = frames[0].device
    if src == device or src.type != "cpu":
        return torch.stack(hwc).to(device).permute(0, 3, 1, 2)
    buf = torch.empty((len(hwc), *hwc[0].shape), dtype=frames[0].dtype, pin_memory=pin)
    torch.stack(hwc, out=buf)
    return buf.to(device, non_blocking=pin).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class StreamStats:
    """Counters of one stream (or of all of them), and percentiles of three durations of its
    scored pairs, in milliseconds (``None`` before the first scored pair):

    * ``p50_ms``/``p95_ms``/``p99_ms``: latency, from the ``submit`` call (time blocked on a
      full queue included) to the score being set;
    * ``queue_p*_ms``: queue wait, from ``submit`` to the start of the scorer call that scored
      the pair (batching wait and backlog);
    * ``compute_p*_ms``: from the start to the end of that scorer call (staging the batch on
      the device included; the whole batch's time, as each pair of it waits for all).

    Percentiles come from fixed log-spaced histograms (8 buckets per doubling, 10 us to 168 s):
    each is the upper edge of the bucket holding it, so it is never below the exact value and
    at most 9.05 % above (0.01 ms for durations under 10 us). They cover the last
    ``latency_window`` to ``2 * latency_window`` scored pairs (two generations of histograms).

    submitted: accepted by ``submit``; pairs: scored; dropped: failed with :class:`DroppedError`;
    failed: failed for another reason (bad input, scorer error, closed); cancelled: cancelled by
    the caller before scoring; pending: submitted and not resolved yet.
    """

    submitted: int = 0
    pairs: int = 0
    dropped: int = 0
    failed: int = 0
    cancelled: int = 0
    pending: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    queue_p50_ms: float | None = None
    queue_p95_ms: float | None = None
    queue_p99_ms: float | None = None
    compute_p50_ms: float | None = None
    compute_p95_ms: float | None = None
    compute_p99_ms: float | None = None


@dataclass(frozen=True)
class ServeStats:
    """Snapshot of a :class:`StreamScorer`: totals, per stream, and how batches were formed.

    batch_sizes: ``{size: number of scorer calls}`` (retries of a failed batch count as size 1);
    retried: batches that failed and were retried pair by pair; queued: pairs waiting now.
    """

    total: StreamStats
    streams: dict[Hashable, StreamStats]
    batches: int
    batch_sizes: dict[int, int]
    retried: int
    queued: int

    @property
    def mean_batch(self) -> float:
        """Mean pairs per scorer call (0 before the first call)."""
        n = sum(self.batch_sizes.values())
        return sum(k * v for k, v in self.batch_sizes.items()) / n if n else 0.0


@dataclass(eq=False)
class _Item:
    stream: Hashable
    seq: int
    ref: torch.Tensor | None
    dist: torch.Tensor | None
    key: tuple
    future: cf.Future
    t_submit: float
    done: bool = False
    t_start: float = 0.0  # start of the scorer call that scored it (perf_counter seconds)
    t_end: float = 0.0    # end of that call


@dataclass(eq=False)
class _Stream:
    window: int
    next_seq: int = 0
    next_out: int = 0
    outcomes: dict = field(default_factory=dict)     # seq -> (item, kind, value), waiting for earlier seqs
    unresolved: dict = field(default_factory=dict)   # seq -> item
    row: int = 0          # its row of the _Table (0: the total)
    in_current: int = 0   # scored pairs in the current histogram generation


#: The counters of a stream, in the order of :class:`StreamStats` (columns of ``_Table.counts``).
_COUNTS = {"submitted": 0, "pairs": 1, "dropped": 2, "failed": 3, "cancelled": 4}


class _Table:
    """Counters and histograms of every stream, one row each (row 0: the total), in arrays, so
    that :meth:`StreamScorer.stats` copies them with two slices. Used with the lock held.

    counts: ``[rows, 5]``. Histograms ``[rows, what (_LATENCY, _QUEUE, _COMPUTE), bucket]``:
    ``current`` counts the pairs of the current generation (fewer than ``window``), ``hist``
    those of the previous generation plus the current one (what the percentiles read)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.counts = np.zeros((16, len(_COUNTS)), dtype=np.int64)
        self.hist = np.zeros((16, 3, HIST_BUCKETS), dtype=np.int32)  # counts <= 2 * MAX_WINDOW < 2**31
        self.current = np.zeros_like(self.hist)
        self.used = 1
        self.free: list[int] = []

    def new_row(self) -> int:
        if self.free:
            row = self.free.pop()
        else:
            if self.used == len(self.counts):  # amortised O(1): the arrays double
                self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
                self.hist = np.concatenate([self.hist, np.zeros_like(self.hist)])
                self.current = np.concatenate([self.current, np.zeros_like(self.current)])
            row, self.used = self.used, self.used + 1
        self.counts[row] = 0
        self.hist[row] = 0
        self.current[row] = 0
        return row

    def count(self, row: int, what: str) -> None:
        col = _COUNTS[what]
        self.counts[row, col] += 1
        self.counts[0, col] += 1

    def record(self, st: _Stream, total: _Stream, buckets: tuple[int, int, int]) -> None:
        """Count one scored pair (its three bucket indices) in its stream's row and the total;
        O(1), plus O(buckets) once per ``window`` pairs when a generation turns over."""
        for s in (st, total):
            if s.in_current >= self.window:  # the current generation becomes the previous one
                self.hist[s.row] = self.current[s.row]
                self.current[s.row] = 0
                s.in_current = 0
            self.hist[s.row, _WHAT, buckets] += 1
            self.current[s.row, _WHAT, buckets] += 1
            s.in_current += 1


def _stats_of(counts: list[int], pending: int, pct: list[float]) -> StreamStats:
    """``pct``: 9 values in ms (latency, queue, compute x p50, p95, p99), NaN when nothing was scored."""
    return StreamStats(*counts, pending, *(None if v != v else v for v in pct))


def _frame(name: str, x: Any, data_range: float = DATA_RANGE_8BIT) -> torch.Tensor:
    """One frame (``H x W x 3`` array or ``[1,] 3 x H x W`` tensor) -> ``[3, H, W]`` view, validated
    (float pixels against ``data_range``, returned unscaled)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # e.g. np.frombuffer of a request body; torch cannot wrap read-only memory
    t = _as_nchw(name, x, data_range=data_range, scale=False)
    if t.shape[0] != 1:
        raise InputError(f"{name}: submit takes one frame (H x W x 3 or 3 x H x W), got a batch of "
                         f"{t.shape[0]}; submit the frames one at a time")
    return t[0]


class Scored(NamedTuple):
    """A prediction with its interval (``StreamScorer(..., interval=True)``): ``q`` the predicted
    Q, ``low <= q <= high`` its calibrated 90 % interval, all in Q (1 = untouched, higher =
    worse). Act on a threshold T when ``low > T`` (surely above) or ``high < T`` (surely below)."""

    q: float
    low: float
    high: float


def _interval_fn(scorer: Any, wanted: bool) -> Callable[[np.ndarray], Any] | None:
    """The scorer's ``interval(q)`` when ``wanted`` (checked: a no-reference scorer that has one)."""
    if not isinstance(wanted, (bool, np.bool_)):
        raise InputError(f"interval must be True or False, got {wanted!r}")
    if not wanted:
        return None
    fn = getattr(scorer, "interval", None)
    if not callable(fn):
        raise InputError(f"interval=True needs a scorer with interval(q) -> (low, high), e.g. "
                         f"create_metric('dctqa_nr'); a {type(scorer).__name__} has none")
    low, high = fn(np.ones(1))
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise InputError("interval=True: this model has no calibrated interval (train-nr calibrates one; "
                         "calibrate-nr --from-folds for a model trained on every video)")
    return fn


class StreamScorer:
    """Score frame pairs of many streams with one scorer, in micro-batches, from any thread.

    Args:
        scorer: a :class:`dctqa.Metric` or any object of the protocol in the module docstring.
        max_batch: most pairs per scorer call (>= 1).
        max_wait_ms: longest time the oldest waiting pair waits for its batch to fill.
        max_queue: most pairs waiting (not yet taken by the worker), >= ``max_batch``; memory
            is bounded by it (the scorer keeps a reference to submitted frames, unchanged:
            do not modify them in place before their future is done).
        when_full: ``"block"``: ``submit`` waits for room (``timeout`` seconds, then raises
            :class:`QueueFullError`); ``"drop_oldest"``: the oldest waiting pair of any stream
            fails with :class:`DroppedError` (counted per stream) and the new one is queued.
        device: where frames are batched; default the scorer's ``device`` attribute, else CPU.
        reference: whether the scorer needs the reference frame (default: yes for ``score``
            and callables, no for ``predict``).
        latency_window: scored pairs per stream (and in total) that the percentiles of
            :meth:`stats` cover (between one and two windows: see :class:`StreamStats`).
        interval: futures resolve to a :class:`Scored` (``q``, ``low``, ``high``: the
            prediction and its calibrated 90 % interval) instead of a float; needs a scorer with
            ``interval(q) -> (low, high)`` (the no-reference models of ``create_metric("dctqa_nr")``)
            whose interval is calibrated (finite), checked on every batch.

    Futures resolve to a ``float`` (the pair's score, ``Q`` for a Metric), per stream in
    submission order (with ``interval=True`` a :class:`Scored`). Done-callbacks run on the worker thread (or the thread that dropped
    or failed the pair): keep them short and do not block in them. Use as a context manager,
    or call :meth:`close`. :meth:`healthy` tells a liveness probe whether it can make progress.
    """

    def __init__(self, scorer: Any, *, max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 64,
                 when_full: str = "block", device: str | torch.device | None = None,
                 reference: bool | None = None, latency_window: int = 4096, interval: bool = False) -> None:
        if not isinstance(when_full, str) or when_full not in WHEN_FULL:
            raise InputError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        if not is_int(max_batch) or max_batch < 1:
            raise InputError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if not is_int(max_queue) or max_queue < max_batch:
            raise InputError(f"max_queue must be an integer >= max_batch ({max_batch}), got {max_queue!r}")
        if not is_real(max_wait_ms) or max_wait_ms < 0:
            raise InputError(f"max_wait_ms must be a finite number of milliseconds >= 0, got {max_wait_ms!r}")
        if not is_int(latency_window) or not 1 <= latency_window <= MAX_WINDOW:
            raise InputError(f"latency_window must be an integer from 1 to {MAX_WINDOW} (scored pairs the "
                             f"percentiles cover), got {latency_window!r}")
        if reference is not None and not isinstance(reference, (bool, np.bool_)):
            raise InputError(f"reference must be True, False or None (decided by the scorer), got {reference!r}")
        from .metric import check_device

        device = check_device(device if device is not None else getattr(scorer, "device", "cpu"))
        self._fn, self.reference = as_batch_fn(scorer, reference)
        self._interval = _interval_fn(scorer, interval)
        self.scorer = scorer
        self.device = device
        dr = getattr(scorer, "data_range", DATA_RANGE_8BIT)  # float frames are checked against the scorer's
        self._data_range = float(dr) if is_real(dr) and dr > 0 else DATA_RANGE_8BIT
        self.max_batch, self.max_queue, self.when_full = max_batch, max_queue, when_full
        self.max_wait = max_wait_ms / 1000.0
        self._window = int(latency_window)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._resolve_lock = threading.RLock()
        self._queue: collections.deque[_Item] = collections.deque()
        self._keys: collections.Counter = collections.Counter()
        self._ready: collections.deque = collections.deque()
        self._streams: dict[Hashable, _Stream] = {}
        self._table = _Table(self._window)
        self._total = _Stream(self._window, row=0)
        self._batch_sizes: collections.Counter = collections.Counter()
        self._retried = 0
        self._closed = self._abandoned = False
        self._busy_since: float | None = None  # start of the scorer call running now (worker-written)
        self._last_progress = time.perf_counter()  # the worker last took or finished a batch
        self._thread = threading.Thread(target=self._worker, name="dctqa-StreamScorer", daemon=True)
        self._thread.start()
        _log.info("StreamScorer started: %s on %s, max_batch %d, max_wait_ms %g, max_queue %d, when_full %s",
                  type(scorer).__name__, device, max_batch, max_wait_ms, max_queue, when_full)

    # ------------------------------------------------------------------ submitting
    def submit(self, stream_id: Hashable, ref: Any, dist: Any, timeout: float | None = None) -> cf.Future:
        """Queue one frame pair of ``stream_id``; returns a future of its score (``float``).

        ref: the *reference* (original) frame, dist: the *distorted* (compressed) frame, in
        that order (swapped, Q is meaningless). ``H x W x 3`` uint8 (or float in
        ``0..data_range`` of the scorer, 0..255 by default) RGB arrays, or ``[1,] 3 x H x W`` tensors (CPU or CUDA), same size; ``ref=None`` for a
        no-reference scorer.
        A malformed pair does not raise here: its future fails with :class:`InputError`.
        timeout: seconds to wait for room with ``when_full="block"`` (``None``: no limit).
        Raises :class:`ScorerClosedError` after :meth:`close`, :class:`QueueFullError` when
        the queue stayed full for ``timeout`` seconds.
        """
        t0 = time.perf_counter()
        try:
            hash(stream_id)
        except TypeError:
            raise InputError(f"stream_id must be hashable (a str or int, say), got {type(stream_id).__name__}") from None
        try:
            ref_t, dist_t, key, error = *self._validate(ref, dist), None
        except DctqaError as exc:
            ref_t = dist_t = None
            key, error = None, exc
        fut: cf.Future = cf.Future()
        with self._lock:
            if self._closed:
                raise ScorerClosedError("StreamScorer is closed; no more pairs are accepted")
            dropped = None if error is not None else self._make_room(timeout)
            st = self._stream(stream_id)
            item = _Item(stream_id, st.next_seq, ref_t, dist_t, key, fut, t0)
            st.next_seq += 1
            st.unresolved[item.seq] = item
            self._count(st, "submitted")
            if error is None:
                self._queue.append(item)
                self._keys[key] += 1
                self._not_empty.notify()
        if dropped is not None:
            self._record([(dropped, "dropped", DroppedError(
                f"stream {dropped.stream!r} pair #{dropped.seq} dropped: the queue was full "
                f"({self.max_queue} pairs) and when_full='drop_oldest'"))])
            n = int(self._table.counts[0, _COUNTS["dropped"]])
            if _power_of_ten(n):
                _log.warning("StreamScorer: %d pair(s) dropped so far (queue full at %d pairs, when_full="
                             "'drop_oldest'); the scorer is behind the submitted load", n, self.max_queue)
        if error is not None:
            self._record([(item, "failed", error)])
        return fut

    async def asubmit(self, stream_id: Hashable, ref: Any, dist: Any, timeout: float | None = None) -> float | Scored:
        """``await`` form of :meth:`submit` for asyncio code: returns the score. ref = the
        *reference* (original) frame, dist = the *distorted* (compressed) frame, in that order.

        When the queue is full (``when_full="block"``) the wait happens in a helper thread,
        never on the event loop. Cancelling the awaiting task cancels the pair if it has not
        been taken into a batch yet.
        """
        try:
            fut = self.submit(stream_id, ref, dist, timeout=0)
        except QueueFullError:
            if timeout == 0:
                raise
            fut = await asyncio.to_thread(self.submit, stream_id, ref, dist, timeout)
        return await asyncio.wrap_future(fut)

    def _validate(self, ref: Any, dist: Any) -> tuple[torch.Tensor | None, torch.Tensor, tuple]:
        d = _frame("distorted", dist, self._data_range)
        if not self.reference:
            if ref is not None:
                raise InputError("this scorer is no-reference: submit(stream_id, None, frame)")
            return None, d, (tuple(d.shape), d.dtype, d.device, None)
        if ref is None:
            raise InputError("reference frame is None; this scorer needs the reference (original) frame")
        r = _frame("reference", ref, self._data_range)
        if r.shape != d.shape:
            raise InputError(f"reference frame is {tuple(r.shape)} (3, H, W) but distorted is {tuple(d.shape)}; "
                             f"sizes must match")
        if r.device != d.device:
            raise InputError(f"reference frame is on {r.device} but distorted is on {d.device}")
        return r, d, (tuple(d.shape), d.dtype, d.device, r.dtype)

    def _release_keys(self, key: Any, n: int) -> None:
        """With the lock held: ``n`` queued pairs of ``key`` left the queue; a key with none
        left is removed, so frame sizes seen once hold no memory."""
        left = self._keys[key] - n
        if left > 0:
            self._keys[key] = left
        else:
            self._keys.pop(key, None)

    def _make_room(self, timeout: float | None) -> _Item | None:
        """Called with the lock held: wait (block) or evict (drop_oldest); returns the evicted item."""
        if len(self._queue) < self.max_queue:
            return None
        if self.when_full == "drop_oldest":
            old = self._queue.popleft()
            self._release_keys(old.key, 1)
            return old
        if threading.current_thread() is self._thread:
            raise QueueFullError("queue full: a done-callback on the scorer's thread cannot wait for room "
                                 "(it would wait for itself); submit from another thread")
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._queue) >= self.max_queue and not self._closed:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise QueueFullError(f"queue full ({self.max_queue} pairs) for {timeout} s; the scorer is "
                                     f"behind the submitted load")
            self._not_full.wait(left)
        if self._closed:
            raise ScorerClosedError("StreamScorer was closed while waiting for room in its queue")
        return None

    def _stream(self, stream_id: Hashable) -> _Stream:
        st = self._streams.get(stream_id)
        if st is None:
            st = self._streams[stream_id] = _Stream(self._window, row=self._table.new_row())
        return st

    def _count(self, st: _Stream, what: str) -> None:
        self._table.count(st.row, what)

    # ------------------------------------------------------------------ the worker
    def _worker(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._drain_ready()  # pairs due after cancelled ones were skipped
                if batch:
                    self._record(self._run(batch))
        except BaseException as exc:  # a bug here must not leave futures waiting forever
            _log.error("StreamScorer: the worker thread failed; failing every unresolved pair", exc_info=True)
            self._fail_unresolved(f"the scorer's worker thread failed ({type(exc).__name__}: {exc})")
            raise

    def _next_batch(self) -> list[_Item] | None:
        """Wait for a batch to be due; ``None`` when closed and drained (or abandoned)."""
        with self._lock:
            while True:
                if self._abandoned or (self._closed and not self._queue):
                    return None
                if not self._queue:
                    self._not_empty.wait()
                    continue
                first = self._queue[0]
                wait = first.t_submit + self.max_wait - time.perf_counter()
                if self._keys[first.key] >= self.max_batch or wait <= 0 or self._closed:
                    return self._take(first.key)
                self._not_empty.wait(wait)

    def _take(self, key: tuple) -> list[_Item]:
        """With the lock held: remove up to ``max_batch`` oldest pairs of ``key`` from the queue."""
        batch, rest, cancelled = [], collections.deque(), []
        for it in self._queue:
            if it.key == key and len(batch) < self.max_batch:
                (batch if it.future.set_running_or_notify_cancel() else cancelled).append(it)
            else:
                rest.append(it)
        self._queue = rest
        now = self._last_progress = time.perf_counter()
        for it in batch:
            it.t_start = now
        self._release_keys(key, len(batch) + len(cancelled))
        self._not_full.notify_all()
        if cancelled:
            self._ready_outcomes([(it, "cancelled", None) for it in cancelled])
        return batch

    def _run(self, batch: list[_Item]) -> list[tuple[_Item, str, Any]]:
        """Score a batch; if it fails, score its pairs one by one so a bad pair fails alone."""
        self._busy_since = time.perf_counter()
        try:
            return self._run_batch(batch)
        finally:
            self._busy_since = None
            self._last_progress = time.perf_counter()

    def _run_batch(self, batch: list[_Item]) -> list[tuple[_Item, str, Any]]:
        try:
            values = self._call(batch)
            end = time.perf_counter()
            for it in batch:
                it.t_end = end
            return [(it, "pairs", v) for it, v in zip(batch, values)]
        except Exception as exc:  # noqa: BLE001 - every failure goes to a future
            if len(batch) == 1:
                return [(batch[0], "failed", self._wrap(exc, batch[0]))]
            error = exc
        with self._lock:
            self._retried += 1
            retried = self._retried
        if _power_of_ten(retried):
            _log.warning("StreamScorer: %d batch(es) failed and were retried pair by pair so far (last: %s: %s)",
                         retried, type(error).__name__, error)
        out = []
        for it in batch:
            try:
                out.append((it, "pairs", self._call([it])[0]))
                it.t_end = self._last_progress = time.perf_counter()
            except Exception as exc:  # noqa: BLE001
                out.append((it, "failed", self._wrap(exc, it)))
        return out

    def _call(self, batch: list[_Item]) -> list[float]:
        with self._lock:
            self._batch_sizes[len(batch)] += 1
        pin = self.device.type == "cuda"
        dist = stage([it.dist for it in batch], self.device, pin)
        ref = stage([it.ref for it in batch], self.device, pin) if self.reference else None
        out = self._fn(ref, dist)
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu()
        q = np.asarray(out, dtype=np.float64)
        if q.shape != (len(batch),):
            raise ScoringError(f"the scorer returned shape {q.shape} for a batch of {len(batch)} pairs; "
                               f"expected ({len(batch)},)")
        if not np.isfinite(q).all():
            raise ScoringError("the scorer returned a non-finite score")
        if self._interval is None:
            return [float(v) for v in q]
        low, high = (np.asarray(a, dtype=np.float64).reshape(q.shape) for a in self._interval(q))
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ScoringError("the scorer's interval is not finite (an uncalibrated model?)")
        return [Scored(float(a), float(b), float(c)) for a, b, c in zip(q, low, high)]

    @staticmethod
    def _wrap(exc: Exception, it: _Item) -> DctqaError:
        if isinstance(exc, DctqaError):
            return exc
        err = ScoringError(f"stream {it.stream!r} pair #{it.seq}: the scorer raised "
                           f"{type(exc).__name__}: {exc}")
        err.__cause__ = exc
        return err

    # ------------------------------------------------------------------ resolving in order
    def _record(self, outcomes: list[tuple[_Item, str, Any]]) -> None:
        """Record outcomes (kind: pairs / failed / dropped / cancelled) and resolve what is due."""
        with self._lock:
            self._ready_outcomes(outcomes)
        self._drain_ready()

    def _ready_outcomes(self, outcomes: list[tuple[_Item, str, Any]]) -> None:
        """With the lock held: count outcomes, then move each stream's due futures to ``_ready`` in order."""
        now = time.perf_counter()
        touched = {}
        for it, kind, value in outcomes:
            if it.done:  # already failed by a forced close
                continue
            it.done = True
            st = self._streams[it.stream]
            self._count(st, kind)
            if kind == "pairs":
                start = it.t_start or now
                b = (_bucket(now - it.t_submit), _bucket(start - it.t_submit), _bucket((it.t_end or now) - start))
                self._table.record(st, self._total, b)
            st.outcomes[it.seq] = (it, kind, value)
            touched[it.stream] = st
        for st in touched.values():
            while st.next_out in st.outcomes:
                it, kind, value = st.outcomes.pop(st.next_out)
                del st.unresolved[st.next_out]
                st.next_out += 1
                it.ref = it.dist = None  # release the frames
                if kind != "cancelled":
                    self._ready.append((it.future, kind, value))

    def _drain_ready(self) -> None:
        """Set results of ``_ready`` in order, in whichever thread holds the resolve lock.

        A thread that finds the lock taken leaves its entries to the holder, which checks
        again after releasing it, so no entry is stranded and none is set out of order.
        """
        while True:
            if not self._resolve_lock.acquire(blocking=False):
                return
            try:
                while True:
                    with self._lock:
                        if not self._ready:
                            break
                        fut, kind, value = self._ready.popleft()
                    try:
                        if kind == "pairs":
                            fut.set_result(value)
                        else:
                            fut.set_exception(value)
                    except cf.InvalidStateError:  # cancelled by the caller meanwhile
                        pass
            finally:
                self._resolve_lock.release()
            with self._lock:
                if not self._ready:
                    return

    # ------------------------------------------------------------------ counters, shutdown
    def stats(self) -> ServeStats:
        """Counters and percentiles now (safe from any thread at any time).

        Under the submit lock it copies only fixed-size histograms (``3 x 194`` counts per
        stream, one array copy for all streams) and the counters; the percentiles are computed
        afterwards, for every stream at once. Resolution: see :class:`StreamStats`.
        """
        with self._lock:
            ids = list(self._streams)
            rows = [st.row for st in self._streams.values()]
            pending = [len(st.unresolved) for st in self._streams.values()]
            t = self._table
            counts, hist = t.counts[:t.used].copy(), t.hist[:t.used].copy()
            sizes, retried, queued = dict(self._batch_sizes), self._retried, len(self._queue)
        counts = counts.tolist()
        pct = _hist_percentiles(hist).reshape(len(counts), 9).tolist()  # rows x (what x p)
        streams = {sid: _stats_of(counts[r], n, pct[r]) for sid, r, n in zip(ids, rows, pending)}
        total = _stats_of(counts[0], sum(pending), pct[0])
        return ServeStats(total=total, streams=streams, batches=sum(sizes.values()), batch_sizes=sizes,
                          retried=retried, queued=queued)

    def healthy(self, stall_s: float = 30.0) -> bool:
        """Whether this scorer can make progress now: ``False`` when it is closed, when its worker
        thread is not alive, or when it is stuck, that is: work has been waiting (a pair in the
        queue, or a scorer call running) for more than ``stall_s`` seconds during which the
        worker made no progress (took no batch and finished no scorer call). Choose ``stall_s``
        above ``max_wait_ms`` and the slowest batch. Cheap (no copy); safe from any thread.
        """
        if not is_real(stall_s) or stall_s <= 0:
            raise InputError(f"stall_s must be a finite number of seconds > 0, got {stall_s!r}")
        if self._closed or not self._thread.is_alive():
            return False
        now = time.perf_counter()
        with self._lock:
            waiting = [t for t in (self._queue[0].t_submit if self._queue else None, self._busy_since)
                       if t is not None]
            last = self._last_progress
        if not waiting:
            return True
        return now - max(min(waiting), last) <= stall_s

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, cancel_pending: bool = False, timeout: float | None = None) -> None:
        """Stop accepting pairs and stop the worker; idempotent.

        cancel_pending: ``False`` scores every queued pair first; ``True`` fails the queued
        (not yet running) pairs at once with :class:`ScorerClosedError`.
        timeout: seconds to wait for the worker. If it is still busy after that (a scorer
        stuck in one call), every unresolved future fails with :class:`ScorerClosedError`,
        the worker is abandoned (it exits after its current call) and ``close`` returns.
        Blocked ``submit`` calls raise :class:`ScorerClosedError`.
        """
        with self._lock:
            was_closed, self._closed = self._closed, True
            queued = list(self._queue) if cancel_pending else []
            if cancel_pending:
                self._queue.clear()
                self._keys.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if queued:
            self._record([(it, "failed", ScorerClosedError(
                f"stream {it.stream!r} pair #{it.seq}: the scorer was closed before it was scored"))
                for it in queued])
        if not was_closed:
            _log.info("StreamScorer closing (cancel_pending=%s): %d queued pair(s) cancelled", cancel_pending,
                      len(queued))
        if threading.current_thread() is self._thread:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.warning("StreamScorer: the worker did not finish within %s s of close(); its unresolved pairs "
                         "fail and the worker is abandoned", timeout)
            self._fail_unresolved(f"the scorer was closed and its worker did not finish within {timeout} s")

    def _fail_unresolved(self, why: str) -> None:
        """Stop the worker after its current call and fail every unresolved future (closed)."""
        with self._lock:
            self._closed = self._abandoned = True
            self._queue.clear()
            self._keys.clear()
            items = [it for st in self._streams.values() for it in st.unresolved.values() if not it.done]
            self._not_empty.notify_all()
            self._not_full.notify_all()
        self._record([(it, "failed", ScorerClosedError(f"stream {it.stream!r} pair #{it.seq}: {why}"))
                      for it in items])

    def forget(self, stream_id: Hashable) -> None:
        """Drop the counters of a finished stream (totals keep its figures), so that a server
        whose streams come and go holds no memory for old ones. Raises :class:`InputError`
        while the stream has unresolved pairs; unknown streams are ignored."""
        with self._lock:
            st = self._streams.get(stream_id)
            if st is not None and st.unresolved:
                raise InputError(f"stream {stream_id!r} still has {len(st.unresolved)} unresolved pairs")
            st = self._streams.pop(stream_id, None)
            if st is not None:
                self._table.free.append(st.row)

    def __enter__(self) -> "StreamScorer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"StreamScorer({self.scorer!r}, max_batch={self.max_batch}, max_wait_ms={self.max_wait * 1000:g}, "
                f"max_queue={self.max_queue}, when_full={self.when_full!r}, closed={self._closed})")
