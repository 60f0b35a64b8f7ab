"""Replaying dead letters: each source record re-sent once per run, through the worker's gate.

One pass over the dead-letter topic up to its end at the start (see :mod:`stream.dlq`), sending
as it reads: memory holds one source coordinate per record, never the records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.errors import KafkaError

from stream.dlq import DeadLetter, Deduplicator, DlqError, Selection, read_dead_letters
from stream.settings import Settings

#: On a replayed record: the source coordinates (topic:partition:offset) it was rejected at.
REPLAY_OF: Final = "esn.replay.of"
#: Sends in flight before they are awaited together: fills the producer's batches, bounded.
_WINDOW = 2000


@dataclass
class ReplayResult:
    """What one replay run read, chose and sent."""

    read: int = 0
    matched: int = 0
    replayed: int = 0
    duplicates: int = 0
    #: Dead letters the worker cut to fit the topic: not the producer's bytes, not re-sent.
    truncated: int = 0
    #: Every reason seen, matched or not (to say what is there when nothing matched).
    reasons_present: set[str] = field(default_factory=set)


class ReplayInterrupted(Exception):
    """Kafka failed part-way through a replay; ``result.replayed`` records were acknowledged."""

    def __init__(self, result: ReplayResult, cause: BaseException) -> None:
        super().__init__(f"{result.replayed} replayed records acknowledged: {cause}")
        self.result = result
        self.cause = cause


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Headers of a replayed record: where it was first rejected, for tracing it."""
    topic, partition, offset = letter.identity
    return [(REPLAY_OF, f"{topic}:{partition}:{offset}".encode())]


async def replay(
    settings: Settings,
    dead_letter_topic: str,
    target: str,
    selection: Selection,
    dry_run: bool = False,
) -> ReplayResult:
    """Re-send the selected dead letters of ``dead_letter_topic`` to ``target``, once each.

    The idempotent producer never duplicates a record on its own retries. A record goes back to
    the partition it was read from, with its original key, so a user's records stay on one
    partition; their order is kept because a key's dead letters share one DLQ partition.
    """
    from stream.produce import new_producer

    result = ReplayResult()
    sent = False
    producer = new_producer(settings)
    try:
        await producer.start()
        partitions = await _partition_count(producer, target)
        dedupe = Deduplicator()
        pending: list[asyncio.Future[Any]] = []
        async for letter in read_dead_letters(settings, dead_letter_topic, selection.since_ms):
            result.read += 1
            result.reasons_present.add(letter.reason)
            if not selection.matches(letter):
                continue
            result.matched += 1
            if not dedupe.first_time(letter):
                continue
            # A cut record is not the one the producer sent: re-sending it would fold a fragment.
            if letter.truncated:
                result.truncated += 1
                continue
            if dry_run:
                result.replayed += 1
                continue
            sent = True
            pending.append(await _send(producer, target, partitions, letter))
            if len(pending) >= _WINDOW:
                await _settle(pending, result)
        await _settle(pending, result)
        await producer.flush()
        result.duplicates = dedupe.duplicates
    except KafkaError as exc:
        if not sent:
            raise  # nothing left for Kafka yet: a plain outage, said as such
        raise ReplayInterrupted(result, exc) from exc
    finally:
        await producer.stop()
    return result


async def _partition_count(producer: Any, topic: str) -> int:
    # Asking for a missing topic's partitions would wait, or have the broker create it.
    if topic not in (await producer.client.fetch_all_metadata()).topics():
        raise DlqError(
            f"the topic {topic} to replay into does not exist",
            "check ESN_TOPIC_PREFIX (a worker or esn-pulse stack up creates the topics)",
        )
    return len(await producer.partitions_for(topic))


async def _send(producer: Any, topic: str, partitions: int, letter: DeadLetter) -> Any:
    partition = None
    if letter.source is not None and letter.source[0] == topic and letter.source[1] < partitions:
        partition = letter.source[1]
    return await producer.send(
        topic, letter.value, key=letter.key, partition=partition, headers=replay_headers(letter)
    )


async def _settle(pending: list[asyncio.Future[Any]], result: ReplayResult) -> None:
    """Await the sends in flight, counting each acknowledgement as it comes."""
    for future in pending:
        await future
        result.replayed += 1
    pending.clear()
