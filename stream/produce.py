"""Sending activity to Kafka: JSON-lines files and generated events, keyed by actor, paced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from stream import clients, jsonutil
from stream.decode import decode_activity
from stream.directory import decode_directory
from stream.events import InvalidEvent
from stream.settings import Settings
from stream.topics import TopicNames

#: In-flight sends awaited together: enough to fill the producer's batches, bounded in memory.
_WINDOW = 5000


@dataclass
class ProduceSummary:
    """What a produce run did, line by line where it matters."""

    sent: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """An idempotent producer: broker-side retries never duplicate a record."""
    return clients.new_producer(
        settings,
        client_id=f"{settings.app_id}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )


def key_for(line: bytes, validate: bool) -> bytes | None:
    """The actor of a line as the Kafka key; with ``validate``, raise InvalidEvent when bad."""
    actor = _actor_of(line)
    key = actor.encode() if actor is not None else None
    if validate:
        decode_activity(line, key)  # the worker's own gate, so the summary matches the DLQ
    return key


def directory_key_for(line: bytes, validate: bool) -> bytes | None:
    """The user id of a directory line as the Kafka key; validated like the worker does."""
    try:
        doc = jsonutil.loads(line)
    except jsonutil.JSONDecodeError:
        doc = None
    user = doc.get("user_id") if isinstance(doc, dict) else None
    key = user.encode() if isinstance(user, str) else None
    if validate:
        decode_directory(line, key)
    return key


def _actor_of(line: bytes) -> str | None:
    try:
        doc = jsonutil.loads(line)
    except jsonutil.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    actor = doc.get("actor")
    if actor is None and isinstance(doc.get("data"), dict):
        actor = doc["data"].get("actor") or doc.get("subject")
    return actor if isinstance(actor, str) else None


class Pacer:
    """Holds a sender to ``rate`` records a second (None: as fast as the broker takes them)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.count = 0

    async def tick(self) -> None:
        """Account one record; sleep when ahead of schedule."""
        self.count += 1
        if self.rate:
            ahead = self.count / self.rate - (time.monotonic() - self.started)
            if ahead > 0.005:
                await asyncio.sleep(ahead)


async def produce_lines(
    settings: Settings,
    lines: Iterable[bytes],
    *,
    rate: float | None = None,
    validate: bool = True,
    on_line: Callable[[int], None] | None = None,
    directory: bool = False,
) -> ProduceSummary:
    """Send each non-blank line to the activity (or directory) topic; report bad lines by number."""
    names = TopicNames.from_settings(settings)
    topic = names.directory if directory else names.activity
    keyer = directory_key_for if directory else key_for
    summary = ProduceSummary()
    started = time.monotonic()
    producer = new_producer(settings)
    await producer.start()
    try:
        pacer = Pacer(rate)
        pending: list[asyncio.Future[Any]] = []
        for number, raw in enumerate(lines, start=1):
            if on_line:
                on_line(len(raw))
            line = raw.strip()
            if not line:
                continue
            try:
                key = keyer(line, validate)
            except InvalidEvent as exc:
                summary.rejected.append((number, str(exc)))
                continue
            pending.append(await producer.send(topic, line, key=key))
            summary.sent += 1
            await pacer.tick()
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    summary.seconds = time.monotonic() - started
    return summary


async def produce_events(
    settings: Settings, events: Iterable[dict[str, Any]], *, rate: float | None = None
) -> ProduceSummary:
    """Send generated event dicts (already valid) to the activity topic."""
    return await produce_lines(
        settings, (jsonutil.dumps(e) for e in events), rate=rate, validate=False
    )


async def topic_is_empty(settings: Settings) -> bool:
    """True when the activity topic holds no record (a fresh deployment)."""
    topic = TopicNames.from_settings(settings).activity
    consumer = clients.new_consumer(settings)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never got to run
    try:
        partitions = range(settings.activity_partitions)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return not any(ends.values())
    finally:
        await consumer.stop()
