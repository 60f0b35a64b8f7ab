"""The batch histogram and the no-user-label rule."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from stream.metrics import BatchHistogram, PipelineMetrics


class TestBatchHistogram:
    def test_buckets_are_cumulative_and_sum_is_kept(self) -> None:
        """A batch lands in the right buckets, exposed cumulatively like a Histogram."""
        registry = CollectorRegistry()
        histogram = BatchHistogram("x_seconds", "doc", [1, 5])
        registry.register(histogram)
        histogram.observe_many([0.5, 1, 2, 10])
        assert registry.get_sample_value("x_seconds_bucket", {"le": "1"}) == 1 + 1
        assert registry.get_sample_value("x_seconds_bucket", {"le": "5"}) == 3
        assert registry.get_sample_value("x_seconds_bucket", {"le": "+Inf"}) == 4
        assert registry.get_sample_value("x_seconds_count") == 4
        assert registry.get_sample_value("x_seconds_sum") == 13.5


def test_no_collector_has_a_user_label() -> None:
    """Privacy: no metric of the pipeline can carry a user id."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    allowed = {"type", "object_type", "reason", "outcome", "topic", "partition", "le"}
    allowed |= {"kind", "threshold", "window"}
    for family in registry.collect():
        for sample in family.samples:
            assert set(sample.labels) <= allowed, family.name
    exposition = generate_latest(registry).decode()
    assert "esn_event_lag_seconds_bucket" in exposition
    assert "_created" not in exposition, "created series are disabled"


def test_every_collector_is_in_the_metrics_reference() -> None:
    """docs/reference/metrics.md names every metric the worker exposes (counters as *_total)."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    reference = (Path(__file__).resolve().parents[2] / "docs/reference/metrics.md").read_text()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in reference or f"`{name}`," in reference, name
