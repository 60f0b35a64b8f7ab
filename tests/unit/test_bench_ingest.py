"""The ingest bench's pure helpers: metrics text, quantiles, the peers' time parsing and
per-user maxima, Kafka's partitioner, commandstats deltas and the summary's verdicts."""

from __future__ import annotations

import math

import pytest
from aiokafka.partitioner import DefaultPartitioner

from bench.contenders import Throughput
from bench.ingest import StateMemory, ratio_line
from bench.last_seen import latest_per_user, time_ms
from bench.metrics_text import (
    gauge_value,
    histogram_buckets,
    histogram_delta,
    histogram_quantile,
    observations_above,
    quantile,
)
from bench.population import command_deltas
from bench.population_load import kafka_partition

EXPOSITION = """\
# HELP esn_event_lag_seconds Time from an event's own timestamp until its effect was in Redis.
# TYPE esn_event_lag_seconds histogram
esn_event_lag_seconds_bucket{le="0.1"} 50.0
esn_event_lag_seconds_bucket{le="0.25"} 90.0
esn_event_lag_seconds_bucket{le="+Inf"} 100.0
esn_event_lag_seconds_count 100.0
esn_event_loop_lag_seconds_bucket{le="0.1"} 7.0
esn_event_loop_lag_seconds_bucket{le="+Inf"} 9.0
esn_event_loop_lag_max_seconds 0.042
esn_event_loop_lag_max_seconds_extra 3.0
"""


class TestMetricsText:
    def test_buckets_of_one_histogram_only(self) -> None:
        """Another histogram whose name starts the same is not mixed in."""
        assert [(0.1, 50.0), (0.25, 90.0), (math.inf, 100.0)] == histogram_buckets(
            EXPOSITION, "esn_event_lag_seconds"
        )

    def test_gauge_by_exact_name(self) -> None:
        """A gauge is read by its exact name; a missing one is None, not 0."""
        assert 0.042 == gauge_value(EXPOSITION, "esn_event_loop_lag_max_seconds")
        assert None is gauge_value(EXPOSITION, "esn_absent_seconds")

    def test_delta_of_two_scrapes(self) -> None:
        """Only what was observed between the scrapes counts; a bucket new since counts whole."""
        before = [(0.1, 10.0), (math.inf, 12.0)]
        after = [(0.1, 15.0), (0.5, 20.0), (math.inf, 30.0)]
        assert [(0.1, 5.0), (0.5, 20.0), (math.inf, 18.0)] == histogram_delta(before, after)

    def test_quantile_interpolates_inside_the_bucket(self) -> None:
        """p50 of 50 observations under 0.1 s out of 100 is the bucket's upper bound; p70 lies
        halfway into the next bucket, as Prometheus' histogram_quantile says."""
        buckets = histogram_buckets(EXPOSITION, "esn_event_lag_seconds")
        assert 0.1 == pytest.approx(histogram_quantile(0.5, buckets))
        assert 0.175 == pytest.approx(histogram_quantile(0.7, buckets))

    def test_quantile_in_the_infinite_bucket_is_the_highest_bound(self) -> None:
        """p99 beyond the last finite bound answers that bound, never infinity."""
        buckets = histogram_buckets(EXPOSITION, "esn_event_lag_seconds")
        assert 0.25 == histogram_quantile(0.99, buckets)

    def test_quantile_of_nothing_is_zero(self) -> None:
        """No observation (a run that folded nothing) gives 0, not a division error."""
        assert 0.0 == histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)])
        assert 0.0 == histogram_quantile(0.99, [])

    def test_observations_above_a_bound(self) -> None:
        """Stalls over 100 ms are the total minus the 0.1 bucket's count."""
        loop = histogram_buckets(EXPOSITION, "esn_event_loop_lag_seconds")
        assert 2 == observations_above(loop, 0.1)

    def test_observations_above_needs_a_bucket_bound(self) -> None:
        """A bound the histogram does not have cannot be answered exactly: it is refused."""
        with pytest.raises(ValueError, match="bucket bound"):
            observations_above([(0.1, 1.0), (math.inf, 2.0)], 0.2)

    def test_sample_quantile_is_nearest_rank(self) -> None:
        """p99 of 1..100 is 99, p50 is 50, and no samples give 0."""
        samples = [float(n) for n in range(100, 0, -1)]
        assert (99.0, 50.0, 0.0) == (
            quantile(0.99, samples),
            quantile(0.5, samples),
            quantile(0.99, []),
        )


class TestLastSeen:
    def test_times_with_z_and_offsets_are_the_same_instant(self) -> None:
        """Z, an offset and a fraction of a second are all read as the instant they name."""
        assert 1767605400000 == time_ms("2026-01-05T09:30:00Z")
        assert 1767605400000 == time_ms("2026-01-05T10:30:00+01:00")
        assert 1767605400123 == time_ms("2026-01-05T09:30:00.123+00:00")

    def test_latest_per_user_keeps_each_maximum(self) -> None:
        """Out-of-order times keep each user's latest, one member per user."""
        pairs = [("a", 5), ("b", 3), ("a", 2), ("b", 9), ("a", 7)]
        assert {"a": 7, "b": 9} == latest_per_user(pairs)


class TestPopulation:
    @pytest.mark.parametrize("key", [b"u0000001", b"alice@example.com", b"", b"\xff\x00"])
    def test_partition_is_kafkas(self, key: bytes) -> None:
        """The loader places a user where aiokafka's default partitioner would."""
        partitions = list(range(12))
        assert DefaultPartitioner()(key, partitions, partitions) == kafka_partition(key, 12)

    def test_command_deltas_leave_info_out(self) -> None:
        """Calls made between the reads count, INFO (how we count) and idle commands do not."""
        before = {"cmdstat_get": {"calls": 10, "usec": 100}, "cmdstat_info": {"calls": 1}}
        after = {
            "cmdstat_get": {"calls": 15, "usec": 160},
            "cmdstat_info": {"calls": 2, "usec": 5},
            "cmdstat_zadd": {"calls": 3, "usec": 30},
            "cmdstat_set": {"calls": 0, "usec": 0},
        }
        assert {"get": (5, 60), "zadd": (3, 30)} == command_deltas(before, after)


class TestSummary:
    def test_ratio_against_its_target(self) -> None:
        """The ratio is worker over peer, and the verdict says whether the target is met."""
        worker, peer = Throughput("w", 1000, 1.0), Throughput("p", 2000, 1.0)
        assert ratio_line("w / p", worker, peer, 0.5).endswith("0.50   (target >= 0.5: met)")
        assert "NOT met" in ratio_line("w / p", worker, peer, 1.0)

    def test_ratio_without_the_peer(self) -> None:
        """A peer that did not run gives n/a, not a division by zero."""
        assert ratio_line("w / p", Throughput("w", 1, 1.0), None, 1.0).endswith("n/a")

    def test_memory_per_user_by_kind_and_category(self) -> None:
        """Bytes per user are over the input's users; categories follow bench/memory_figures."""
        memory = StateMemory({"u1": 600, "day": 400, "top": 1000}, users=10, user_days=40)
        assert (200.0, 60.0) == (memory.per_user(), memory.per_user({"u1"}))
        assert {"per-user": 600, "user-day": 400, "per-day": 1000} == memory.by_category()
