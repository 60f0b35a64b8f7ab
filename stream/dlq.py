"""The dead-letter topics: reading them up to a fixed end, selecting, deduplicating, summarising.

The worker writes each rejected record unchanged with headers saying why and where it came from
(see :func:`stream.topics.dlq_headers`); this module reads those headers back. The re-send is in
:mod:`stream.dlq_replay`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.clients import new_consumer
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
    _seen: set[tuple[str, int, int]] = field(default_factory=set, repr=False)

    @classmethod
    def of(cls, letters: Iterable[DeadLetter]) -> DlqSummary:
        """Summarise dead letters (a record dead-lettered twice counts twice, once distinct)."""
        summary = cls()
        for letter in letters:
            summary.add(letter)
        return summary.done()

    def add(self, letter: DeadLetter) -> None:
        """Count one dead letter."""
        self.reasons.setdefault(letter.reason, ReasonFigures()).add(letter.timestamp_ms)
        self.total += 1
        self._seen.add(letter.identity)
        self.distinct = len(self._seen)

    def done(self) -> DlqSummary:
        """The summary with its reasons most frequent first."""
        self.reasons = dict(sorted(self.reasons.items(), key=lambda kv: -kv[1].count))
        return self


class Deduplicator:
    """Says whether a dead letter's source record was seen already in this pass.

    A worker that crashes between dead-lettering and moving its fence dead-letters the same
    record again after the restart: both copies carry the same source coordinates. Memory is
    one small tuple per distinct record, never the records themselves.
    """

    def __init__(self) -> None:
        self.seen: set[tuple[str, int, int]] = set()
        self.duplicates = 0

    def first_time(self, letter: DeadLetter) -> bool:
        """True the first time a source record comes by; counts the later ones."""
        if letter.identity in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(letter.identity)
        return True


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command is about: these reasons (all when empty), since when."""

    reasons: frozenset[str] = frozenset()
    since_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """True for a dead letter of a chosen reason written at or after ``since_ms``."""
        return (not self.reasons or letter.reason in self.reasons) and (
            self.since_ms is None or letter.timestamp_ms >= self.since_ms
        )


async def read_dead_letters(
    settings: Settings, topic: str, since_ms: int | None = None
) -> AsyncIterator[DeadLetter]:
    """Every dead letter of ``topic`` up to its end offsets as they are when the read starts.

    Records written while the read runs (a replay's records rejected again) are not read, so
    a replay cannot loop on its own output.
    """
    consumer = new_consumer(
        settings,
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
