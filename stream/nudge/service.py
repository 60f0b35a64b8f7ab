"""``esn-pulse nudge``: three loops in one process. The address book folds the directory topic
(no group: every process reads all of it), the intake takes flagged-user records behind Redis
fences (its own consumer group), and the deliverer takes due deliveries to their outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import ResponseError

from stream import jsonutil
from stream.clients import assign_settled, new_consumer
from stream.directory import ProfileV1, decode_directory
from stream.events import InvalidEvent, epoch_ms
from stream.nudge import intake
from stream.nudge.delivery import Deliverer
from stream.nudge.effect import DAY_MS, effect
from stream.nudge.metrics import NudgeMetrics
from stream.nudge.rules import Rules
from stream.settings import Settings
from stream.store.errors import REDIS_UNAVAILABLE
from stream.store.nudge_store import NudgeStore
from stream.topics import TopicNames

log = logging.getLogger("esn.nudge")


def wall_ms() -> int:
    return int(time.time() * 1000)


def address_entry(profile: ProfileV1) -> dict[str, Any]:
    """What the address book keeps of a profile: no more than a nudge needs."""
    return {
        "status": profile.status,
        "email": profile.email,
        "name": profile.display_name,
        "language": profile.language,
        "opt_out": bool(profile.nudge_opt_out),
    }


class _SeekToFences(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: NudgeService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        fences = await self.service.store.fences()
        for tp in assigned:
            self.service.flags.seek(tp, fences.get(tp.partition, -1) + 1)
        log.info("nudge intake assigned %s", sorted(tp.partition for tp in assigned))


class NudgeService:
    """The running service; ``stop`` ends every loop."""

    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        store: NudgeStore,
        deliverer: Deliverer,
        metrics: NudgeMetrics,
        pseudonymize: Callable[[str], str] | None,
        poll_s: float,
        dry_run: bool = False,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.store = store
        self.deliverer = deliverer
        self.metrics = metrics
        self.pseudonymize = pseudonymize
        self.poll_s = poll_s
        self.clock = clock
        self.topics = TopicNames.from_settings(settings)
        self.stop = asyncio.Event()
        self._wake = asyncio.Event()
        group = f"{settings.app_id}-nudge" + ("-dry" if dry_run else "")
        self.flags: AIOKafkaConsumer = new_consumer(
            settings,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self.directory: AIOKafkaConsumer = new_consumer(settings, enable_auto_commit=False)
        metrics.start_series([(r.kind, c) for r in rules.rules for c in r.channels])

    async def run(self) -> None:
        """Catch the address book up, then take flags and deliver until stopped."""
        await self.directory.start()
        await asyncio.sleep(0)  # aiokafka's stop() raises if its no-group task never ran
        try:
            await self._start_directory()
            await self.fold_directory(until_end=True)
            await self.flags.start()
            try:
                self.flags.subscribe([self.topics.flagged], listener=_SeekToFences(self))
                tasks = [
                    asyncio.create_task(self._loop(self.fold_directory)),
                    asyncio.create_task(self._loop(self.take_flags)),
                    asyncio.create_task(self._deliver_loop()),
                    asyncio.create_task(self._effect_loop()),
                ]
                stopped = asyncio.create_task(self.stop.wait())
                done, _ = await asyncio.wait([*tasks, stopped], return_when="FIRST_COMPLETED")
                for task in [*tasks, stopped]:
                    task.cancel()
                for task in done:
                    if task is not stopped and task.exception():
                        raise task.exception()  # type: ignore[misc]
            finally:
                await self.flags.stop()
        finally:
            await self.directory.stop()

    async def _loop(self, step: Callable[[], Any]) -> None:
        while not self.stop.is_set():
            await self._guarded(step)

    async def _guarded(self, step: Callable[[], Any]) -> Any:
        """Run a step; while Redis or Kafka is away, say so once a try and wait (up to 30 s)
        instead of dying: what was not recorded is taken again from Redis's state."""
        pause = 1.0
        while not self.stop.is_set():
            try:
                return await step()
            except ResponseError:
                raise  # a script refused its arguments: a bug, not an outage
            except (*REDIS_UNAVAILABLE, KafkaError) as exc:
                log.warning(
                    "nudge: %s (%s); trying again in %.0f s",
                    type(exc).__name__,
                    str(exc)[:200],
                    pause,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), pause)
                pause = min(30.0, pause * 2)
        return None

    async def _effect_loop(self) -> None:
        """The effect gauges, once a minute (the figure moves by the day)."""
        while not self.stop.is_set():
            now = self.clock()
            entries = await self._guarded(self.store.effect_entries) or []
            self.metrics.show_effect(
                effect(entries, now, now - 90 * DAY_MS, minimum=self.settings.min_group_size)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 60)

    async def _deliver_loop(self) -> None:
        while not self.stop.is_set():
            looked = await self._guarded(self.deliverer.run_due)
            self.metrics.pending.set(await self._guarded(self.store.pending_count) or 0)
            if looked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    # --- the address book -------------------------------------------------------------------

    async def _start_directory(self) -> None:
        # topics() does not update the consumer's own metadata: ask the cluster (as dlq.py).
        cluster = await self.directory._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topics.directory) or set()
        tps = [TopicPartition(self.topics.directory, p) for p in sorted(partitions)]
        await assign_settled(self.directory, tps)
        positions = await self.store.address_positions()
        for tp in tps:
            self.directory.seek(tp, positions.get(tp.partition, 0))

    async def fold_directory(self, until_end: bool = False) -> None:
        """Fold what the directory topic has; with ``until_end``, everything up to its end."""
        tps = list(self.directory.assignment())
        ends = await self.directory.end_offsets(tps) if until_end else {}
        while True:
            batch = await self.directory.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                entries = []
                for record in records:
                    try:
                        profile = decode_directory(record.value, record.key)
                    except InvalidEvent:
                        continue  # the worker dead-letters it; the address book skips it
                    if isinstance(profile, ProfileV1):
                        uid = profile.user_id
                        person = self.pseudonymize(uid) if self.pseudonymize else uid
                        updated = epoch_ms(profile.updated)
                        entries.append((person, updated, address_entry(profile)))
                await self.store.fold_addresses(tp.partition, records[-1].offset + 1, entries)
            if not until_end:
                return
            positions = {tp: await self.directory.position(tp) for tp in tps}
            if all(positions[tp] >= ends.get(tp, 0) for tp in tps):
                return

    # --- intake -----------------------------------------------------------------------------

    async def take_flags(self) -> None:
        """Take one fetch of flagged-user records into Redis, each behind its fence."""
        batch = await self.flags.getmany(timeout_ms=500, max_records=500)
        taken = 0
        for tp, records in batch.items():
            for record in records:
                try:
                    doc = jsonutil.loads(record.value or b"")
                    plan = intake.plan(doc, self.rules, self.clock())
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning(
                        "nudge intake skips %s[%d]@%d: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        type(exc).__name__,
                    )
                    continue
                applied, cancelled = await self.store.intake(
                    tp.partition, record.offset, self.clock(), plan
                )
                if applied:
                    taken += 1
                    for entry in plan["audit"]:
                        self.metrics.count(plan["kind"], entry["channel"], entry["outcome"])
                    for kind, channel in cancelled:
                        self.metrics.count(kind, channel, "cancelled")
        if batch:
            # Kafka's offsets only show the lag; Redis's fences decide where intake resumes.
            with contextlib.suppress(Exception):
                await self.flags.commit()
        if taken:
            self._wake.set()
