"""Cost that grows with the work, not the population: one sweep with few changes, one analytics
refresh and one /api/v1/summary, timed and counted in Redis commands, at a given population.

A state of N users is loaded through the worker's own code in this process (the directory
folder, then the activity fold and the store's fenced apply, partitioned as Kafka's producers
would), its reorder buffer is released and its flags published; then a hundred users are active
now, and the sweep that follows, a refresh and a summary read are measured. Redis commands are
INFO commandstats deltas summed over the masters (commands run inside Lua scripts included).

    python -m bench.population [--users 20000,200000] [--days 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from bench.population_load import activate_now, load_population, release_all
from bench.redis_nodes import RedisNodes, redis_nodes
from bench.workload import drop_topics
from stream.analytics.refresh import AnalyticsRefresher
from stream.flags.cycle import FlagCycle
from stream.flags.machine import definitions_from
from stream.kafka_admin import ensure_topics
from stream.metrics import PipelineMetrics
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.support import free_port, settings_env

#: Users active "now" before the measured sweep: the few changes it has to release.
CHANGED_USERS = 100
#: INFO is how we count; its own calls are not the operation's.
_UNCOUNTED = frozenset({"cmdstat_info"})


@dataclass(frozen=True)
class Operation:
    """One measured operation: wall time, Redis commands and the servers' time in them."""

    name: str
    seconds: float
    commands: int
    server_ms: float
    detail: str


@dataclass
class PopulationFigures:
    """What one population's run measured."""

    users: int
    events: int
    load_seconds: float
    operations: list[Operation] = field(default_factory=list)


def command_deltas(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, tuple[int, float]]:
    """command -> (calls, usec) made between two INFO commandstats reads (INFO left out)."""
    deltas = {}
    for name, stats in after.items():
        if name in _UNCOUNTED:
            continue
        old = before.get(name, {})
        calls = int(stats.get("calls", 0) - old.get("calls", 0))
        if calls:
            usec = stats.get("usec", 0) - old.get("usec", 0)
            deltas[name.removeprefix("cmdstat_")] = (calls, usec)
    return deltas


async def commandstats(nodes: RedisNodes) -> dict[str, dict[str, float]]:
    """INFO commandstats summed over the masters."""
    total: dict[str, dict[str, float]] = {}
    for _, client in nodes.masters:
        for name, stats in (await client.info("commandstats")).items():
            row = total.setdefault(name, {"calls": 0.0, "usec": 0.0})
            row["calls"] += float(stats["calls"])
            row["usec"] += float(stats["usec"])
    return total


async def measured(
    nodes: RedisNodes, name: str, operation: Callable[[], Awaitable[str]]
) -> Operation:
    """Run ``operation`` once; its wall time and the Redis commands it caused."""
    before = await commandstats(nodes)
    started = time.perf_counter()
    detail = await operation()
    seconds = time.perf_counter() - started
    deltas = command_deltas(before, await commandstats(nodes))
    calls = sum(c for c, _ in deltas.values())
    server_ms = sum(u for _, u in deltas.values()) / 1000
    busiest = sorted(deltas.items(), key=lambda kv: -kv[1][0])[:3]
    top = " ".join(f"{cmd} {c}" for cmd, (c, _) in busiest)
    return Operation(name, seconds, calls, server_ms, f"{detail}; server {server_ms:.1f} ms; {top}")


async def measure_population(base: Settings, users: int, days: int) -> PopulationFigures:
    """Load ``users`` people into a fresh prefix, measure a sweep, a refresh and a summary."""
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(
        update={
            "topic_prefix": f"{base.topic_prefix}pop{tag}.",
            "redis_prefix": f"{base.topic_prefix}pop{tag}:",
            "app_id": f"bench-pop{tag}",
            "user_buckets": max(1, users // (64 * base.activity_partitions)),
            "api_port": free_port(),
            "api_cache_seconds": 0.0,
        }
    )
    await ensure_topics(settings)
    store = RedisStore.from_settings(settings)
    metrics = PipelineMetrics(CollectorRegistry())
    cycle = FlagCycle(settings, store, metrics)
    refresher = AnalyticsRefresher(settings, store, metrics, definitions_from(settings))
    topic = TopicNames.from_settings(settings).activity
    owned = [TopicPartition(topic, p) for p in range(settings.activity_partitions)]
    lock = asyncio.Lock()
    api: subprocess.Popen[bytes] | None = None
    try:
        async with redis_nodes(settings) as nodes:
            started = time.perf_counter()
            events = await load_population(settings, store, users, days)
            await release_all(settings, store, int(time.time() * 1000))
            await cycle.start()
            # The backlog's flags are published and the first refresh done before measuring:
            # what is measured is the steady state, a sweep and a refresh among many.
            await cycle.sweep(lambda: owned, lock, lambda: False)
            await refresher.refresh(evaluate_communities=True)
            figures = PopulationFigures(users, events, time.perf_counter() - started)

            changed = await activate_now(settings, store, CHANGED_USERS)

            async def sweep() -> str:
                await cycle.sweep(lambda: owned, lock, lambda: False)
                return f"{changed} users active again"

            async def refresh() -> str:
                await refresher.refresh(evaluate_communities=True)
                return "gauges and community flags"

            api = start_api(settings)
            api_url = f"http://127.0.0.1:{settings.api_port}"
            await wait_answering(api_url + "/health", api)
            # One cheap request first: the process's first pays its lazy imports.
            await asyncio.to_thread(get, api_url + "/api/v1/trends?metric=dau")
            url = api_url + "/api/v1/summary"

            async def summary() -> str:
                body = await asyncio.to_thread(get, url)
                return f"{len(body)} B, cache off"

            for name, operation in (("sweep", sweep), ("refresh", refresh), ("summary", summary)):
                figures.operations.append(await measured(nodes, name, operation))
            await nodes.delete(settings.redis_prefix)
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=60)
        await cycle.stop()
        await refresher.stop()
        await store.close()
        await drop_topics(settings, settings.topic_prefix)
    return figures


def start_api(settings: Settings) -> subprocess.Popen[bytes]:
    """``esn-pulse api`` on the population's prefix (loopback, no tokens)."""
    log = (settings.state_dir / "bench-population-api.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "api"],
        env=settings_env(settings),
        stdout=log,
        stderr=log,
    )


async def wait_answering(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    """Until ``url`` answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"esn-pulse api exited with {proc.returncode}")
        try:
            await asyncio.to_thread(get, url)
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f}s")


def get(url: str) -> bytes:
    """The body of a GET."""
    with urllib.request.urlopen(url, timeout=900) as response:
        return bytes(response.read())


def population_lines(runs: list[PopulationFigures]) -> list[str]:
    """One line per (operation, population), then each operation's growth between them."""
    lines = []
    for run in runs:
        for op in run.operations:
            lines.append(
                f"{op.name:8} at {run.users:>7,} users   {op.seconds * 1000:9.1f} ms  "
                f"{op.commands:>8,} Redis commands  ({op.detail})"
            )
    if len(runs) >= 2:
        small, large = runs[0], runs[-1]
        growth = large.users / max(small.users, 1)
        for a, b in zip(small.operations, large.operations, strict=True):
            lines.append(
                f"{a.name:8} {large.users // max(small.users, 1)}x users:  time "
                f"{b.seconds / max(a.seconds, 1e-9):5.1f}x, commands "
                f"{b.commands / max(a.commands, 1):5.1f}x  (O(users) would be ~{growth:.0f}x)"
            )
    return lines


async def main(args: argparse.Namespace) -> None:
    base = Settings().model_copy(update={"topic_prefix": f"benchpop{uuid.uuid4().hex[:6]}."})
    await asyncio.to_thread(LocalStack(base).up)
    print(f"# ESN Pulse population benchmark on {base.redis_url}")
    runs = [await measure_population(base, users, args.days) for users in args.users]
    for run in runs:
        print(f"loaded {run.users:,} users ({run.events:,} events) in {run.load_seconds:.1f}s")
    for line in population_lines(runs):
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--users", type=lambda s: [int(p) for p in s.split(",")], default=[20_000, 200_000]
    )
    parser.add_argument("--days", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
