"""Publishing flag records from a Redis outbox to a flag topic, each exactly once.

Used for esn.users.flagged.v1 (one outbox per activity partition) and esn.communities.flagged.v1
(one outbox, partition 0).

Records of activity partition p go to partition p of the flagged topic, in outbox order, with
their sequence number in the ``esn.seq`` header. Before the first send for a partition the
publisher reads the last record of that output partition: anything up to its sequence number was
sent before a crash and is dropped from the outbox instead of being sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream import jsonutil
from stream.produce import new_producer
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.redis_store import text
from stream.topics import FLAG_SEQ, TopicNames

log = logging.getLogger(__name__)

_BATCH = 1000


class FlagPublisher:
    """Drains per-partition outboxes; the caller serialises calls per partition."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        topic: str | None = None,
        outbox: Callable[[int], str] | None = None,
        key_field: str = "user_id",
    ) -> None:
        self.settings = settings
        self.topic = topic or TopicNames.from_settings(settings).flagged
        self.store = store
        self.outbox = outbox or store.keys.outbox
        self.key_field = key_field
        # Its own idempotent producer: records are enqueued one by one in outbox order, which
        # aiokafka keeps per partition (Faust's buffered send reordered the first records).
        self.producer = new_producer(settings)
        self.published: dict[int, int] = {}

    async def start(self) -> None:
        """Connect the producer."""
        await self.producer.start()

    async def stop(self) -> None:
        """Flush and close the producer."""
        await self.producer.stop()

    def forget(self, partition: int) -> None:
        """Another worker owns the partition now: re-read the topic's tail if it comes back."""
        self.published.pop(partition, None)

    async def publish(self, partition: int) -> list[dict[str, Any]]:
        """Send every pending record of one partition; returns what was sent."""
        outbox = self.outbox(partition)
        if partition not in self.published:
            self.published[partition] = await self.last_published_seq(partition)
        sent: list[dict[str, Any]] = []
        try:
            while True:
                entries = [text(e) for e in await self.store.client.lrange(outbox, 0, _BATCH - 1)]
                if not entries:
                    return sent
                pending, last_seq = [], self.published[partition]
                for entry in entries:
                    seq_text, record = entry.split("\t", 1)
                    seq = int(seq_text)
                    if seq <= last_seq:
                        continue  # sent before a crash, trimmed only now
                    doc = jsonutil.loads(record)
                    pending.append(
                        await self.producer.send(
                            self.topic,
                            record.encode(),
                            key=doc[self.key_field].encode(),
                            partition=partition,
                            headers=[(FLAG_SEQ, seq_text.encode())],
                        )
                    )
                    sent.append(doc)
                    last_seq = seq
                await asyncio.gather(*pending)
                self.published[partition] = last_seq
                await self.store.client.ltrim(outbox, len(entries), -1)
        except BaseException:
            # Some records may have reached the broker: re-read the topic's tail before the
            # next attempt rather than guess, so that nothing is sent twice or skipped.
            self.forget(partition)
            raise

    async def last_published_seq(self, partition: int) -> int:
        """The ``esn.seq`` of the last record in the output partition (0 when empty)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap)
        await consumer.start()
        await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return 0
            consumer.seek(tp, end - 1)
            for _ in range(20):
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    return int(dict(record.headers)[FLAG_SEQ])
            raise RuntimeError(f"could not read the last record of {self.topic}[{partition}]")
        finally:
            await consumer.stop()
