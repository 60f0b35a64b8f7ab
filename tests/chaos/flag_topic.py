"""Helpers of the flag publisher tests: outbox entries as release.lua writes them, and the
committed records of a flag partition."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream import jsonutil
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import FLAG_SEQ, TopicNames
from tests.support import eventually


async def add_to_outbox(store: RedisStore, partition: int, seqs: range) -> None:
    """Outbox entries as the release script writes them: "seq\\tJSON"."""
    key = store.keys.partition(partition).outbox
    for seq in seqs:
        await store.client.rpush(key, f"{seq}\t{flag_json(f'u{seq}', seq)}")


def flag_json(user: str, at: int) -> str:
    """A flag record with what the publisher reads of it: the key and the event id."""
    record = {"kind": "inactive", "user_id": user, "at": at, "event_id": f"{user}:inactive::{at}"}
    return jsonutil.dumps(record).decode()


async def committed_seqs(settings: Settings, partition: int) -> list[int]:
    """esn.seq of every committed record of one flag partition, in offset order, once no
    transaction is left open on it (a commit returns before its markers are written)."""
    return [seq for seq, _doc in await committed_flags(settings, partition)]


async def committed_flags(
    settings: Settings, partition: int, topic: str | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """(esn.seq, record) of every committed record of one flag partition (of the user flag topic
    unless ``topic`` is given), as committed_seqs."""
    tp = TopicPartition(topic or TopicNames.from_settings(settings).flagged, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        end = -1

        async def settled() -> bool:
            nonlocal end
            end = (await consumer.end_offsets([tp]))[tp]
            return end == await log_end(settings, tp)

        await eventually(settled, 30, f"no open transaction on {tp}")
        await consumer.seek_to_beginning(tp)
        flags: list[tuple[int, dict[str, Any]]] = []
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                flags.append((int(dict(record.headers)[FLAG_SEQ]), jsonutil.loads(record.value)))
        return flags
    finally:
        await consumer.stop()


async def log_end(settings: Settings, tp: TopicPartition) -> int:
    """The partition's high watermark (read_uncommitted), commit markers included."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()
