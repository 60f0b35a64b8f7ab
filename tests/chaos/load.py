"""Bounded under load: produce at about twice what the worker folds; lag grows, then drains.

The worker's fold rate is measured first on a backlog produced before it starts; then live events
are produced at ``overload`` times that rate for a while, sampling the lag (log end minus fences),
the worker's RSS and Redis's used_memory twice a second. Memory must follow the state, not the
backlog: the backlog waits in Kafka, never in the worker.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stream import jsonutil
from stream.generator import live_events
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.chaos.harness import redis_used_mib, rss_mib
from tests.support import EndOffsets, WorkerProcess, eventually, free_port, isolated, produce_raw


@dataclass
class Sample:
    """One look at the pipeline under load."""

    at: float
    lag: int
    rss_mib: float
    redis_mib: float


@dataclass
class LoadFigures:
    """What the overload run measured."""

    fold_rate: float = 0.0
    target_rate: float = 0.0
    produce_rate: float = 0.0
    seconds: float = 0.0
    produced: int = 0
    counted: int = 0
    drain_seconds: float | None = None
    before: Sample | None = None
    after: Sample | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def peak_lag(self) -> Sample:
        """The sample with the largest lag."""
        return max(self.samples, key=lambda s: s.lag)

    @property
    def peak_rss(self) -> float:
        """The largest worker RSS seen, MiB."""
        return max(s.rss_mib for s in self.samples)

    @property
    def peak_redis(self) -> float:
        """The largest Redis used_memory seen, MiB."""
        return max(s.redis_mib for s in self.samples)

    def lines(self) -> list[str]:
        """The report, one figure a line."""
        before, after = self.before, self.after
        assert before is not None
        target = f"{self.target_rate:,.0f}/s" if self.target_rate else "as fast as it can"
        drained = "-" if self.drain_seconds is None else f"{self.drain_seconds:.1f}s"
        return [
            f"worker fold rate        {self.fold_rate:10,.0f} events/s (backlog, measured)",
            f"produced                {self.produce_rate:10,.0f} events/s for {self.seconds:.0f}s"
            f" ({self.produce_rate / max(self.fold_rate, 1):.2f}x the fold rate; "
            f"target {target})",
            f"lag                     before {before.lag:,}, peak {self.peak_lag.lag:,} "
            f"(at {self.peak_lag.at:.0f}s), after {after.lag if after else '-'}; "
            f"drained {drained} after the load stopped",
            f"worker RSS MiB          before {before.rss_mib:.0f}, peak {self.peak_rss:.0f}, "
            f"after {after.rss_mib if after else 0:.0f}",
            f"Redis used_memory MiB   before {before.redis_mib:.1f}, peak {self.peak_redis:.1f}, "
            f"after {after.redis_mib if after else 0:.1f}",
            f"events counted          {self.counted:,} of {self.produced:,} produced",
        ]


async def bounded_under_load(
    base: Settings,
    log_dir: Path,
    seconds: float,
    backlog: int = 60_000,
    users: int = 20_000,
    overload: float | None = 2.0,
) -> LoadFigures:
    """Calibrate on ``backlog`` events, then produce ``seconds`` x 2 x the fold rate events, at
    ``overload`` x the fold rate (None: as fast as the producer can), the worker held for the
    burst's first ``HOLD_S`` seconds."""
    settings = isolated(base, "load", user_buckets=max(1, users // 64))
    await ensure_topics(settings)
    figures = LoadFigures()
    store = RedisStore.from_settings(settings)
    worker = WorkerProcess(settings.model_copy(update={"web_port": free_port()}), log_dir)
    events = _records(users)
    try:
        await produce_raw(settings, (next(events) for _ in range(backlog)))
        await worker.started()
        figures.fold_rate = await _fold_rate(store, settings, backlog, worker)
        figures.produced = backlog
        async with EndOffsets(settings, TopicNames.from_settings(settings).activity) as ends:
            sampler = _Sampler(store, settings, worker, ends)
            figures.before = await sampler.sample(0.0)
            count = int(2 * figures.fold_rate * seconds)
            rate = overload * figures.fold_rate if overload else None
            figures.target_rate = rate or 0.0
            started = time.monotonic()
            sampling = asyncio.create_task(sampler.run(started, figures.samples))
            # The worker now folds about as fast as one producer process sends (even with small
            # fetches), so it is held (SIGSTOP, well inside the session timeout) for the burst's
            # first seconds: the backlog builds whatever the two paces, and must then drain.
            held = asyncio.create_task(_hold(worker, HOLD_S))
            try:
                await produce_raw(settings, (next(events) for _ in range(count)), rate=rate)
                await held
                load_ended = time.monotonic()
                figures.seconds = load_ended - started
                figures.produced += count
                figures.produce_rate = count / figures.seconds

                async def drained() -> bool:
                    return (await sampler.sample(0.0)).lag == 0

                await eventually(drained, 30 + 2 * seconds, "the lag drained", worker.check_alive)
                figures.drain_seconds = time.monotonic() - load_ended
            finally:
                sampling.cancel()
            figures.after = await sampler.sample(time.monotonic() - started)
        totals = await store.totals()
        figures.counted = sum(totals.values())
    finally:
        await asyncio.to_thread(worker.stop)
        async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
            await store.client.delete(key)
        await store.close()
    return figures


#: Seconds the worker is stopped at the start of the burst (its session timeout is 10 s).
HOLD_S = 4.0


async def _hold(worker: WorkerProcess, seconds: float) -> None:
    """SIGSTOP the worker for ``seconds``, then SIGCONT it (also when cancelled)."""
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        worker.proc.send_signal(signal.SIGCONT)


#: Distinct live events made up front and sent round and round: making each one on the fly
#: costs the producer more CPU than sending it, on the cores the worker needs.
_POOL = 100_000


def _records(users: int) -> Iterator[tuple[bytes | None, bytes]]:
    pool = [
        (event["actor"].encode(), jsonutil.dumps(event))
        for event, _ in zip(live_events(users, seed=9), range(_POOL), strict=False)
    ]
    while True:
        yield from pool


async def _fold_rate(
    store: RedisStore, settings: Settings, total: int, worker: WorkerProcess
) -> float:
    """Events a second the worker folds, from its first applied batch to the backlog's end."""
    topic = TopicNames.from_settings(settings).activity
    partitions = list(range(settings.activity_partitions))
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        worker.check_alive()
        applied = sum(f + 1 for f in (await store.load_fences(topic, partitions)).values())
        now = time.monotonic()
        if first is None and applied > 0:
            first = (now, applied)
        if applied >= total and first is not None:
            return (applied - first[1]) / max(now - first[0], 1e-3)
        await asyncio.sleep(0.02)
    raise AssertionError("the worker did not fold the calibration backlog in 300 s")


class _Sampler:
    def __init__(
        self, store: RedisStore, settings: Settings, worker: WorkerProcess, ends: EndOffsets
    ) -> None:
        self.store, self.worker, self.ends = store, worker, ends
        self.topic = TopicNames.from_settings(settings).activity

    async def sample(self, at: float) -> Sample:
        end = await self.ends.get()
        fences = await self.store.load_fences(self.topic, sorted(end))
        lag = sum(max(0, e - fences[p] - 1) for p, e in end.items())
        assert self.worker.proc is not None
        return Sample(at, lag, rss_mib(self.worker.proc.pid), await redis_used_mib(self.store))

    async def run(self, started: float, into: list[Sample]) -> None:
        while True:
            into.append(await self.sample(time.monotonic() - started))
            await asyncio.sleep(0.5)
