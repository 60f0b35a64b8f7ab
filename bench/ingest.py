"""Ingest benchmark (issue 15): the worker against its peers on one topic, latency under load,
Redis bytes per user, and what a sweep, a refresh and a summary read cost at two populations.

Every contender reads the same pre-produced topic with its own consumer group and Redis prefix,
as its own process, and is timed the same way (bench/contenders.py): from its first applied
batch to its last, as Redis shows them. The run ends with a summary block of every figure.

    python -m bench.ingest [--events 500000] [--users 20000] [--populations 20000,200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from bench.contenders import (
    Throughput,
    contender_settings,
    contenders,
    fence_progress,
    peer_progress,
    time_fold,
)
from bench.latency import LatencyFigures, measure_latency, read_summary
from bench.memory_figures import category_of, key_kind
from bench.population import measure_population, population_lines
from bench.population_load import release_all
from bench.redis_nodes import redis_nodes
from bench.workload import (
    InputFigures,
    drop_topics,
    generated_records,
    input_figures,
    record_actor_times,
)
from stream.flags.publisher import FlagPublisher
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from tests.support import free_port, produce_raw

T = TypeVar("T")

#: Issue 15's targets, printed beside the figures they judge.
TARGET_QUIX_RATIO = 1.0
TARGET_PLAIN_LAST_SEEN_RATIO = 0.5
TARGET_P99_SECONDS = 0.25
TARGET_STALL_SECONDS = 0.1
TARGET_ALL_STATE_PER_USER = 1024
TARGET_CORE_RECORD_PER_USER = 150


@dataclass(frozen=True)
class StateMemory:
    """MEMORY USAGE of a deployment's keys, by key kind, and the users of its input."""

    by_kind: dict[str, int]
    users: int
    user_days: int

    def per_user(self, kinds: set[str] | None = None) -> float:
        """Bytes per user of ``kinds`` (every key when None)."""
        chosen = (v for k, v in self.by_kind.items() if kinds is None or k in kinds)
        return sum(chosen) / max(self.users, 1)

    def by_category(self) -> dict[str, int]:
        """Bytes per category of bench/memory_figures.py (per-user, user-day, per-day...)."""
        totals: Counter[str] = Counter()
        for kind, size in self.by_kind.items():
            totals[category_of(kind)] += size
        return dict(totals)


async def release_timed(settings: Settings) -> tuple[int, float]:
    """Release everything the worker buffered, as its sweep would, and time it."""
    store = RedisStore.from_settings(settings)
    started = time.perf_counter()
    try:
        released = await release_all(settings, store, int(time.time() * 1000))
    finally:
        await store.close()
    return released, time.perf_counter() - started


async def publish_flags(settings: Settings) -> int:
    """Send every flag record the release left in the outboxes, as the worker's sweep does."""
    store = RedisStore.from_settings(settings)
    publisher = FlagPublisher(settings, store)
    await publisher.start()
    try:
        sent = 0
        for partition in range(settings.activity_partitions):
            sent += len(await publisher.publish(partition))
        return sent
    finally:
        await publisher.stop()
        await store.close()


async def state_memory(settings: Settings, figures: InputFigures) -> StateMemory:
    """Server-side bytes of every key under the deployment's prefix (bench/redis_nodes.py),
    attributed by key name whatever the layout; users and user-days are counted from the input."""
    async with redis_nodes(settings) as nodes:
        usage = await nodes.key_usage(settings.redis_prefix)
    by_kind: Counter[str] = Counter()
    for key, size in usage.items():
        by_kind[key_kind(key, settings.redis_prefix)] += size
    return StateMemory(dict(by_kind), figures.users, figures.user_days)


async def drop_keys(settings: Settings, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    async with redis_nodes(settings) as nodes:
        await nodes.delete(prefix)


def ratio_line(label: str, worker: Throughput, peer: Throughput | None, target: float) -> str:
    """``worker / peer`` with its target and whether it is met."""
    if peer is None or not peer.per_second:
        return f"{label:34} n/a"
    value = worker.per_second / peer.per_second
    verdict = "met" if value >= target else "NOT met"
    return f"{label:34} {value:6.2f}   (target >= {target:.1f}: {verdict})"


def latency_lines(lat: LatencyFigures) -> list[str]:
    """p50/p99 against the target, and the event loop's stalls."""
    verdict = "met" if lat.p99 <= TARGET_P99_SECONDS else "NOT met"
    lag = "n/a" if lat.loop_lag_max is None else f"{lat.loop_lag_max * 1000:.0f} ms"
    stalls = "n/a" if lat.stalls_over_100ms is None else str(lat.stalls_over_100ms)
    return [
        f"event-to-Redis at {lat.rate:,.0f} events/s   p50 {lat.p50 * 1000:.0f} ms, "
        f"p99 {lat.p99 * 1000:.0f} ms  (target p99 <= {TARGET_P99_SECONDS * 1000:.0f} ms: "
        f"{verdict}; {lat.events} events)",
        f"loop lag max                       {lag} (esn_event_loop_lag_max_seconds, last 60 s); "
        f"stalls over {TARGET_STALL_SECONDS * 1000:.0f} ms in the run: {stalls} (target 0)",
        f"reads during the run               {read_summary(lat)}",
    ]


def memory_lines(memory: StateMemory) -> list[str]:
    """Bytes per user: all state, the core record, and the split by category."""
    everything = memory.per_user()
    core = memory.per_user({"u1"})
    verdict = "met" if everything <= TARGET_ALL_STATE_PER_USER else "NOT met"
    core_verdict = "met" if core <= TARGET_CORE_RECORD_PER_USER else "NOT met"
    split = ", ".join(
        f"{category} {size / max(memory.users, 1):.0f}"
        for category, size in sorted(memory.by_category().items(), key=lambda kv: -kv[1])
    )
    kinds = sorted(memory.by_kind.items(), key=lambda kv: -kv[1])[:8]
    top = ", ".join(f"{kind} {size / max(memory.users, 1):.0f}" for kind, size in kinds)
    return [
        f"redis all state per user           {everything:8.0f} B  ({memory.users} users; "
        f"target <= {TARGET_ALL_STATE_PER_USER}: {verdict})",
        f"redis core record per user (u1)    {core:8.0f} B  "
        f"(target <= {TARGET_CORE_RECORD_PER_USER}: {core_verdict})",
        f"  by category, B per user          {split}",
        f"  largest key kinds, B per user    {top}",
    ]


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:6]
    base = Settings().model_copy(
        update={
            "topic_prefix": f"bench{run}.",
            "daily_active_retention_days": 3650,
            "user_buckets": max(1, args.users // (64 * Settings().activity_partitions)),
        }
    )
    await asyncio.to_thread(LocalStack(base).up)
    print(f"# ESN Pulse ingest benchmark (run {run}) on {base.kafka_bootstrap}")
    events = generated_records(args.events, args.users, args.days)
    total = len(events)
    t = time.perf_counter()
    await produce_raw(base, events)
    partitions = base.activity_partitions
    print(
        f"produced {total} events of {args.users} users on {partitions} partitions "
        f"in {time.perf_counter() - t:.1f}s"
    )

    runs: dict[str, Throughput] = {}
    failures: dict[str, str] = {}
    try:
        for contender in contenders(base, args.skip_naive):
            # The fold is compared like for like: the worker's inactivity sweep is held back
            # here and measured on its own below.
            settings = contender_settings(
                base, contender.tag, web_port=free_port(), sweep_interval_seconds=3600
            )
            progress = peer_progress(settings) if contender.peer else fence_progress(settings)
            result = await time_fold(settings, contender.command, total, contender.name, progress)
            runs[contender.tag] = result
            print(
                f"{contender.name:26} {result.per_second:10,.0f} events/s  "
                f"({result.events} in {result.seconds:.2f}s)"
            )

        worker_settings = contender_settings(base, "worker")
        released, seconds = await release_timed(worker_settings)
        print(
            f"inactivity release         {released / max(seconds, 1e-9):10,.0f} changes/s"
            f"  ({released} buffered changes through the state machine in {seconds:.2f}s)"
        )
        published = await publish_flags(worker_settings)
        print(
            f"flag records published       {published:10}  (the outboxes emptied, as a sweep does)"
        )
        # After the release and the publishing: the reorder buffer and the outboxes are
        # drained, so what remains is the steady state.
        memory = await state_memory(worker_settings, input_figures(record_actor_times(events)))
        report(memory_lines(memory))
        # Each stage on its own: one that fails (a worker that does not start, an API error) is
        # said in the summary and the exit status, and the figures of the others are kept.
        lat = await stage(
            "latency", failures, measure_latency(base, args.rate, args.latency_seconds, args.users)
        )
        if lat is not None:
            report(latency_lines(lat))
        scaling = []
        for users in args.populations:
            loaded = await stage(
                f"population of {users:,}",
                failures,
                measure_population(base, users, args.population_days),
            )
            if loaded is not None:
                scaling.append(loaded)
                print(
                    f"population of {users:,} users: {loaded.events:,} events loaded in "
                    f"{loaded.load_seconds:.1f}s, then measured"
                )
    finally:
        for tag in ("plain", "worker", "naive", "quix", "aiolast", "latency"):
            await drop_keys(base, f"{base.topic_prefix}{tag}:")
        await drop_topics(base, f"bench{run}")

    worker = runs["worker"]
    print()
    print(f"## Summary (one run, {total} events of {args.users} users, {partitions} partitions)")
    for result in runs.values():
        print(f"{result.name:34} {result.per_second:10,.0f} events/s")
    print(ratio_line("worker / quixstreams last-seen", worker, runs.get("quix"), TARGET_QUIX_RATIO))
    print(
        ratio_line(
            "worker / aiokafka last-seen", worker, runs.get("aiolast"), TARGET_PLAIN_LAST_SEEN_RATIO
        )
    )
    print(ratio_line("worker / plain loop (same writes)", worker, runs.get("plain"), 0.8))
    report(latency_lines(lat) if lat is not None else [f"latency: FAILED ({failures['latency']})"])
    report(memory_lines(memory))
    report(population_lines(scaling))
    for name, error in failures.items():
        if name != "latency":
            print(f"{name}: FAILED ({error})")
    if failures:
        raise SystemExit(1)


def report(lines: list[str]) -> None:
    """Print each line."""
    for line in lines:
        print(line, flush=True)


async def stage(name: str, failures: dict[str, str], work: Awaitable[T]) -> T | None:
    """Await ``work``; on an error, its traceback on stderr, one line in ``failures``, None."""
    try:
        return await work
    except Exception as exc:
        traceback.print_exc()
        failures[name] = f"{type(exc).__name__}: {exc}"[:300]
        print(f"{name}: FAILED ({failures[name]})", flush=True)
        return None


def populations(text: str) -> list[int]:
    """``20000,200000`` -> [20000, 200000]; an empty string: none."""
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--populations", type=populations, default=[20_000, 200_000])
    parser.add_argument("--population-days", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    asyncio.run(main(parser.parse_args()))
