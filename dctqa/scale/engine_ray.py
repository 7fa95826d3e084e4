"""The Ray engine (``--engine ray``): Ray Core actors, each holding one :class:`SegmentScorer`
(one Metric: model and spectra cache loaded once per actor), fed segments by the driver.

Without ``address`` (or ``RAY_ADDRESS``) an embedded local instance is started and shut down
again at the end: token authentication on, no dashboard, bound to 127.0.0.1. With an address
the driver joins that cluster and only disconnects at the end.

Faults: an actor whose process dies is restarted by Ray and its calls retried
(``max_restarts``, ``max_task_retries``); a call that still fails (its node is gone for good)
is sent again to another actor, up to :data:`RESUBMITS` times, before its pair is recorded as
failed. Results are idempotent per segment, so a retried segment never duplicates rows.
"""
from __future__ import annotations

import os
import warnings
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from ..errors import ConfigError, InputError, ResourceError
from .collect import Collector
from .manifest import Pair
from .worker import ScoreOptions

#: Times a work unit is sent again after Ray's own retries gave up on it.
RESUBMITS = 3
#: Restarts of one actor, and retries of a call on a restarted actor, Ray does by itself.
ACTOR_RESTARTS = 4
#: Calls queued per actor, so an actor never waits for the driver.
IN_FLIGHT = 2


def import_ray():
    """The ``ray`` module, or :class:`~dctqa.errors.ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install dctqa[ray] (or use --engine local)") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None) -> Iterator:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local instance (127.0.0.1, token
    authentication, no dashboard; ``num_cpus`` / ``num_gpus`` of this machine); shut down what
    was started on exit. A Ray already initialised in this process is used as it is."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = {"log_to_driver": False, "configure_logging": False, "namespace": "dctqa"}
    if address:
        ray.init(address=address, **common)
    else:
        mode = os.environ.get("RAY_AUTH_MODE")
        if mode is not None and mode.lower() != "token":
            raise ConfigError(f"RAY_AUTH_MODE={mode!r}: dctqa keeps Ray's token authentication on for the "
                              f"instance it starts; unset RAY_AUTH_MODE (or set it to token)")
        # unset, Ray turns token authentication on for a new local instance (and makes the token)
        _init_loopback(ray, num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **common)
    try:
        yield ray
    finally:
        ray.shutdown()


def _init_loopback(ray, **options) -> None:
    """``ray.init`` of a one-machine instance whose processes listen on 127.0.0.1 only.

    On Linux Ray turns a loopback ``_node_ip_address`` into the machine's routable address
    (a cluster is assumed); its one-machine mode (``ENABLE_RAY_CLUSTER`` off, what it uses on
    macOS and Windows) keeps 127.0.0.1. That switch is read when the instance starts, so it is
    turned off for this call only."""
    from ray._private import ray_constants

    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(_node_ip_address="127.0.0.1", **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


class _ScorerActor:
    """A Ray actor around :class:`SegmentScorer` (made remote in :func:`_actor_class`)."""

    def __init__(self, options: ScoreOptions) -> None:
        from ..errors import DctqaError

        self.scorer, self.error = None, None
        try:
            self.scorer = options.make()
        except DctqaError as exc:  # a bad option: said once by describe(), not as a dead actor
            self.error = (type(exc).__name__, str(exc))

    def describe(self) -> dict:
        return {"error": self.error} if self.error else self.scorer.describe()

    def plan(self, key: str, ref: str, dist: str):
        return self.scorer.plan(key, ref, dist)

    def score(self, key: str, ref: str, dist: str, indexes: tuple, start: int, stop: int):
        return self.scorer.score(key, ref, dist, indexes[0], indexes[1], start, stop)

    def pid(self) -> int:
        return os.getpid()


def actor_resources(options: ScoreOptions, gpus_per_actor: float | None) -> dict:
    """Ray options of one actor: ``num_cpus`` = its threads (default 1), ``num_gpus`` on CUDA."""
    cpus = float(options.threads or 1)
    gpus = 0.0
    if options.device.startswith("cuda"):
        gpus = 1.0 if gpus_per_actor is None else float(gpus_per_actor)
    elif gpus_per_actor:
        raise InputError("--gpus-per-actor needs --device cuda")
    if not 0 <= gpus <= 64:
        raise InputError(f"gpus per actor must be in 0..64 (fractions share a GPU), got {gpus_per_actor!r}")
    return {"num_cpus": cpus, "num_gpus": gpus}


def make_actors(ray, options: ScoreOptions, count: int | None, gpus_per_actor: float | None) -> list:
    """``count`` scorer actors (default: as many as the cluster's CPUs (or GPUs) allow)."""
    res = actor_resources(options, gpus_per_actor)
    total = ray.cluster_resources()
    by_cpu = int(total.get("CPU", 0) // res["num_cpus"])
    by_gpu = int(total.get("GPU", 0) // res["num_gpus"]) if res["num_gpus"] else by_cpu
    fits = min(by_cpu, by_gpu)
    if fits < 1:
        raise ResourceError(f"the Ray cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs: "
                            f"not enough for one actor ({res['num_cpus']:g} CPUs, {res['num_gpus']:g} GPUs)")
    if count is not None and count > fits:  # actors that can never start would hold their work forever
        warnings.warn(f"--actors {count}: the cluster has room for {fits}; using {fits}", stacklevel=2)
    count = fits if count is None else min(count, fits)
    cls = ray.remote(_ScorerActor).options(**res, max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS,
                                           scheduling_strategy="SPREAD")
    return [cls.remote(options) for _ in range(count)]


class _Scheduler:
    """Hands plan and score calls to the least-loaded actor and collects them as they finish."""

    def __init__(self, ray, actors: list, pairs: list[Pair], collector: Collector) -> None:
        self.ray, self.actors, self.collector = ray, actors, collector
        self.load = [0] * len(actors)
        self.dead: set[int] = set()  # actors Ray gave up restarting
        self.pending: dict = {}
        self.plans = deque(("plan", p, None, 0) for p in pairs)
        self.segments: deque = deque()

    def _submit(self, unit: tuple) -> None:
        kind, pair, arg, attempts = unit
        live = [i for i in range(len(self.actors)) if i not in self.dead]
        if not live:
            raise ResourceError("every scoring actor died and Ray could not restart them (see the Ray logs)")
        i = min(live, key=self.load.__getitem__)
        a = self.actors[i]
        if kind == "plan":
            ref = a.plan.remote(pair.key, pair.ref_path, pair.dist_path)
        else:
            indexes, start, stop = arg
            ref = a.score.remote(pair.key, pair.ref_path, pair.dist_path, indexes, start, stop)
        self.pending[ref] = (i, unit)
        self.load[i] += 1

    def run(self) -> None:
        while self.plans or self.segments or self.pending:
            while (self.plans or self.segments) and self._room():
                unit = self.segments.popleft() if self.segments else self.plans.popleft()
                if unit[0] == "plan" or self.collector.wanted(unit[1].key):
                    self._submit(unit)
            if not self.pending:
                continue
            done, _ = self.ray.wait(list(self.pending), num_returns=1)
            for ref in done:
                i, unit = self.pending.pop(ref)
                self.load[i] -= 1
                self._finished(i, ref, unit)

    def _room(self) -> bool:
        """A live actor has room for another call (or none is alive: _submit says so)."""
        live = [i for i in range(len(self.actors)) if i not in self.dead]
        return not live or any(self.load[i] < IN_FLIGHT for i in live)

    def _finished(self, i: int, ref, unit: tuple) -> None:
        kind, pair, arg, attempts = unit
        try:
            res = self.ray.get(ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ObjectLostError) as exc:
            if isinstance(exc, self.ray.exceptions.ActorDiedError):
                self.dead.add(i)
            if attempts < RESUBMITS:
                (self.plans if kind == "plan" else self.segments).appendleft((kind, pair, arg, attempts + 1))
            else:
                self.collector.lost(pair.key, f"workers kept failing ({type(exc).__name__})")
            return
        if kind == "plan":
            segs = self.collector.planned(res)
            if segs:
                indexes = self.ray.put((res.ref_index, res.dist_index))
                self.segments.extend(("score", pair, (indexes, a, b), 0) for a, b in segs)
        elif self.collector.wanted(pair.key):
            self.collector.scored_segment(res)


def run_ray(pairs: list[Pair], options: ScoreOptions, collector: Collector, *, address: str | None = None,
            actors: int | None = None, gpus_per_actor: float | None = None, num_cpus: int | None = None) -> None:
    """Score ``pairs`` on Ray actors (see the module docstring), results to ``collector``."""
    actor_resources(options, gpus_per_actor)  # checked before anything starts
    with ray_session(address, num_cpus=num_cpus) as ray:
        pool = make_actors(ray, options, actors, gpus_per_actor)
        try:
            params = ray.get(pool[0].describe.remote())
            if "error" in params:
                from .. import errors

                kind, message = params["error"]
                raise getattr(errors, kind, InputError)(message)
            collector.params = params
            _Scheduler(ray, pool, pairs, collector).run()
        finally:
            for a in pool:
                ray.kill(a)


def _call_with_init(initializer, initargs: tuple, fn, args: tuple, kwargs: dict):
    if initializer is not None:
        initializer(*initargs)
    return fn(*args, **kwargs)


class RayExecutor:
    """A ``concurrent.futures`` executor whose calls run as Ray tasks on the connected cluster
    (``dctqa study --engine ray``: :data:`dctqa.study.run.STAGE_EXECUTOR`).

    ``initializer(*initargs)`` runs before each call, in its worker (a process pool runs it once
    per process; here a worker may serve several calls, so it must be repeatable, as torch's
    thread setting is). ``max_workers`` is not a bound: Ray runs as many as the cluster has
    CPUs for (one per call). A call whose worker dies is retried by Ray (``max_retries``).
    """

    def __init__(self, max_workers: int | None = None, initializer=None, initargs: tuple = ()) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            raise ConfigError("RayExecutor needs a connected Ray (dctqa.scale.engine_ray.ray_session)")
        self._task = ray.remote(_call_with_init).options(num_cpus=1, max_retries=ACTOR_RESTARTS)
        self._init = (initializer, tuple(initargs))

    def submit(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` as a Ray task; a ``concurrent.futures.Future`` of its result."""
        return self._task.remote(self._init[0], self._init[1], fn, args, kwargs).future()

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None


@contextmanager
def stages_on_ray(address: str | None, jobs: int) -> Iterator[int]:
    """The study's stage jobs as Ray tasks for the duration of the block (``study --engine ray``,
    ``ladder --engine ray``): connect to ``address`` (or start a local instance, as
    :func:`ray_session`) and set :data:`dctqa.study.run.STAGE_EXECUTOR` to :class:`RayExecutor`.
    Yields the worker count to use: ``jobs``, or for ``jobs == 1`` as many as the cluster has
    CPUs (2..256; each job's torch threads are then ``cpu_count // jobs``)."""
    from ..study.run import STAGE_EXECUTOR

    with ray_session(address) as ray:
        if jobs == 1:
            jobs = max(2, min(256, int(ray.cluster_resources().get("CPU", 2))))
        token = STAGE_EXECUTOR.set(RayExecutor)
        try:
            yield jobs
        finally:
            STAGE_EXECUTOR.reset(token)

