"""The scaling bench's printed figures: throughput per combination, memory, the sizing table."""

from __future__ import annotations

from dataclasses import dataclass

from bench.memory_figures import MemoryFigures
from bench.sizing import SizingBasis, human_bytes, sizing_row
from bench.worker_fleet import FleetRun

TARGETS = {"redis": "one Redis", "cluster": "Redis Cluster"}
#: Deployment sizes of the sizing table: (users, events a day). 25 events per user a day is a
#: busy intranet that counts page views; the last row has four times that.
SIZES = (
    (20_000, 500_000),
    (100_000, 2_500_000),
    (500_000, 12_500_000),
    (1_000_000, 25_000_000),
    (1_000_000, 100_000_000),
    (5_000_000, 500_000_000),
)


@dataclass(frozen=True)
class Combination:
    """One (target, workers) run: its timing and the memory it left."""

    target: str
    run: FleetRun
    memory: MemoryFigures
    #: host:port -> MEMORY USAGE of the deployment's keys on that master.
    by_master: dict[str, int]


def ratio(value: float, reference: float) -> float:
    """``value`` over ``reference``; 0 when there is no reference."""
    return value / reference if reference else 0.0


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
        against = f"{ratio(c.run.per_second, reference):6.2f}" if reference else f"{'-':>6}"
        print(
            f"{TARGETS[c.target]:14} {c.run.workers:7} {c.run.per_second:10,.0f} {settled} "
            f"{c.run.launch_seconds:11.1f}s {against}"
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
    for c in combinations:
        if len(c.by_master) > 1:
            total = max(sum(c.by_master.values()), 1)
            shares = ", ".join(
                f"{name} {size / total:.0%}" for name, size in sorted(c.by_master.items())
            )
            label = f"{TARGETS[c.target]}, {c.run.workers} worker(s)"
            print(f"  {label}, key bytes per master: {shares}")
    measured = {c.target for c in combinations}
    for target, text in how.items():
        if target in measured:
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
