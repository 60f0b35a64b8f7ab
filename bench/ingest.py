"""Ingest benchmark: the worker against a plain aiokafka loop (and a naive Faust agent), same run.

Every contender reads the same pre-produced topic with its own consumer group and Redis prefix,
as its own process; throughput is timed by polling the Redis offset fences from outside, from the
first applied batch to the last, so every contender is measured the same way.

    python -m bench.ingest [--events 500000] [--users 20000] [--skip-naive]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.memory_figures import key_kind
from bench.redis_nodes import redis_nodes
from bench.workload import (
    InputFigures,
    drop_topics,
    generated_records,
    input_figures,
    record_actor_times,
)
from stream import jsonutil
from stream.flags.machine import definitions_from
from stream.flags.release import InactivitySweeper
from stream.generator import live_events
from stream.kafka_admin import ensure_topics
from stream.produce import new_producer
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.support import free_port, produce_raw, settings_env

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Throughput:
    """One contender's run."""

    name: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def contender_settings(base: Settings, tag: str, **extra: object) -> Settings:
    return base.model_copy(
        update={"redis_prefix": f"{base.topic_prefix}{tag}:", "app_id": f"bench-{tag}", **extra}
    )


async def time_fold(settings: Settings, command: list[str], total: int, name: str) -> Throughput:
    """Start ``command``, time first-to-last applied batch by polling the fences, stop it."""
    topic = TopicNames.from_settings(settings).activity
    partitions = list(range(settings.activity_partitions))
    store = RedisStore.from_settings(settings)
    log = (settings.state_dir / f"bench-{name}.log").open("wb")
    proc = subprocess.Popen(command, env=settings_env(settings), stdout=log, stderr=log, cwd=REPO)
    try:
        started_at = None
        applied_at_start = 0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log.name}")
            fences = await store.load_fences(topic, partitions)
            applied = sum(f + 1 for f in fences.values())
            now = time.perf_counter()
            if started_at is None and applied > 0:
                started_at, applied_at_start = now, applied
            if applied >= total:
                assert started_at is not None
                return Throughput(name, total - applied_at_start, now - started_at)
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{name} did not finish in time")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        await store.close()


async def release_all(settings: Settings) -> tuple[int, float]:
    """Release everything the worker buffered, as its sweep would, and time it."""
    store = RedisStore.from_settings(settings)
    sweeper = InactivitySweeper(store, definitions_from(settings))
    now_ms = int(time.time() * 1000)
    released = 0
    started = time.perf_counter()
    try:
        for partition in range(settings.activity_partitions):
            while True:
                result = await sweeper.release(partition, now_ms)
                released += result.changes
                if result.complete:
                    break
    finally:
        await store.close()
    return released, time.perf_counter() - started


async def user_memory(settings: Settings, figures: InputFigures) -> tuple[float, int, float, float]:
    """Bytes of Redis per user for user records, users, bytes per user-day of the daily active
    sets, and bytes per user of everything under the deployment's prefix (analytics included).

    Server-side (MEMORY USAGE over a SCAN of the prefix, see bench/redis_nodes.py), attributed by
    key name whatever the layout; users and user-days are counted from the input.
    """
    async with redis_nodes(settings) as nodes:
        usage = await nodes.key_usage(settings.redis_prefix)
    by_kind: Counter[str] = Counter()
    for key, size in usage.items():
        by_kind[key_kind(key, settings.redis_prefix)] += size
    users = max(figures.users, 1)
    return (
        by_kind["u1"] / users,
        figures.users,
        by_kind["day"] / max(figures.user_days, 1),
        sum(usage.values()) / users,
    )


async def latency(base: Settings, rate: float, seconds: float, users: int) -> dict[str, float]:
    """Event-to-Redis latency at a fixed rate, from the worker's own lag histogram."""
    settings = contender_settings(
        base, "latency", topic_prefix=base.topic_prefix + "lat.", web_port=free_port()
    )
    await ensure_topics(settings)
    log = (settings.state_dir / "bench-latency.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=settings_env(settings),
        stdout=log,
        stderr=log,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{settings.web_port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        stream = live_events(users)
        # Warm up first (script load, first fetches, lazy imports), then measure the difference
        # of two scrapes so that only the steady state counts.
        await send_live(settings, stream, rate, int(rate * 2))
        await asyncio.sleep(1)
        before = lag_buckets(scrape(url))
        await send_live(settings, stream, rate, int(rate * seconds))
        await asyncio.sleep(2)
        after = lag_buckets(scrape(url))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    buckets = [(bound, count - before[i][1]) for i, (bound, count) in enumerate(after)]
    return {q: histogram_quantile(q, buckets) for q in (0.5, 0.99)}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def lag_buckets(exposition: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the worker's event lag histogram."""
    buckets = []
    for line in exposition.splitlines():
        if line.startswith("esn_event_lag_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            buckets.append((upper, float(line.split()[-1])))
    return buckets


async def send_live(
    settings: Settings, stream: Iterator[dict[str, Any]], rate: float, count: int
) -> None:
    """Send ``count`` events at ``rate``, each stamped with the wall clock as it is sent."""
    topic = TopicNames.from_settings(settings).activity
    producer = new_producer(settings)
    await producer.start()
    try:
        started = time.monotonic()
        for sent in range(1, count + 1):
            event = next(stream)
            event["time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
            await producer.send(topic, jsonutil.dumps(event), key=event["actor"].encode())
            if sent % 10 == 0:  # small steps: bursts would show up as latency
                ahead = sent / rate - (time.monotonic() - started)
                await asyncio.sleep(max(0.0, ahead))
        await producer.flush()
    finally:
        await producer.stop()


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(
                count - lower_count, 1e-9
            )
        lower_bound, lower_count = bound, count
    return lower_bound


async def drop_keys(settings: Settings, prefix: str) -> None:
    store = RedisStore.from_settings(settings)
    try:
        async for key in store.client.scan_iter(match=prefix + "*", count=2000):
            await store.client.delete(key)
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:6]
    base = Settings().model_copy(
        update={
            "topic_prefix": f"bench{run}.",
            "daily_active_retention_days": 3650,
            "user_buckets": max(1, args.users // 64),
        }
    )
    await asyncio.to_thread(LocalStack(base).up)
    print(f"# ESN Pulse ingest benchmark (run {run}) on {base.kafka_bootstrap}")
    events = generated_records(args.events, args.users, args.days)
    total = len(events)
    t = time.perf_counter()
    await produce_raw(base, events)
    print(f"produced {total} events of {args.users} users in {time.perf_counter() - t:.1f}s")

    runs: list[Throughput] = []
    contenders = [
        ("plain aiokafka loop", "plain", [sys.executable, "-m", "bench.plain_loop"]),
        ("esn-pulse worker", "worker", [sys.executable, "-m", "stream.cli", "worker"]),
    ]
    if not args.skip_naive:
        contenders.append(
            ("naive Faust agent", "naive", [sys.executable, "-m", "bench.naive_faust"])
        )
    for name, tag, command in contenders:
        # The fold is compared like for like: the worker's inactivity sweep is held back here
        # and measured on its own below.
        settings = contender_settings(base, tag, web_port=free_port(), sweep_interval_seconds=3600)
        result = await time_fold(settings, command, total, name)
        runs.append(result)
        print(
            f"{name:22} {result.per_second:10,.0f} events/s  "
            f"({result.events} in {result.seconds:.2f}s)"
        )
    plain, worker = runs[0], runs[1]
    print(f"worker / plain ratio   {worker.per_second / plain.per_second:10.2f}   (target >= 0.80)")
    if len(runs) > 2:
        print(f"worker / naive Faust   {worker.per_second / runs[2].per_second:10.1f}x")

    released, seconds = await release_all(contender_settings(base, "worker"))
    print(
        f"inactivity release       {released / seconds:10,.0f} changes/s"
        f"  ({released} buffered changes through the state machine in {seconds:.2f}s)"
    )
    figures = input_figures(record_actor_times(events))
    memory = await user_memory(contender_settings(base, "worker"), figures)
    per_user, users, per_user_day, everything = memory
    print(f"redis per user         {per_user:10.1f} bytes  ({users} users; target <= 150)")
    print(f"redis per user-day     {per_user_day:10.1f} bytes  (daily active sets)")
    print(f"redis all state/user   {everything:10.1f} bytes  (every key of the deployment)")

    lat = await latency(base, args.rate, args.latency_seconds, args.users)
    print(
        f"event-to-Redis latency at {args.rate:,.0f} events/s: "
        f"p50 {lat[0.5] * 1000:.0f} ms, p99 {lat[0.99] * 1000:.0f} ms  (target p99 <= 250 ms)"
    )
    for tag in ("plain", "worker", "naive", "latency"):
        await drop_keys(base, f"{base.topic_prefix}{tag}:")
    await drop_topics(base, f"bench{run}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--skip-naive", action="store_true")
    asyncio.run(main(parser.parse_args()))
