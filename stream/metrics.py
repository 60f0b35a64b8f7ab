"""Every Prometheus collector of the worker: esn_* names, base units, never a user id label."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# The *_created series double every counter's exposition for no use on our boards.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

#: Event lag spans live traffic (sub-second) and backfills (days), hence the wide range.
LAG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75,
    1, 2.5, 5, 10, 30, 60, 300, 3600, 86400,
)  # fmt: skip


class BatchHistogram(Collector):
    """A histogram fed a whole batch at once.

    prometheus_client's Histogram takes a lock per observation; at tens of thousands of events a
    second that lock is measurable, so a batch is binned with bisect under one lock instead.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        """Add every value of a batch."""
        bins = [0] * len(self._counts)
        total = 0.0
        bounds = self.bounds
        for value in values:
            bins[bisect_left(bounds, value)] += 1
            total += value
        with self._lock:
            for index, count in enumerate(bins):
                self._counts[index] += count
            self._sum += total

    def observe_lags(self, now_s: float, times_ms: list[int]) -> None:
        """Add ``now_s - t / 1000`` for every event time ``t`` (ms) of a batch.

        The same bins as :meth:`observe_many`, counted on the sorted integer times with one
        bisect per bucket bound: no Python work per event on the hot path.
        """
        if not times_ms:
            return
        ordered = sorted(times_ms)
        n = len(ordered)
        # lag <= bound  <=>  t >= (now - bound) * 1000: cumulative counts per bound.
        cumulative = [n - bisect_left(ordered, (now_s - bound) * 1000) for bound in self.bounds]
        # In integer microseconds: n x now minus the sum cancels most digits in floats.
        total = (n * round(now_s * 1_000_000) - 1000 * sum(ordered)) / 1_000_000
        with self._lock:
            below = 0
            for index, upto in enumerate(cumulative):
                self._counts[index] += upto - below
                below = upto
            self._counts[-1] += n - below
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        """Cumulative buckets in the exposition format."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        yield family


class PipelineMetrics:
    """Collectors of the activity pipeline, registered on one registry (fresh per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "esn_events",
            "Valid activity events folded into Redis, by event type and object type.",
            ["type", "object_type"],
            registry=registry,
        )
        self.invalid = Counter(
            "esn_events_invalid",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.event_lag = BatchHistogram(
            "esn_event_lag_seconds",
            "Time from an event's own timestamp until its effect was in Redis.",
            LAG_BUCKETS,
        )
        registry.register(self.event_lag)
        self.last_event_timestamp = Gauge(
            "esn_last_event_timestamp_seconds",
            "Highest event time folded so far (Unix seconds).",
            registry=registry,
        )
        self.batches = Counter(
            "esn_batches",
            "Partition batches by outcome: applied, replayed (already in Redis), overlap.",
            ["outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "esn_batch_apply_seconds",
            "Wall time of one pipelined Redis apply (all partitions of a fetch).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=registry,
        )
        self.loop_lag = Histogram(
            "esn_event_loop_lag_seconds",
            "How late the worker's event loop woke a task that slept a 25 ms tick: every stall "
            "of the loop (the fold, the web pages and the timers all wait behind it).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5),
            registry=registry,
        )
        self.loop_lag_max = Gauge(
            "esn_event_loop_lag_max_seconds",
            "Largest event loop lag over a sliding window of the last 60 seconds.",
            registry=registry,
        )
        self.redis_errors = Counter(
            "esn_redis_errors",
            "Failed Redis applies (each is retried with backoff; nothing is committed past it).",
            registry=registry,
        )
        self.redis_up = Gauge(
            "esn_redis_up", "1 when the last Redis call succeeded.", registry=registry
        )
        self.kafka_up = Gauge(
            "esn_kafka_up", "1 when the last Kafka metadata probe succeeded.", registry=registry
        )
        self.state_losses = Counter(
            "esn_state_losses",
            "Times a partition's Redis fence was found behind what was applied (Redis lost "
            "state); the partition is then re-read from the fence.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "esn_consumer_lag_messages",
            "Records between the applied offset and the partition's end.",
            ["topic", "partition"],
            registry=registry,
        )
        self.applied_offset = Gauge(
            "esn_consumer_applied_offset",
            "Highest offset whose effect is in Redis (the fence).",
            ["topic", "partition"],
            registry=registry,
        )
        self.directory_records = Counter(
            "esn_directory_records",
            "Directory records folded, by kind (profile, membership).",
            ["kind"],
            registry=registry,
        )
        self.directory_invalid = Counter(
            "esn_directory_invalid",
            "Directory records sent to the directory dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.flags = Counter(
            "esn_flags",
            "Flag records published on esn.users.flagged.v1, by kind.",
            ["kind"],
            registry=registry,
        )
        self.reactivations = Counter(
            "esn_reactivations",
            "Flagged users who acted again (published reactivated records).",
            registry=registry,
        )
        self.users_enabled = Gauge(
            "esn_users_enabled", "Enabled users known to the engine.", registry=registry
        )
        self.users_inactive = Gauge(
            "esn_users_inactive",
            "Enabled users whose last activity is older than the threshold.",
            ["threshold"],
            registry=registry,
        )
        self.users_never_active = Gauge(
            "esn_users_never_active",
            "Enabled users with no activity since creation, past the grace period.",
            registry=registry,
        )
        self.users_at_risk = Gauge(
            "esn_users_at_risk",
            "Enabled regulars silent for several of their usual gaps, before any threshold.",
            registry=registry,
        )
        self.active_users = Gauge(
            "esn_active_users",
            "Users with at least one activity event in the window ending at the clock's now.",
            ["window"],
            registry=registry,
        )
        self.last_sweep_finished = 0.0
        self.sweep_age = Gauge(
            "esn_sweep_age_seconds",
            "Seconds since the last inactivity sweep finished (large before the first).",
            registry=registry,
        )
        self.sweep_age.set_function(
            lambda: time.time() - self.last_sweep_finished if self.last_sweep_finished else 1e9
        )
        self.assigned_partitions = Gauge(
            "esn_assigned_partitions",
            "Activity partitions this worker currently owns.",
            registry=registry,
        )
        # --- analytics (refreshed every ESN_ANALYTICS_INTERVAL_SECONDS) ---
        self.tier_users = Gauge(
            "esn_tier_users",
            "Users on each rung of the engagement ladder (registered, active, participating, "
            "contributing) in the window of whole UTC days ending today.",
            ["tier", "window"],
            registry=registry,
        )
        self.stickiness = Gauge(
            "esn_stickiness_ratio",
            "Today's active users divided by the 30-day active users.",
            registry=registry,
        )
        self.new_users = Gauge(
            "esn_new_users",
            "Users whose first event ever was today (UTC).",
            registry=registry,
        )
        self.communities = Gauge(
            "esn_communities",
            "Communities by state: total, orphaned, idle, healthy (neither).",
            ["state"],
            registry=registry,
        )
        self.community_flags = Counter(
            "esn_community_flags",
            "Community flag records published on esn.communities.flagged.v1, by kind.",
            ["kind"],
            registry=registry,
        )
        self.department_users = Gauge(
            "esn_department_users",
            "Users per department and state (enabled, active, inactive, never_active); departments "
            "under ESN_MIN_GROUP_SIZE are merged into 'other'.",
            ["department", "state"],
            registry=registry,
        )
        self.community_people = Gauge(
            "esn_community_people",
            "Opt-in (ESN_COMMUNITY_METRICS_TOP_N): people in each of the largest communities.",
            ["community"],
            registry=registry,
        )
        self.community_active_members = Gauge(
            "esn_community_active_members",
            "Opt-in (ESN_COMMUNITY_METRICS_TOP_N): active members of each of the largest "
            "communities.",
            ["community"],
            registry=registry,
        )
        self.analytics_refresh_seconds = Gauge(
            "esn_analytics_refresh_seconds",
            "Wall time of the last analytics refresh.",
            registry=registry,
        )
        self.analytics_refreshed = Gauge(
            "esn_analytics_last_refresh_timestamp_seconds",
            "When the analytics gauges were last refreshed (Unix seconds).",
            registry=registry,
        )
        # --- alert inputs (deploy/prometheus/rules) ---
        self.recent_flags = Gauge(
            "esn_recent_flags",
            "Users flagged (kind: inactive at the first threshold, never_active, reactivated) "
            "whose flag time lies in the window (1h, 7d) ending at the clock's now.",
            ["kind", "window"],
            registry=registry,
        )
        self.active_so_far = Gauge(
            "esn_active_users_so_far",
            "Users active so far today (day=today) and on the same weekday a week earlier up to "
            "the same time of day (day=week_ago).",
            ["day"],
            registry=registry,
        )
        self.last_applied = Gauge(
            "esn_last_applied_timestamp_seconds",
            "Wall time when this worker last applied a batch of valid events (its start "
            "time before the first).",
            registry=registry,
        )
        self.last_applied.set(time.time())
        self.ingest_stall_threshold = Gauge(
            "esn_ingest_stall_threshold_seconds",
            "ESN_INGEST_STALL_SECONDS: how long without applied events the stall alert allows.",
            registry=registry,
        )
