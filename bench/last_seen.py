"""What both last-seen peers of the ingest benchmark share: time parsing, per-user maxima, keys.

Pure and dependency-free (no ``stream`` import): bench/quix_last_seen.py runs it from the
quixstreams venv, where this package is not installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import datetime


def time_ms(iso: str) -> int:
    """Epoch milliseconds of an RFC 3339 time (``Z`` or an offset, any fraction of a second)."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def latest_per_user(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(user, epoch ms) pairs reduced to each user's latest time: one ZADD GT member each."""
    latest: dict[str, int] = {}
    for user, moment in pairs:
        if moment > latest.get(user, -1):
            latest[user] = moment
    return latest


def last_seen_key(prefix: str) -> str:
    """The sorted set of user -> last seen (epoch ms) that both peers write."""
    return f"{prefix}lastseen"


def progress_key(prefix: str) -> str:
    """The hash of partition -> highest applied offset, written with each batch.

    The peers' equivalent of the worker's offset fences: bench.ingest's timer reads it the same
    way, so everyone is timed from the first applied batch to the last.
    """
    return f"{prefix}progress"


def peer_arguments(description: str | None) -> argparse.Namespace:
    """The command line both peers take: where to read, where to write, which group."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--topic", required=True, help="the pre-produced activity topic")
    parser.add_argument("--group", required=True, help="the peer's own consumer group")
    parser.add_argument("--prefix", required=True, help="the peer's own Redis key prefix")
    parser.add_argument("--max-records", type=int, default=2000, help="records per fetch")
    parser.add_argument("--state-dir", default=".", help="where a peer may keep local files")
    return parser.parse_args()
