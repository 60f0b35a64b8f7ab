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
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from redis.exceptions import RedisError

from stream.batch import FoldedFetch, RawRecord, Reject, fold_fetch, fold_partition, records_after
from stream.clients import new_consumer
from stream.directory_fold import DirectoryFolder
from stream.flags.cycle import FlagCycle
from stream.flags.machine import counting_types_from
from stream.fold import PartitionDelta
from stream.logfilter import fold_library_repeats
from stream.metrics import PipelineMetrics
from stream.privacy import pseudonymizer_from
from stream.readiness import Readiness
from stream.retry import StoppedWhileRetrying, until_redis_answers
from stream.settings import Settings
from stream.store import ApplyOutcome, RedisStore
from stream.timebounds import TimeBounds
from stream.topics import TopicNames

log = logging.getLogger(__name__)

#: Sends one rejected record to the dead-letter topic; resolves when the broker has it.
DeadLetterSink = Callable[[Reject], Awaitable[Any]]

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


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks each newly owned partition to its Redis fence; drains the in-flight batch first."""

    def __init__(self, ingest: ActivityIngest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.ingest.apply_lock:
            await self.ingest.commit_fences()
            for tp in revoked:
                self.ingest.fences.pop(tp.partition, None)
                self.ingest.forget_partition(tp)
                self.ingest.flags.forget(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.ingest.seek_to_fences(assigned)


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
        #: partition -> how many times it was sought: fetches from before a seek are stale.
        self.generations: dict[int, int] = {}
        self.joined = asyncio.Event()
        self.redis_ok = False
        self.readiness = Readiness(settings.ready_stall_seconds)
        #: The Redis server's run id when last asked: a new one means a restart or failover.
        self._redis_run_id: str | None = None
        self._last_commit = 0.0
        self._max_event_ms = 0

    async def on_start(self) -> None:
        fold_library_repeats()  # Faust has set up its log handlers by now
        await self.flags.start()
        self.consumer.subscribe([self.topics.activity], listener=_Rebalance(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        async with self.apply_lock:
            await self.commit_fences()
        await self.consumer.stop()
        await self.flags.stop()

    @Service.task
    async def _consume(self) -> None:
        # While Redis applies one fetch, the next is fetched, decoded and folded: the fold is
        # Python CPU and the apply mostly waits on Redis, so overlapping them raises throughput
        # to the slower of the two. Applies still run one at a time, in fetch order.
        applying: asyncio.Task[None] | None = None
        try:
            while not self.should_stop:
                fetched = await self.consumer.getmany(
                    timeout_ms=self.settings.batch_wait_ms,
                    max_records=self.settings.batch_max_records,
                )
                if fetched:
                    folded, records = self.fold(fetched)
                    if applying is not None:
                        await applying
                    applying = asyncio.create_task(self._apply_in_order(folded, records))
                else:
                    if applying is not None and applying.done():
                        await applying  # surfaces an error without waiting for the next fetch
                        applying = None
                    if applying is None and not self.records_waiting():
                        self.readiness.progressed()  # idle, not stalled
                if time.monotonic() - self._last_commit > _COMMIT_INTERVAL_S:
                    async with self.apply_lock:
                        await self.commit_fences()
        except StoppedWhileRetrying:
            return  # stopping while Redis is away: nothing was committed past the failed apply
        finally:
            if applying is not None and not applying.done():
                with contextlib.suppress(StoppedWhileRetrying):
                    await asyncio.shield(applying)

    @Service.task
    async def _sweep_loop(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.sweep_interval_seconds)
            # mode's sleep returns early when the service stops: a sweep started then would run
            # (a backfill's worth of releases) after on_stop closed the consumer and producer.
            if self.should_stop:
                break
            if self.joined.is_set():
                try:
                    await self.flags.sweep(
                        self.consumer.assignment, self.apply_lock, lambda: self.should_stop
                    )
                except (RedisError, OSError, KafkaError) as exc:
                    # Nothing is lost: the buffer and the outbox wait for the next sweep.
                    log.warning("Sweep incomplete (%s); retrying at the next one", exc)

    @Service.timer(5.0)
    async def _probe_kafka(self) -> None:
        up = await self.readiness.probe_kafka(self.consumer.topics)
        self.metrics.kafka_up.set(1 if up else 0)

    @Service.timer(5.0)
    async def _watch_redis_restarts(self) -> None:
        """A Redis restart or failover may have lost the last writes: re-read the directory.

        Activity needs no such watch (its fences are checked on every apply), but the directory
        has no fence, and a partition whose activity was idle meanwhile would not notice.
        """
        try:
            run_id = await self.store.run_id()
        except (RedisError, OSError):
            return  # unreachable: /ready says so; the next answer is compared
        known, self._redis_run_id = self._redis_run_id, run_id
        if known is None or known == run_id or not self.joined.is_set():
            return
        async with self.apply_lock:
            owned = sorted(tp.partition for tp in self.consumer.assignment())
            log.warning("Redis restarted or failed over: re-reading directory partitions %s", owned)
            self.metrics.state_losses.inc()
            try:
                await self.directory.reread_partitions(owned)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("Directory re-read incomplete (%s); retrying", exc)
                self._redis_run_id = known  # compared again at the next tick

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

    @Service.timer(5.0)
    async def _refresh_lag(self) -> None:
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            fence = self.fences.get(tp.partition)
            if end is None or fence is None:
                continue
            labels = (tp.topic, str(tp.partition))
            self.metrics.consumer_lag.labels(*labels).set(max(0, end - fence - 1))

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

    async def _apply_in_order(
        self, folded: FoldedFetch, records: dict[tuple[str, int], list[Any]]
    ) -> None:
        """Under the lock: drop what a rebalance took away meanwhile, dead-letter, apply."""
        async with self.apply_lock:
            owned = {tp.partition for tp in self.consumer.assignment()}
            # Revoked since the fold (the new owner reads them again from the fence), or sought
            # since (they are fetched again from the new position): either way not ours to apply.
            current = {
                p for p in owned if folded.generations.get(p, 0) == self.generations.get(p, 0)
            }
            folded.deltas = [d for d in folded.deltas if d.partition in current]
            # A record at or below the fence was dead-lettered before the fence moved past it.
            folded.rejects = [
                r
                for r in folded.rejects
                if r.record.partition in current
                and r.record.offset > self.fences.get(r.record.partition, -1)
            ]
            await self._send_rejects(folded.rejects)
            await self._apply(folded, records)

    async def _send_rejects(self, rejects: list[Reject]) -> None:
        """Dead-letter before the fence moves past them, so a crash can only repeat, never lose."""
        if not rejects:
            return
        await asyncio.gather(*(self.dead_letter(reject) for reject in rejects))
        for reject in rejects:
            self.metrics.invalid.labels(reject.reason).inc()

    async def _apply(
        self, folded: FoldedFetch, records: Mapping[tuple[str, int], Sequence[RawRecord]]
    ) -> None:
        pending = folded.deltas
        times = folded.event_times_ms
        while pending:
            results = await self._apply_with_retry(pending)
            retry: list[PartitionDelta] = []
            for delta, result in zip(pending, results, strict=True):
                if result.outcome is ApplyOutcome.STATE_LOST:
                    await self._reread_lost_partition(delta, result.applied_before)
                elif result.outcome is ApplyOutcome.REFUSED:
                    await self._apply_one_by_one(
                        delta, records[delta.topic, delta.partition], folded.bounds
                    )
                elif result.outcome is ApplyOutcome.APPLIED:
                    self._count_applied(delta, times.get(delta.partition, []))
                    self.fences[delta.partition] = delta.last_offset
                elif result.outcome is ApplyOutcome.ALREADY_APPLIED:
                    self.metrics.batches.labels("replayed").inc()
                    self.fences[delta.partition] = max(
                        result.applied_before, self.fences.get(delta.partition, -1)
                    )
                else:
                    # Another owner got further while this batch was in flight: keep only the rest.
                    self.metrics.batches.labels("overlap").inc()
                    self.fences[delta.partition] = result.applied_before
                    rest = records_after(
                        records[delta.topic, delta.partition], result.applied_before
                    )
                    if rest:
                        refolded, rest_times = fold_partition(
                            delta.topic,
                            delta.partition,
                            rest,
                            None,
                            self.counting_types,
                            self.pseudonymize,
                            folded.bounds,
                        )
                        times[delta.partition] = rest_times
                        retry.append(refolded)
            pending = retry
            for delta in folded.deltas:
                labels = (delta.topic, str(delta.partition))
                self.metrics.applied_offset.labels(*labels).set(self.fences[delta.partition])

    async def _reread_lost_partition(self, delta: PartitionDelta, found: int) -> None:
        """Redis is behind what this worker applied: read the partition again from its fence."""
        applied = self.fences.get(delta.partition, -1)
        log.warning(
            "%s[%d]: the Redis fence is at %d but %d was applied (Redis restarted empty, from "
            "an older AOF, or failed over to a replica that was behind); re-reading from %s",
            delta.topic,
            delta.partition,
            found,
            applied,
            found + 1 if found >= 0 else "the beginning",
        )
        self.metrics.state_losses.inc()
        try:
            await self.directory.reread_partitions([delta.partition])
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("Directory re-read incomplete (%s); the next assignment reads again", exc)
        await self._seek(TopicPartition(delta.topic, delta.partition), found)

    async def _apply_one_by_one(
        self, delta: PartitionDelta, records: Sequence[RawRecord], bounds: TimeBounds | None
    ) -> None:
        """The script refused a batch: find the records it refuses, dead-letter them, go on.

        Nothing was written by the refused call (the script checks all its input first), so
        applying the same records one at a time is exact; only the failure path pays for it.
        """
        log.error(
            "%s[%d]: the fold script refused offsets %d-%d; applying them one by one",
            delta.topic,
            delta.partition,
            delta.first_offset,
            delta.last_offset,
        )
        partition = delta.partition
        for record in records:
            if not delta.first_offset <= record.offset <= delta.last_offset:
                continue
            if record.offset <= self.fences.get(partition, -1):
                continue
            single, times_ms = fold_partition(
                delta.topic,
                partition,
                [record],
                None,
                self.counting_types,
                self.pseudonymize,
                bounds,
            )
            (result,) = await self._apply_with_retry([single])
            if result.outcome is ApplyOutcome.REFUSED:
                reject = Reject(record, "internal_error", result.error[:500], "RedisScriptError")
                await self._send_rejects([reject])
                empty = PartitionDelta(delta.topic, partition, record.offset, record.offset)
                (result,) = await self._apply_with_retry([empty])
            if result.outcome is ApplyOutcome.STATE_LOST:
                await self._reread_lost_partition(single, result.applied_before)
                return
            if result.outcome is ApplyOutcome.APPLIED:
                self._count_applied(single, times_ms)
                self.fences[partition] = record.offset
            else:  # another owner got this far: it applies the rest
                self.fences[partition] = max(result.applied_before, self.fences.get(partition, -1))
                return

    async def _apply_with_retry(self, deltas: list[PartitionDelta]) -> list[Any]:
        """Apply until Redis takes it: never skip a batch, never commit past one."""
        started = time.perf_counter()
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

    def _count_applied(self, delta: PartitionDelta, times_ms: list[int]) -> None:
        self.metrics.batches.labels("applied").inc()
        if delta.events:
            self.metrics.last_applied.set(time.time())
        for (event_type, object_type), count in delta.totals.items():
            self.metrics.events.labels(event_type, object_type).inc(count)
        if times_ms:
            now = time.time()
            self.metrics.event_lag.observe_many([now - t / 1000 for t in times_ms])
        if delta.max_event_ms is not None and delta.max_event_ms > self._max_event_ms:
            self._max_event_ms = delta.max_event_ms
            self.metrics.last_event_timestamp.set(delta.max_event_ms / 1000)

    async def seek_to_fences(self, assigned: list[TopicPartition]) -> None:
        """Position each partition just past its applied offset (Redis is the source of truth)."""
        partitions = [tp.partition for tp in assigned]
        fences = await until_redis_answers(
            lambda: self.store.load_fences(self.topics.activity, partitions),
            self.settings.redis_retry_max_seconds,
            "Reading fences",
        )
        self.redis_ok = True
        self.metrics.redis_up.set(1)
        # The directory has no fence: what Redis lost of it (a restart from an older AOF, a
        # failover) comes back only by reading it again, before the activity that needs it.
        # The run id this re-read is as of: a later one means a restart the watch re-reads for.
        with contextlib.suppress(RedisError, OSError):
            self._redis_run_id = await self.store.run_id()
        try:
            await self.directory.reread_partitions(partitions)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("Directory re-read incomplete (%s); the next assignment reads again", exc)
        for tp in assigned:
            await self._seek(tp, fences[tp.partition])
        self.metrics.assigned_partitions.set(len(self.consumer.assignment()))
        self.joined.set()
        log.info("Assigned %s at fences %s", sorted(partitions), fences)

    async def _seek(self, tp: TopicPartition, fence: int) -> None:
        """Position a partition just past a fence; what was fetched before is stale from now."""
        self.fences[tp.partition] = fence
        self.generations[tp.partition] = self.generations.get(tp.partition, 0) + 1
        if fence >= 0:
            self.consumer.seek(tp, fence + 1)
        else:
            await self.consumer.seek_to_beginning(tp)

    def forget_partition(self, tp: TopicPartition) -> None:
        """Drop per-partition gauges of a partition this worker no longer owns."""
        labels = (tp.topic, str(tp.partition))
        for gauge in (self.metrics.consumer_lag, self.metrics.applied_offset):
            with contextlib.suppress(KeyError):  # never set for this partition
                gauge.remove(*labels)

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
