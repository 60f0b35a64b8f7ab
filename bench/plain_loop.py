"""Baseline for the benchmark: a plain aiokafka getmany loop with the worker's exact Redis writes.

No Faust, no metrics, no dead-letter sends: the floor the worker is measured against.
Run as ``python -m bench.plain_loop`` with the ESN_* settings of the run.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from stream.batch import fold_fetch
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames


async def run(settings: Settings) -> None:
    """Fold the activity topic into Redis until cancelled."""
    topic = TopicNames.from_settings(settings).activity
    store = RedisStore.from_settings(settings)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-plain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
        fetch_max_wait_ms=settings.batch_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(
                timeout_ms=settings.batch_wait_ms, max_records=settings.batch_max_records
            )
            if fetched:
                folded = fold_fetch({(tp.topic, tp.partition): rs for tp, rs in fetched.items()})
                await store.apply(folded.deltas)
    finally:
        await consumer.stop()
        await store.close()


if __name__ == "__main__":
    asyncio.run(run(Settings()))
