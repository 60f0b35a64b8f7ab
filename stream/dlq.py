"""The dead-letter topics: reading them up to a fixed end, summarising, and re-sending (replay).

The worker writes each rejected record unchanged with headers saying why and where it came from
(see :func:`stream.topics.dlq_headers`); this module reads those headers back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream.settings import Settings
from stream.topics import (
    DLQ_DETAIL,
    DLQ_EXCEPTION,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    DLQ_TRUNCATED,
)

#: On a replayed record: the source coordinates (topic:partition:offset) it was first rejected at.
REPLAY_OF: Final = "esn.replay.of"
#: A reason header that is missing (a record not written by the worker) reads as this.
UNKNOWN_REASON: Final = "unknown"
#: How long a read may go without reaching the captured end before it gives up.
_STALL_SECONDS = 30.0

Source = tuple[str, int, int]


class DlqError(Exception):
    """A dead-letter topic that cannot be read as asked; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class ReplayInterrupted(Exception):
    """Kafka failed part-way through a replay; ``acknowledged`` records were already sent."""

    def __init__(self, acknowledged: int, total: int, cause: BaseException) -> None:
        super().__init__(f"{acknowledged} of {total} replayed records acknowledged: {cause}")
        self.acknowledged = acknowledged
        self.total = total
        self.cause = cause


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, its headers decoded (hostile bytes tolerated)."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    source: Source | None
    exception: str | None
    #: Set when the worker kept only part of the key or value: not the original record.
    truncated: str | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        """Decode a consumed record; absent or unreadable headers become None/unknown."""
        headers = tuple((str(name), bytes(value or b"")) for name, value in record.headers or ())
        text = {name: value.decode("utf-8", "replace") for name, value in headers}
        return cls(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            reason=text.get(DLQ_REASON) or UNKNOWN_REASON,
            detail=text.get(DLQ_DETAIL, ""),
            source=_source(text),
            exception=text.get(DLQ_EXCEPTION) or None,
            truncated=text.get(DLQ_TRUNCATED) or None,
            headers=headers,
        )

    @property
    def identity(self) -> Source | tuple[str, int, int]:
        """What makes two dead letters the same record: its source, else its own position."""
        return self.source or ("<dlq>", self.partition, self.offset)


def _source(text: dict[str, str]) -> Source | None:
    topic = text.get(DLQ_TOPIC)
    try:
        partition, offset = int(text.get(DLQ_PARTITION, "")), int(text.get(DLQ_OFFSET, ""))
    except ValueError:
        return None
    if not topic or partition < 0 or offset < 0:
        return None
    return topic, partition, offset


@dataclass
class ReasonFigures:
    """Dead letters of one reason: how many, when the first and the last were written."""

    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, at_ms: int) -> None:
        """Count one dead letter written at ``at_ms``."""
        self.count += 1
        self.first_ms = at_ms if self.first_ms is None else min(self.first_ms, at_ms)
        self.last_ms = at_ms if self.last_ms is None else max(self.last_ms, at_ms)


@dataclass
class DlqSummary:
    """Counts per reason and how many distinct source records they are."""

    reasons: dict[str, ReasonFigures] = field(default_factory=dict)
    total: int = 0
    distinct: int = 0

    @classmethod
    def of(cls, letters: Iterable[DeadLetter]) -> DlqSummary:
        """Summarise dead letters (a record dead-lettered twice counts twice, once distinct)."""
        summary = cls()
        seen: set[tuple[str, int, int]] = set()
        for letter in letters:
            summary.reasons.setdefault(letter.reason, ReasonFigures()).add(letter.timestamp_ms)
            summary.total += 1
            seen.add(letter.identity)
        summary.distinct = len(seen)
        summary.reasons = dict(sorted(summary.reasons.items(), key=lambda kv: -kv[1].count))
        return summary


def unique_by_source(letters: Iterable[DeadLetter]) -> tuple[list[DeadLetter], int]:
    """The first dead letter of each source record, in source order, and the duplicates dropped.

    A worker that crashes between dead-lettering and moving its fence dead-letters the same
    record again after the restart: both copies carry the same source coordinates.
    """
    first: dict[tuple[str, int, int], DeadLetter] = {}
    duplicates = 0
    for letter in letters:
        if letter.identity in first:
            duplicates += 1
        else:
            first[letter.identity] = letter
    # Source order restores each partition's original order (a user's events stay in order).
    return sorted(first.values(), key=lambda letter: letter.identity), duplicates


def select(
    letters: Iterable[DeadLetter], reasons: Sequence[str] = (), since_ms: int | None = None
) -> list[DeadLetter]:
    """The dead letters of these reasons (all when empty) written at or after ``since_ms``."""
    wanted = set(reasons)
    return [
        letter
        for letter in letters
        if (not wanted or letter.reason in wanted)
        and (since_ms is None or letter.timestamp_ms >= since_ms)
    ]


async def read_dead_letters(
    settings: Settings, topic: str, since_ms: int | None = None
) -> AsyncIterator[DeadLetter]:
    """Every dead letter of ``topic`` up to its end offsets as they are when the read starts.

    Records written while the read runs (a replay's records rejected again) are not read, so
    a replay cannot loop on its own output.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-dlq-reader",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A transactional writer's aborted records are not dead letters.
        isolation_level="read_committed",
    )
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never got to run
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        # The reset that assign() starts in the background must be over before seeking, or it
        # lands afterwards and moves the position (seen: a read that began at the end).
        for tp in partitions:
            await consumer.position(tp)
        ends = await consumer.end_offsets(partitions)
        await _seek_start(consumer, partitions, since_ms)
        async for letter in _read_to(consumer, ends):
            yield letter
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # topics() does not update the consumer's own metadata, so ask for the cluster directly.
    cluster = await consumer._client.fetch_all_metadata()
    numbers = cluster.partitions_for_topic(topic)
    if not numbers:
        raise DlqError(
            f"the dead-letter topic {topic} does not exist",
            "check ESN_TOPIC_PREFIX and ESN_KAFKA_BOOTSTRAP (a worker or esn-pulse stack up "
            "creates the topics)",
        )
    return [TopicPartition(topic, number) for number in sorted(numbers)]


async def _seek_start(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since_ms: int | None
) -> None:
    if since_ms is None:
        await consumer.seek_to_beginning(*partitions)
        return
    # Dead letters get the time they were written: the first at or after since_ms is found by
    # the broker's time index; a partition with none is read from its end (nothing).
    found = await consumer.offsets_for_times({tp: max(0, since_ms) for tp in partitions})
    missing = [tp for tp, at in found.items() if at is None]
    for tp, at in found.items():
        if at is not None:
            consumer.seek(tp, at.offset)
    if missing:
        await consumer.seek_to_end(*missing)


async def _read_to(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[DeadLetter]:
    pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    last_progress = time.monotonic()
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=2000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield DeadLetter.from_record(record)
        if batch:
            last_progress = time.monotonic()
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if pending and time.monotonic() - last_progress > _STALL_SECONDS:
            stuck = ", ".join(f"{tp.partition} (end {ends[tp]})" for tp in sorted(pending))
            raise DlqError(
                f"reading the dead letters made no progress for {_STALL_SECONDS:.0f}s on "
                f"partition {stuck}",
                "check the broker's health and run the command again",
            )


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers of a replayed record: where it was first rejected, for tracing it."""
    topic, partition, offset = letter.identity
    return [(REPLAY_OF, f"{topic}:{partition}:{offset}".encode())]


async def resend(settings: Settings, letters: Sequence[DeadLetter], topic: str) -> int:
    """Send each dead letter's key and value to ``topic``; returns how many the broker acked.

    The idempotent producer never duplicates a record on its own retries. A record goes back
    to the partition it was read from, so a user's records stay on one partition.
    """
    from stream.produce import new_producer

    producer = new_producer(settings)
    acknowledged = 0
    try:
        await producer.start()
        # Asking for a missing topic's partitions would wait, or have the broker create it.
        if topic not in (await producer.client.fetch_all_metadata()).topics():
            raise DlqError(
                f"the topic {topic} to replay into does not exist",
                "check ESN_TOPIC_PREFIX (a worker or esn-pulse stack up creates the topics)",
            )
        count = len(await producer.partitions_for(topic))
        pending = []
        for letter in letters:
            partition = None
            if letter.source is not None and letter.source[0] == topic:
                partition = letter.source[1] if letter.source[1] < count else None
            pending.append(
                await producer.send(
                    topic,
                    letter.value,
                    key=letter.key,
                    partition=partition,
                    headers=replay_headers(letter),
                )
            )
        for future in pending:
            await future
            acknowledged += 1
        await producer.flush()
    except KafkaError as exc:
        raise ReplayInterrupted(acknowledged, len(letters), exc) from exc
    finally:
        await producer.stop()
    return acknowledged
