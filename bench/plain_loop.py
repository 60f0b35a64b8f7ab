"""Baseline for the benchmark: a plain aiokafka getmany loop with the worker's exact Redis writes.

No Faust, no metrics, no dead-letter sends: the floor the worker is measured against.
Run as ``python -m bench.plain_loop`` with the ESN_* settings of the run.
"""

from __future__ import annotations

import asyncio

from stream.batch import fold_fetch
from stream.ingest import new_activity_consumer
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames


async def run(settings: Settings) -> None:
    """Fold the activity topic into Redis until cancelled."""
    topic = TopicNames.from_settings(settings).activity
    store = RedisStore.from_settings(settings)
    # The worker's own consumer settings, so that only the loop around it differs.
    consumer = new_activity_consumer(settings)
    consumer.subscribe([topic])
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
