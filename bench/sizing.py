"""A sizing table derived from measured figures: Redis memory, workers and partitions per size.

Memory = users x per-user bytes + users x daily-active share x days of daily sets kept x
per-user-day bytes + days of analytics kept x per-day bytes (scaled to the partitions: each keeps
its own), times the headroom. Workers = the
busiest hour's event rate times the headroom over one worker's measured rate, and never fewer than
two. Partitions bound the
parallelism and cannot be raised without a rebuild, so they are set well above the workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The smallest partition count: what ESN_ACTIVITY_PARTITIONS defaults to.
MIN_PARTITIONS = 12


@dataclass(frozen=True)
class SizingBasis:
    """Measured figures and the stated rules a sizing row is derived from."""

    per_user: float
    per_user_day: float
    per_day: float
    #: One worker's events/s (one Redis, this machine: conservative on a dedicated core).
    worker_rate: float
    #: Share of the users active on a day (input user-days over users x days).
    daily_active_share: float
    #: The busiest hour's events over the mean hour's.
    peak_hour_factor: float
    #: ESN_DAILY_ACTIVE_RETENTION_DAYS and ESN_ANALYTICS_RETENTION_DAYS defaults.
    daily_sets_days: int = 35
    analytics_days: int = 400
    #: Twice the need: fragmentation, fork copy-on-write during AOF rewrites, the reorder buffer
    #: and outboxes in flight; for workers, a backlog after an outage drains at the peak rate.
    headroom: float = 2.0
    #: Partitions per worker the deployment may grow to without a rebuild.
    partitions_per_worker: int = 4
    #: Never fewer: a worker lost or restarted hands its partitions to the other (a rebalance).
    min_workers: int = 2
    #: Partitions of the measured run: each partition keeps its own per-day aggregates, so
    #: ``per_day`` scales with the partitions of the size being computed.
    measured_partitions: int = MIN_PARTITIONS


@dataclass(frozen=True)
class SizingRow:
    """One deployment size."""

    users: int
    events_per_day: int
    partitions: int
    workers: int
    redis_bytes: float


def redis_bytes(users: int, basis: SizingBasis, partitions: int = MIN_PARTITIONS) -> float:
    """Redis memory to provision for ``users`` on ``partitions`` (masters; replicas need as
    much again)."""
    per_day = basis.per_day * partitions / basis.measured_partitions
    need = (
        users * basis.per_user
        + users * basis.daily_active_share * basis.daily_sets_days * basis.per_user_day
        + basis.analytics_days * per_day
    )
    return need * basis.headroom


def workers_for(events_per_day: int, basis: SizingBasis) -> int:
    """Workers whose measured rate covers the busiest hour with the headroom; at least
    ``min_workers``."""
    peak_rate = events_per_day / 86_400 * basis.peak_hour_factor
    if basis.worker_rate <= 0:
        raise ValueError("no measured worker rate to size workers from")
    return max(basis.min_workers, math.ceil(peak_rate * basis.headroom / basis.worker_rate))


def partitions_for(workers: int, basis: SizingBasis) -> int:
    """At least MIN_PARTITIONS, and room for ``partitions_per_worker`` times the workers."""
    wanted = max(MIN_PARTITIONS, workers * basis.partitions_per_worker)
    # A multiple of 12 splits evenly over 1, 2, 3, 4 and 6 workers.
    return math.ceil(wanted / MIN_PARTITIONS) * MIN_PARTITIONS


def sizing_row(users: int, events_per_day: int, basis: SizingBasis) -> SizingRow:
    """The partitions, workers and Redis memory of one deployment size."""
    workers = workers_for(events_per_day, basis)
    partitions = partitions_for(workers, basis)
    return SizingRow(
        users, events_per_day, partitions, workers, redis_bytes(users, basis, partitions)
    )


def human_bytes(size: float) -> str:
    """1.5 GiB, 320 MiB, 12 KiB: binary units, three significant digits at most."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
