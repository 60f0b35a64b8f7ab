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

from bench.memory_figures import memory_figures
from bench.redis_nodes import redis_nodes
from bench.scaling_report import (
    TARGETS,
    Combination,
    print_memory,
    print_runs,
    print_sizing,
)
from bench.sizing import SizingBasis
from bench.worker_fleet import fleet_settings, time_fleet
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
            by_master: dict[str, int] = {}
            usage = await nodes.key_usage(deployment.redis_prefix, by_master)
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
    return Combination(target, run, memory, by_master)


async def measure(
    base: Settings, args: argparse.Namespace
) -> tuple[InputFigures, list[Combination], dict[str, str], bool]:
    """Produce the input once, run every (target, workers) combination; what each measured."""
    records = generated_records(args.events, args.users, args.days)
    figures = input_figures(record_actor_times(records))
    print(
        f"# ESN Pulse scaling benchmark on Kafka {base.kafka_bootstrap}, topics "
        f"{base.topic_prefix}*, {args.partitions} partitions, {os.cpu_count()} CPUs shared with "
        "the broker, Redis and whatever else runs here"
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
        except Exception as exc:  # one target's failure must not lose the other's figures
            print(f"{TARGETS[target]}: failed, {type(exc).__name__}: {exc}")
            failed = True
    return figures, combinations, how, failed


async def main(args: argparse.Namespace) -> int:
    base = Settings().model_copy(
        update={
            "topic_prefix": f"scale{uuid.uuid4().hex[:6]}.",
            "activity_partitions": args.partitions,
            # Generated history is old: keep its daily sets (bench.ingest does the same).
            "daily_active_retention_days": 3650,
            # Buckets are per partition: users / (64 x partitions), as the settings advise.
            "user_buckets": max(1, args.users // (64 * args.partitions)),
            # Like bench.ingest, the fold alone is timed: the inactivity sweep is held back.
            "sweep_interval_seconds": 3600,
        }
    )
    await asyncio.to_thread(LocalStack(base).up)
    try:
        figures, combinations, how, failed = await measure(base, args)
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
