"""Loading a population's state for bench/population.py: a generated organisation folded through
the worker's own directory folder, fold and fenced apply in this process, placed on the partitions
Kafka's producers would pick, without a broker in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from bench.workload import SEED
from stream import jsonutil
from stream.batch import fold_fetch
from stream.directory_fold import DirectoryFolder
from stream.flags.machine import definitions_from
from stream.flags.release import InactivitySweeper
from stream.generator import directory_records, generate_events
from stream.settings import Settings
from stream.store import RedisStore
from stream.timebounds import parse_duration_ms
from stream.topics import TopicNames

#: Records folded per partition per apply, as the worker's fetches are capped.
APPLY_BATCH = 2000


@dataclass(frozen=True)
class LoadedRecord:
    """A record as the worker's fold reads one (batch.RawRecord), without Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) picks for ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


async def load_population(settings: Settings, store: RedisStore, users: int, days: int) -> int:
    """Fold a generated organisation's directory and ``days`` of activity ending yesterday."""
    topics = TopicNames.from_settings(settings)
    partitions = settings.activity_partitions
    start = datetime.now(UTC).date() - timedelta(days=days)
    folder = DirectoryFolder(settings, store)
    offsets: dict[tuple[str, int], int] = {}

    def placed(topic: str, key: bytes, value: bytes) -> LoadedRecord:
        partition = kafka_partition(key, partitions)
        offset = offsets.get((topic, partition), 0)
        offsets[topic, partition] = offset + 1
        return LoadedRecord(topic, partition, offset, key, value)

    batch: list[LoadedRecord] = []
    for record in directory_records(users, start, days, seed=SEED):
        batch.append(placed(topics.directory, record["user_id"].encode(), jsonutil.dumps(record)))
        if len(batch) >= 5000:
            await folder.fold(batch, None)
            batch.clear()
    if batch:
        await folder.fold(batch, None)
    events = generate_events(users, days, start, SEED)
    return await fold_events(store, topics.activity, events, placed)


async def fold_events(
    store: RedisStore,
    topic: str,
    events: Iterator[dict[str, Any]],
    placed: Callable[[str, bytes, bytes], LoadedRecord],
) -> int:
    """Fold ``events`` through the worker's fold and fenced apply, in fetch-sized batches."""
    pending: dict[tuple[str, int], list[LoadedRecord]] = {}
    folded = 0
    for event in events:
        record = placed(topic, event["actor"].encode(), jsonutil.dumps(event))
        pending.setdefault((topic, record.partition), []).append(record)
        folded += 1
        if len(pending[topic, record.partition]) >= APPLY_BATCH:
            await store.apply(fold_fetch(pending).deltas)
            pending.clear()
    if pending:
        await store.apply(fold_fetch(pending).deltas)
    return folded


async def release_all(settings: Settings, store: RedisStore, now_ms: int) -> int:
    """Release everything buffered up to ``now_ms``, as the sweep does; the changes applied."""
    sweeper = InactivitySweeper(store, definitions_from(settings))
    released = 0
    for partition in range(settings.activity_partitions):
        while True:
            result = await sweeper.release(partition, now_ms)
            released += result.changes
            if result.complete:
                break
    return released


async def activate_now(settings: Settings, store: RedisStore, count: int) -> int:
    """Fold one event now (just older than the sweep's watermark) for ``count`` users."""
    topic = TopicNames.from_settings(settings).activity
    fences = await store.load_fences(topic, list(range(settings.activity_partitions)))
    offsets = {(topic, p): fence + 1 for p, fence in fences.items()}
    moment = datetime.now(UTC) - timedelta(
        milliseconds=parse_duration_ms(settings.allowed_lateness) + 60_000
    )
    chosen: list[dict[str, Any]] = []
    for event in generate_events(count * 4, 3, moment.date() - timedelta(days=3), SEED + 1):
        if all(e["actor"] != event["actor"] for e in chosen):
            chosen.append({**event, "time": moment.isoformat(timespec="milliseconds")})
        if len(chosen) == count:
            break

    def placed(topic: str, key: bytes, value: bytes) -> LoadedRecord:
        partition = kafka_partition(key, settings.activity_partitions)
        offset = offsets[topic, partition]
        offsets[topic, partition] = offset + 1
        return LoadedRecord(topic, partition, offset, key, value)

    await fold_events(store, topic, iter(chosen), placed)
    return len(chosen)
