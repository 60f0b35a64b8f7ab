"""Peer of the ingest benchmark: a quixstreams app that keeps only per-user last-seen.

A StreamingDataFrame parses each event's ISO time; a BatchingSink writes, per partition batch
(quixstreams flushes sinks at each checkpoint), one MULTI of ZADD GT of each user's latest time
and the partition's progress offset. Runs from .venv/quix (see pyproject's bench-quix group):

    .venv/quix/bin/python -m bench.quix_last_seen --bootstrap H:P --redis-url URL --topic T ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import redis
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

from bench.last_seen import last_seen_key, latest_per_user, peer_arguments, progress_key, time_ms

#: Seconds between checkpoints, hence between sink flushes. quixstreams' default is 5 s; 1 s
#: keeps the timer's resolution (first to last applied batch) near the other contenders' while
#: batches stay large (thousands of records per partition at this rate).
COMMIT_INTERVAL_SECONDS = 1.0


class LastSeenSink(BatchingSink):
    """ZADD GT of each user's latest time and the partition's progress, one MULTI per batch."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        super().__init__()
        self.client = redis.Redis.from_url(redis_url)
        self.seen, self.progress = last_seen_key(prefix), progress_key(prefix)

    def write(self, batch: SinkBatch) -> None:
        latest = latest_per_user((item.key, item.value) for item in batch)
        last_offset = max(item.offset for item in batch)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.seen, latest, gt=True)  # type: ignore[arg-type]
            pipe.hset(self.progress, str(batch.partition), last_offset)
            pipe.execute()


def run(args: argparse.Namespace) -> None:
    """Run the app until terminated."""
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_SECONDS,
        state_dir=str(Path(args.state_dir) / "quix-state"),
        auto_create_topics=False,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    frame = app.dataframe(topic)
    frame = frame.apply(_event_time_ms)
    frame.sink(LastSeenSink(args.redis_url, args.prefix))
    app.run()


def _event_time_ms(event: dict[str, Any]) -> int:
    return time_ms(event["time"])


if __name__ == "__main__":
    run(peer_arguments(__doc__))
