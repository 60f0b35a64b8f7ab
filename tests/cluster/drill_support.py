"""The chaos harness's drills on the clusters of issue 14: faults that break a Redis Cluster
master, a Kafka broker or one worker of three, and the one-node-versus-cluster comparison.

The drills themselves are tests/chaos/harness.py's :class:`Drill` (same workload, oracles and
judgement); only the faults differ. Each fault is a closure over the cluster it breaks, and
picks the node whose loss hurts most: the master serving most activity partitions' slots, the
broker leading most activity partitions.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stream.clients import new_admin
from stream.local.kafka_cluster import LocalKafkaCluster
from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import Settings
from stream.store.connection import redis_client
from stream.topics import TopicNames
from tests.chaos.harness import WAIT_S, Drill, Figures
from tests.support import EndOffsets, eventually

Fault = Callable[[Drill], Awaitable[None]]

#: The cluster drills' deployment: three workers on a 12-partition activity topic.
PARTITIONS = 12
WORKERS = 3
#: The share of the input folded when a fault strikes: mid-stream, the producer still sending.
STRIKE_AT = 0.4


# --- who holds what ----------------------------------------------------------------------


async def masters_by_partitions(drill: Drill) -> Counter[int]:
    """Port of each Redis master -> how many activity partitions' keys (their slot) it serves."""
    client = redis_client(drill.settings)
    try:
        await client.initialize()  # type: ignore[union-attr]  # a cluster client, checked below
        served: Counter[int] = Counter()
        for partition in range(drill.settings.activity_partitions):
            key = drill.store.keys.partition(partition).fence(drill.topics.activity)
            node = client.get_node_from_key(key)  # type: ignore[union-attr]
            served[int(node.port)] += 1
        return served
    finally:
        await client.aclose()


async def leaders_by_partitions(settings: Settings) -> Counter[int]:
    """Broker id -> how many partitions of the activity topic it leads."""
    admin = new_admin(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([TopicNames.from_settings(settings).activity])
        return Counter(int(p["leader"]) for p in described["partitions"])
    finally:
        await admin.close()


# --- the faults ----------------------------------------------------------------------------


async def one_worker_sigkilled(drill: Drill) -> None:
    """SIGKILL one of the three workers mid-stream; the other two take its partitions over
    (once the group's session timeout drops it), no replacement started. Returns once every
    partition is folded again, so that the drill's recovery time includes the takeover (the
    backlog of a third of the partitions may be under the harness's caught-up lag)."""
    await drill.reached(STRIKE_AT)
    victim = drill.alive()[0]
    drill.kill(victim)
    drill.mark_fault()
    begun = time.monotonic()
    topic, partitions = drill.topics.activity, list(range(drill.settings.activity_partitions))
    at_kill = await drill.store.load_fences(topic, partitions)
    applied = sum(f + 1 for f in at_kill.values())
    drill.figures.notes.append(f"killed 1 of {WORKERS} workers at {applied} applied")
    async with EndOffsets(drill.settings, topic) as ends:

        async def every_partition_moves() -> bool:
            end = await ends.get()
            now = await drill.store.load_fences(topic, partitions)
            return all(now[p] > at_kill[p] or now[p] + 1 == end[p] for p in partitions)

        await eventually(every_partition_moves, WAIT_S, "the killed worker's partitions taken over")
    drill.figures.notes.append(f"its partitions folded again after {time.monotonic() - begun:.1f}s")


def busiest_master_sigkilled(cluster: LocalRedisCluster) -> Fault:
    """A fault: SIGKILL the Redis master serving most activity partitions mid-stream; its
    replica is promoted (the node stays dead until the test's clusters are made whole)."""

    async def fault(drill: Drill) -> None:
        served = await masters_by_partitions(drill)
        port, partitions = served.most_common(1)[0]
        await drill.reached(STRIKE_AT)
        drill.mark_fault()
        failover = await asyncio.to_thread(cluster.kill_master, port)
        drill.figures.notes.append(
            f"master {port} ({partitions} of {PARTITIONS} partitions) killed, replica "
            f"{failover.promoted_port} promoted in {failover.seconds:.1f}s"
        )

    return fault


def busiest_broker_sigkilled(cluster: LocalKafkaCluster) -> Fault:
    """A fault: SIGKILL the broker leading most activity partitions mid-stream, while the
    input is still being produced (the node stays dead until the clusters are made whole)."""

    async def fault(drill: Drill) -> None:
        await drill.reached(STRIKE_AT)
        leaders = await leaders_by_partitions(drill.settings)
        node_id, led = leaders.most_common(1)[0]
        await asyncio.to_thread(cluster.kill_broker, node_id)
        drill.mark_fault()
        assert drill.producing is not None
        still = "" if not drill.producing.done() else "; the producer had already finished"
        drill.figures.notes.append(
            f"broker {node_id} (leader of {led} of {PARTITIONS} partitions) killed{still}"
        )

    return fault


async def no_fault(drill: Drill) -> None:
    """Nothing breaks: the 'recovery' timed is the input's catch-up from its first record."""
    drill.mark_fault()


# --- one node against the cluster ---------------------------------------------------------


async def fold_and_settle(drill: Drill) -> Figures:
    """Run the drill without a fault, wait for an analytics refresh (community flags included)
    on every worker after the flags were out, then stop the workers: nothing moves after."""
    figures = await drill.run(no_fault)
    settled = time.time() + 1.0
    took: list[float] = []

    async def refreshed() -> bool:
        took.clear()
        for worker in drill.alive():
            _, body = await asyncio.to_thread(worker.get, "/metrics")
            at = _gauge(body, "esn_analytics_last_refresh_timestamp_seconds")
            if at is None or at <= settled:
                return False
            took.append(_gauge(body, "esn_analytics_refresh_seconds") or 0.0)
        return True

    await eventually(refreshed, 90, "an analytics refresh after the flags", drill.check_alive)
    figures.notes.append(f"last analytics refresh took up to {max(took):.1f}s")
    await asyncio.gather(*(asyncio.to_thread(w.stop) for w in drill.workers))
    return figures


def _gauge(metrics: bytes, name: str) -> float | None:
    """A gauge's value in a /metrics body, or None when absent."""
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics.decode(), re.M)
    return None if found is None else float(found.group(1))


def without(value: Any, *names: str) -> Any:
    """``value`` (decoded JSON) with the keys ``names`` removed at every depth."""
    if isinstance(value, dict):
        return {k: without(v, *names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [without(v, *names) for v in value]
    return value


def first_difference(left: Any, right: Any, path: str = "") -> str | None:
    """Where two decoded JSON values first differ (a path and both sides), or None."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            if key not in left or key not in right:
                return f"{path}/{key}: only on {'right' if key not in left else 'left'}"
            found = first_difference(left[key], right[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items vs {len(right)}"
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if left == right else f"{path}: {str(left)[:200]} vs {str(right)[:200]}"


def log_dir(state: Path) -> Path:
    """Where the cluster drills' worker and API logs go."""
    return state / "logs"
