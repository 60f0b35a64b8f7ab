"""Scaling and memory benchmark: 1, 2 and 3 workers against one Redis and a Redis Cluster.

One topic of 12 partitions is produced once; each (target, workers) combination then folds it
from the start under a fresh key prefix and consumer group, timed by the Redis fences, and the
deployment's Redis memory is read from the servers (see bench/redis_nodes.py). On a 2-core machine
that also runs the broker and Redis, more workers show the overhead of sharing, not a speed-up.

    python -m bench.scaling [--events 500000] [--users 20000] [--workers 1,2,3]
                            [--targets redis,cluster] [--cluster-port PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bench.memory_figures import MemoryFigures, memory_figures
from bench.redis_nodes import redis_nodes
from bench.sizing import SizingBasis, human_bytes, sizing_row
from bench.worker_fleet import FleetRun, WorkerFailed, fleet_settings, time_fleet
from bench.workload import (
    InputFigures,
    drop_topics,
    generated_records,
    input_figures,
    record_actor_times,
)
from stream.local.processes import StackError
from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import Settings
from stream.stack import LocalStack
from stream.topics import TopicNames
from tests.support import EndOffsets, free_port, produce_raw

TARGETS = {"redis": "one Redis", "cluster": "Redis Cluster"}
#: Deployment sizes of the sizing table: (users, events a day). 25 events per user a day is a
#: busy intranet that counts page views; the last row has four times that.
SIZES = (
    (20_000, 500_000),
    (100_000, 2_500_000),
    (500_000, 12_500_000),
    (1_000_000, 25_000_000),
    (1_000_000, 100_000_000),
)


@dataclass(frozen=True)
class Combination:
    """One (target, workers) run: its timing and the memory it left."""

    target: str
    run: FleetRun
    memory: MemoryFigures


def ratio(value: float, reference: float) -> float:
    """``value`` over ``reference``; 0 when there is no reference."""
    return value / reference if reference else 0.0


@asynccontextmanager
async def redis_target(
    name: str, base: Settings, cluster_port: int
) -> AsyncIterator[tuple[Settings, str]]:
    """Settings pointing at the target's Redis, and how its memory is summed.

    The cluster is a local one of its own (3 masters, 3 replicas from ``cluster_port`` on),
    started here and wiped afterwards.
    """
    if name == "redis":
        yield base, "one server"
        return
    cluster = LocalRedisCluster(base.state_dir / "bench-cluster", cluster_port)
    try:
        seconds = await asyncio.to_thread(cluster.up)
    except StackError as exc:
        raise TargetUnavailable(f"the local Redis Cluster did not start: {exc}") from exc
    try:
        settings = base.model_copy(update={"redis_url": cluster.url})
        async with redis_nodes(settings) as nodes:
            masters = nodes.names
        print(f"Redis Cluster up in {seconds:.1f}s: masters {', '.join(masters)}")
        yield settings, f"summed over the {len(masters)} masters, replicas excluded"
    finally:
        await asyncio.to_thread(cluster.wipe)


class TargetUnavailable(RuntimeError):
    """A target that cannot be run here (said in one line, the other targets still run)."""


async def run_combination(
    settings: Settings,
    target: str,
    workers: int,
    ends: dict[int, int],
    figures: InputFigures,
    timeout: float,
) -> Combination:
    """Fresh prefix and group, N workers until every fence is at its end, then the memory."""
    tag = f"{target}{workers}"
    deployment = settings.model_copy(
        update={
            "redis_prefix": f"{settings.topic_prefix}{tag}:",
            "app_id": f"bench-{settings.topic_prefix.rstrip('.')}-{tag}",
        }
    )
    async with redis_nodes(deployment) as nodes:
        await nodes.delete(deployment.redis_prefix)
        before = await nodes.used_memory()
        fleet = fleet_settings(deployment, workers, [free_port() for _ in range(workers)])
        try:
            run = await time_fleet(fleet, ends, f"bench-scaling-{tag}", timeout)
            after = await nodes.used_memory()
            usage = await nodes.key_usage(deployment.redis_prefix)
        finally:
            await nodes.delete(deployment.redis_prefix)
    memory = memory_figures(
        usage,
        deployment.redis_prefix,
        before,
        after,
        figures.users,
        figures.user_days,
        figures.days,
        figures.events,
    )
    return Combination(target, run, memory)


def print_runs(combinations: list[Combination]) -> None:
    reference = next(
        (c.run.per_second for c in combinations if c.target == "redis" and c.run.workers == 1),
        0.0,
    )
    print(
        f"{'target':14} {'workers':>7} {'events/s':>10} {'settled':>10} "
        f"{'launch→done':>12} {'ratio':>6}"
    )
    for c in combinations:
        settled = f"{c.run.steady_per_second:10,.0f}" if c.run.steady_seconds else f"{'-':>10}"
        print(
            f"{TARGETS[c.target]:14} {c.run.workers:7} {c.run.per_second:10,.0f} {settled} "
            f"{c.run.launch_seconds:11.1f}s {ratio(c.run.per_second, reference):6.2f}"
        )
    print(
        "  events/s: first applied batch to last; settled: after the consumer group held every "
        "worker; ratio: events/s over 1 worker on one Redis"
    )


def print_memory(combinations: list[Combination], how: dict[str, str]) -> None:
    print(
        f"{'target':14} {'workers':>7} {'keys':>6} {'per user':>9} {'user-day':>9} "
        f"{'per day':>9} {'transient':>10} {'all/user':>9} {'used/user':>10}"
    )
    for c in combinations:
        m = c.memory
        print(
            f"{TARGETS[c.target]:14} {c.run.workers:7} {m.keys:6} {m.per_user:9.1f} "
            f"{m.per_user_day:9.1f} {human_bytes(m.per_day):>9} {m.transient_per_event:10.1f} "
            f"{m.all_per_user:9.1f} {m.used_per_user:10.1f}"
        )
    for target, text in how.items():
        print(f"  {TARGETS[target]}: {text}")
    print(
        "  bytes from MEMORY USAGE SAMPLES 0 over every key SCAN finds under the prefix; per user: "
        "user records, last-seen, states, memberships over the input's users; user-day: daily "
        "sets over the input's distinct (user, UTC day) pairs; per day: HyperLogLogs, content, "
        "top items, daily counters over the input's days; transient: reorder buffer and outboxes "
        "(held back here, drained by the sweep) per event; used/user: INFO used_memory growth"
    )


def print_sizing(basis: SizingBasis) -> None:
    print(
        f"sizing (headroom x{basis.headroom:g}; busiest hour {basis.peak_hour_factor:.1f}x the "
        f"mean and {basis.daily_active_share:.0%} of users active a day, as in the input; one "
        f"worker {basis.worker_rate:,.0f}/s; daily sets {basis.daily_sets_days} days, analytics "
        f"{basis.analytics_days} days; Redis: masters' memory, replicas as much again)"
    )
    print(f"{'users':>10} {'events/day':>12} {'partitions':>10} {'workers':>7} {'redis':>10}")
    for users, events_per_day in SIZES:
        row = sizing_row(users, events_per_day, basis)
        print(
            f"{row.users:10,} {row.events_per_day:12,} {row.partitions:10} {row.workers:7} "
            f"{human_bytes(row.redis_bytes):>10}"
        )


async def main(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:6]
    base = Settings().model_copy(
        update={
            "topic_prefix": f"scale{run}.",
            "activity_partitions": args.partitions,
            # Generated history is old: keep its daily sets (bench.ingest does the same).
            "daily_active_retention_days": 3650,
            "user_buckets": max(1, args.users // 64),
            # Like bench.ingest, the fold alone is timed: the inactivity sweep is held back.
            "sweep_interval_seconds": 3600,
        }
    )
    await asyncio.to_thread(LocalStack(base).up)
    records = generated_records(args.events, args.users, args.days)
    figures = input_figures(record_actor_times(records))
    print(
        f"# ESN Pulse scaling benchmark (run {run}) on Kafka {base.kafka_bootstrap}, "
        f"{args.partitions} partitions, {os.cpu_count()} CPUs shared with the broker and Redis"
    )
    print(
        f"input: {figures.events:,} events of {figures.users:,} users over {figures.days} days; "
        f"{figures.user_days:,} user-days (distinct user and UTC day pairs of the input)"
    )
    started = time.perf_counter()
    await produce_raw(base, records)
    topic = TopicNames.from_settings(base).activity
    async with EndOffsets(base, topic) as offsets:
        ends = await offsets.get()
    print(f"produced in {time.perf_counter() - started:.1f}s: {sum(ends.values()):,} records")

    combinations: list[Combination] = []
    how: dict[str, str] = {}
    failed = False
    try:
        for target in args.targets:
            try:
                async with redis_target(target, base, args.cluster_port) as (settings, text):
                    how[target] = text
                    for workers in args.workers:
                        combination = await run_combination(
                            settings, target, workers, ends, figures, args.timeout
                        )
                        combinations.append(combination)
                        print(
                            f"  {TARGETS[target]}, {workers} worker(s): "
                            f"{combination.run.per_second:,.0f} events/s",
                            flush=True,
                        )
            except TargetUnavailable as exc:
                print(f"{TARGETS[target]}: skipped, {exc}")
            except WorkerFailed as exc:
                print(f"{TARGETS[target]}: failed, {exc}")
                failed = True
    finally:
        await drop_topics(base, base.topic_prefix)
    if combinations:
        print_runs(combinations)
        print_memory(combinations, how)
        reference = next(
            (c for c in combinations if c.target == "redis" and c.run.workers == 1),
            combinations[0],
        )
        basis = SizingBasis(
            per_user=reference.memory.per_user,
            per_user_day=reference.memory.per_user_day,
            per_day=reference.memory.per_day,
            worker_rate=reference.run.per_second,
            daily_active_share=figures.daily_active_share,
            peak_hour_factor=figures.peak_hour_factor,
        )
        print_sizing(basis)
    return 1 if failed or not combinations else 0


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _targets(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown target {unknown[0]!r}: redis, cluster")
    return names


def _positive(parse: Callable[[str], int]) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = parse(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not positive")
        return value

    return check


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--events",
        type=_positive(int),
        default=int(os.environ.get("BENCH_EVENTS", 500_000)),
        help="events to produce (env BENCH_EVENTS; a quick run: 50000)",
    )
    parser.add_argument("--users", type=_positive(int), default=20_000)
    parser.add_argument("--days", type=_positive(int), default=60)
    parser.add_argument("--partitions", type=_positive(int), default=12)
    parser.add_argument("--workers", type=_int_list, default=[1, 2, 3])
    parser.add_argument("--targets", type=_targets, default=list(TARGETS))
    parser.add_argument(
        "--cluster-port",
        type=_positive(int),
        default=0,
        help="first of the six ports of the local Redis Cluster (default: Redis's port + 10)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per combination")
    arguments = parser.parse_args()
    try:
        if not arguments.cluster_port:
            arguments.cluster_port = Settings().redis_host_port[1] + 10
        sys.exit(asyncio.run(main(arguments)))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bench prints one line, never a traceback
        print(f"bench.scaling failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
