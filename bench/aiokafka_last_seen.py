"""Peer of the ingest benchmark: a plain aiokafka + orjson loop that keeps only per-user last-seen.

Per fetch: decode each record, parse its ISO time, keep each user's latest, then one MULTI of
ZADD GT (per partition batch) and the partition's progress offset. No validation, no dead
letters, no analytics: the simplest useful fold, the ceiling the worker is measured against.

    python -m bench.aiokafka_last_seen --bootstrap H:P --redis-url URL --topic T --group G \
        --prefix P
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from bench.last_seen import (
    last_seen_key,
    latest_per_user,
    peer_arguments,
    progress_key,
    time_ms,
)


async def run(args: argparse.Namespace) -> None:
    """Fold the topic's last-seen times into Redis until cancelled."""
    client = aioredis.Redis.from_url(args.redis_url)
    # The worker's fetch sizes (stream/ingest.py), so that the loop around it is what differs.
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=args.max_records,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    seen, progress = last_seen_key(args.prefix), progress_key(args.prefix)
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            if not fetched:
                continue
            async with client.pipeline(transaction=True) as pipe:
                for tp, records in fetched.items():
                    latest = latest_per_user(
                        (record.key.decode(), time_ms(orjson.loads(record.value)["time"]))
                        for record in records
                    )
                    pipe.zadd(seen, latest, gt=True)
                    pipe.hset(progress, str(tp.partition), records[-1].offset)
                await pipe.execute()
    finally:
        await consumer.stop()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(run(peer_arguments(__doc__)))
