"""Folding batches of raw directory records into Redis: the agent's work, and re-reads after loss.

The directory has no offset fence (latest update wins, so redelivery is harmless), which also
means Kafka's committed offsets say nothing about what Redis still holds: when a partition's
activity fence is found gone (Redis restarted empty), its directory partition is read again from
the beginning here, before its activity is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from stream.batch import RawRecord, Reject
from stream.clients import assign_settled, new_consumer
from stream.directory import MembershipV1, ProfileV1, decode_directory, pseudonymized_record
from stream.events import InvalidEvent
from stream.privacy import pseudonymizer_from
from stream.retry import until_redis_answers
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.directory_store import PartitionRecord
from stream.timebounds import TimeBounds
from stream.topics import TopicNames

log = logging.getLogger(__name__)

#: Sends one rejected directory record to its dead-letter topic.
DirectoryDeadLetter = Callable[[Reject], Awaitable[Any]]
_REREAD_BATCH = 500


class DirectoryFolder:
    """Decode, pseudonymise and apply directory records; rejects go to ``dead_letter``."""

    def __init__(self, settings: Settings, store: RedisStore) -> None:
        self.settings = settings
        self.store = store
        self.directory = DirectoryStore(store)
        self.pseudonymize = pseudonymizer_from(settings)

    async def fold(
        self, messages: Sequence[RawRecord], dead_letter: DirectoryDeadLetter | None
    ) -> tuple[list[ProfileV1 | MembershipV1], list[Reject]]:
        """Fold one batch; returns what was applied and what was rejected."""
        records: list[ProfileV1 | MembershipV1] = []
        #: Each record with its partition: the partition of its user, whose keys it lands in.
        placed: list[PartitionRecord] = []
        profiles: list[tuple[int, ProfileV1]] = []
        rejects: list[Reject] = []
        bounds = TimeBounds.at(None, self.settings.min_event_time, self.settings.max_future_skew)
        for message in messages:
            try:
                record = decode_directory(message.value, message.key, bounds)
                if self.pseudonymize is not None:
                    record = pseudonymized_record(record, self.pseudonymize)
            except InvalidEvent as exc:
                rejects.append(Reject(message, exc.reason, exc.detail))
            except Exception as exc:  # a bug of ours must not stop the directory either
                log.exception("Internal error on directory record @%d", message.offset)
                name = type(exc).__name__
                rejects.append(Reject(message, "internal_error", f"{name}: {exc}", name))
            else:
                records.append(record)
                placed.append((message.partition, record))
                if isinstance(record, ProfileV1):
                    profiles.append((message.partition, record))
        if dead_letter is not None:
            for reject in rejects:
                await dead_letter(reject)
        if records:
            await until_redis_answers(
                lambda: self.directory.apply(placed),
                self.settings.redis_retry_max_seconds,
                "Directory apply",
            )
            # Profile versions also enter their partition's reorder buffer, where the
            # inactivity engine applies them in event-time order with the activity.
            await until_redis_answers(
                lambda: self.directory.buffer_profiles(profiles),
                self.settings.redis_retry_max_seconds,
                "Directory buffering",
            )
        return records, rejects

    async def reread_partitions(self, partitions: Sequence[int]) -> int:
        """Fold directory partitions again from their beginnings to their current ends."""
        if not partitions:
            return 0
        topic = TopicNames.from_settings(self.settings).directory
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer = new_consumer(
            self.settings, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
        folded = 0
        try:
            await assign_settled(consumer, tps)
            ends = await consumer.end_offsets(tps)
            # Seek to the log start offsets found (retention may have dropped the oldest).
            starts = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, starts[tp])
            left = {tp for tp in tps if starts[tp] < ends[tp]}
            while left:
                batch = await consumer.getmany(*left, timeout_ms=1000, max_records=_REREAD_BATCH)
                for tp, records in batch.items():
                    records = [r for r in records if r.offset < ends[tp]]
                    if records:
                        applied, _ = await self.fold(records, None)  # dead-lettered already
                        folded += len(applied)
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
        finally:
            await consumer.stop()
        log.info(
            "Directory partitions %s read from their beginnings: %d records", partitions, folded
        )
        return folded
