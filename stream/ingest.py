"""The activity ingest: a batch consumer that folds whole fetches into Redis behind offset fences.

It runs inside the Faust worker as a mode Service, on the worker's event loop. Faust's per-event
stream machinery (a queue hand-off, an Event object and an ack per record, and a consumer thread
that every fetch crosses) caps a plain agent at a few thousand events a second on this class of
machine; here a fetch of up to ``batch_max_records`` records is decoded, folded and applied in one
pipelined Redis round trip. Redis, not Kafka, holds the authoritative position: each partition's
fence is written atomically with its state, so a crash, a replay or a zombie owner after a
rebalance can neither lose nor double-count an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from stream.batch import FoldedFetch, Reject, fold_fetch
from stream.clients import new_consumer
from stream.directory_fold import DirectoryFolder
from stream.flags.cycle import FlagCycle
from stream.flags.machine import counting_types_from
from stream.fold import PartitionDelta
from stream.ingest_apply import APPLIES_IN_FLIGHT, handle_in_order, send_fetch
from stream.ingest_rebalance import RefenceOnRebalance
from stream.ingest_tasks import IngestTasks
from stream.logfilter import fold_library_repeats
from stream.metrics import PipelineMetrics
from stream.native import describe as describe_fold
from stream.privacy import pseudonymizer_from
from stream.readiness import Readiness
from stream.retry import StoppedWhileRetrying, until_redis_answers
from stream.settings import Settings
from stream.store import ApplyResult, RedisStore
from stream.timebounds import TimeBounds
from stream.topics import TopicNames

log = logging.getLogger(__name__)

#: Sends one rejected record to the dead-letter topic; resolves when the broker has it.
DeadLetterSink = Callable[[Reject], Awaitable[Any]]

#: The cyclic garbage collector's generation-0 threshold while ingesting. A fetch makes tens of
#: thousands of short-lived containers (records, deltas, argument lists); at Python's default
#: (700) the collector ran every few hundred records and took a fifth of the fold's time
#: (py-spy, docs/design/performance.md). The objects are acyclic and freed by reference counting;
#: a higher threshold only defers the rare cycle. 100,000 rather than 10,000: a fetch's records
#: stay alive while it is folded, so each collection walked all of them (4% of the worker, perf).
_GC_GEN0_THRESHOLD = 100_000

#: Kafka's committed offsets are only a hint (Redis fences are the truth); committing once a
#: second keeps consumer-lag tooling accurate without a broker round trip per fetch.
_COMMIT_INTERVAL_S = 1.0


def new_activity_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The consumer of the activity topic, sized for batch folding."""
    return new_consumer(
        settings,
        group_id=f"{settings.app_id}-activity",
        client_id=f"{settings.app_id}-activity",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
        fetch_max_wait_ms=settings.batch_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )


class ActivityIngest(Service):
    """Consumes esn.activity.v1 and folds it into Redis, exactly once in effect."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        metrics: PipelineMetrics,
        dead_letter: DeadLetterSink,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = TopicNames.from_settings(settings)
        self.store = store
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.consumer = new_activity_consumer(settings)
        self.counting_types = counting_types_from(settings)
        self.pseudonymize = pseudonymizer_from(settings)
        self.flags = FlagCycle(settings, store, metrics)
        self.directory = DirectoryFolder(settings, store)
        self.apply_lock = asyncio.Lock()
        #: partition -> applied offset, as last read from or written to Redis.
        self.fences: dict[int, int] = {}
        #: partition -> the last offset of its latest batch sent and not yet handled.
        self.sent_through: dict[int, int] = {}
        #: Fetches sent to Redis whose replies are not handled yet, oldest first.
        self.in_flight: deque[asyncio.Future[None]] = deque()
        #: partition -> how many times it was sought: fetches from before a seek are stale.
        self.generations: dict[int, int] = {}
        self.joined = asyncio.Event()
        self.redis_ok = False
        self.readiness = Readiness(settings.ready_stall_seconds)
        #: The Redis server's run id when last asked: a new one means a restart or failover.
        self.redis_run_id: str | None = None
        self._last_commit = 0.0
        self._max_event_ms = 0

    def on_init_dependencies(self) -> list[Service]:
        """The periodic work (sweeps, probes, gauges) starts and stops with the ingest."""
        return [IngestTasks(self, loop=self.loop, beacon=self.beacon)]

    async def on_start(self) -> None:
        fold_library_repeats()  # Faust has set up its log handlers by now
        # What start-up made lives as long as the worker: moved out of the collector's sight.
        gc.freeze()
        gc.set_threshold(_GC_GEN0_THRESHOLD, 20, 20)
        log.info("Activity ingest folds with the %s", describe_fold())
        await self.flags.start()
        self.consumer.subscribe([self.topics.activity], listener=RefenceOnRebalance(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        async with self.apply_lock:
            await self.commit_fences()
        await self.consumer.stop()
        await self.flags.stop()

    @Service.task
    async def _consume(self) -> None:
        # While Redis applies one fetch, the next is fetched, decoded, folded and sent: the fold
        # is the worker's CPU and the apply Redis's, so overlapping them raises throughput to the
        # slower of the two. Replies are handled one fetch at a time, in fetch order
        # (stream/ingest_apply.py).
        try:
            while not self.should_stop:
                fetched = await self.consumer.getmany(
                    timeout_ms=self.settings.batch_wait_ms,
                    max_records=self.settings.batch_max_records,
                )
                if fetched:
                    folded, records = self.fold(fetched)
                    while len(self.in_flight) >= APPLIES_IN_FLIGHT:
                        await self.in_flight.popleft()
                    sent = await send_fetch(self, folded, records)
                    if sent is not None:
                        previous = self.in_flight[-1] if self.in_flight else None
                        self.in_flight.append(
                            asyncio.ensure_future(handle_in_order(self, sent, previous))
                        )
                        # A fetch already buffered returns without yielding: let the scripts go
                        # out now rather than after the next fold.
                        await asyncio.sleep(0)
                else:
                    while self.in_flight and self.in_flight[0].done():
                        await self.in_flight.popleft()  # surfaces an error now
                    if not self.in_flight and not self.records_waiting():
                        self.readiness.progressed()  # idle, not stalled
                if time.monotonic() - self._last_commit > _COMMIT_INTERVAL_S:
                    async with self.apply_lock:
                        await self.commit_fences()
        except StoppedWhileRetrying:
            return  # stopping while Redis is away: nothing was committed past the failed apply
        finally:
            await self.settle_applies()

    async def settle_applies(self) -> None:
        """Wait until every fetch sent is handled (a stop or a revocation waits for them)."""
        while self.in_flight:
            task = self.in_flight.popleft()
            with contextlib.suppress(StoppedWhileRetrying):
                await asyncio.shield(task)

    def records_waiting(self) -> int:
        """Records between the owned partitions' fences and their ends, as last fetched."""
        waiting = 0
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            fence = self.fences.get(tp.partition)
            if end is not None and fence is not None:
                waiting += max(0, end - fence - 1)
        return waiting

    def not_ready_reasons(self, redis_answers: bool) -> list[str]:
        """Why this worker should get no traffic now (empty: ready)."""
        self.readiness.assigned = self.joined.is_set()
        return self.readiness.reasons(redis_answers, self.records_waiting())

    def fold(
        self, fetched: dict[TopicPartition, list[Any]]
    ) -> tuple[FoldedFetch, dict[tuple[str, int], list[Any]]]:
        """Decode and fold the records of the partitions this worker owns (no I/O)."""
        owned = self.consumer.assignment()
        by_partition = {
            (tp.topic, tp.partition): records
            for tp, records in fetched.items()
            if records and tp in owned
        }
        folded = fold_fetch(by_partition, self.counting_types, self.pseudonymize, self._bounds())
        folded.generations = {p: self.generations.get(p, 0) for _, p in by_partition}
        return folded, by_partition

    def _bounds(self) -> TimeBounds:
        """The window of believable event times for this fetch (wall clock, either clock mode)."""
        return TimeBounds.at(None, self.settings.min_event_time, self.settings.max_future_skew)

    async def send_rejects(self, rejects: list[Reject]) -> None:
        """Dead-letter before the fence moves past them, so a crash can only repeat, never lose."""
        if not rejects:
            return
        await asyncio.gather(*(self.dead_letter(reject) for reject in rejects))
        for reject in rejects:
            self.metrics.invalid.labels(reject.reason).inc()

    async def apply_with_retry(
        self, deltas: list[PartitionDelta], expected: Mapping[int, int] | None = None
    ) -> list[ApplyResult]:
        """Apply until Redis takes it: never skip a batch, never commit past one.

        ``expected``: partition -> the fence each batch must find (default: the confirmed ones).
        """
        started = time.perf_counter()
        if expected is None:
            fences = self.fences
            expected = {d.partition: fences[d.partition] for d in deltas if d.partition in fences}
        results = await until_redis_answers(
            lambda: self.store.apply(deltas, expected),
            self.settings.redis_retry_max_seconds,
            "Redis apply",
            self._redis_failed,
            stopping=lambda: self.should_stop,
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.readiness.progressed()
        self.redis_ok = True
        self.metrics.redis_up.set(1)
        return results

    def _redis_failed(self, exc: Exception) -> None:
        self.redis_ok = False
        self.metrics.redis_up.set(0)
        self.metrics.redis_errors.inc()

    def count_applied(self, delta: PartitionDelta, times_ms: list[int]) -> None:
        self.metrics.batches.labels("applied").inc()
        if delta.events:
            self.metrics.last_applied.set(time.time())
        for (event_type, object_type), count in delta.totals.items():
            self.metrics.events.labels(event_type, object_type).inc(count)
        self.metrics.event_lag.observe_lags(time.time(), times_ms)
        if delta.max_event_ms is not None and delta.max_event_ms > self._max_event_ms:
            self._max_event_ms = delta.max_event_ms
            self.metrics.last_event_timestamp.set(delta.max_event_ms / 1000)

    async def seek(self, tp: TopicPartition, fence: int) -> None:
        """Position a partition just past a fence; what was fetched before is stale from now."""
        self.fences[tp.partition] = fence
        self.sent_through.pop(tp.partition, None)
        self.generations[tp.partition] = self.generations.get(tp.partition, 0) + 1
        if fence >= 0:
            self.consumer.seek(tp, fence + 1)
        else:
            await self.consumer.seek_to_beginning(tp)

    async def commit_fences(self) -> None:
        """Tell Kafka how far Redis got (a hint for lag tooling; Redis stays authoritative)."""
        self._last_commit = time.monotonic()
        owned = self.consumer.assignment()
        offsets = {
            tp: self.fences[tp.partition] + 1
            for tp in owned
            if self.fences.get(tp.partition, -1) >= 0
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a failed hint must not stop the fold
            log.warning("Offset commit failed: %s", exc)

    @property
    def ready(self) -> bool:
        """Assigned by the group and Redis reachable at the last call."""
        return self.joined.is_set() and self.redis_ok
