"""The analytics process's figures carried to the worker's collectors: gauges replaced whole,
counters moved by what the refresh added."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stream import jsonutil
from stream.analytics.refresh_process import COUNTERS, GAUGES, apply_samples, samples
from stream.metrics import PipelineMetrics


def test_every_name_is_a_collector_of_the_worker() -> None:
    """The names carried are PipelineMetrics attributes (a renamed one would fail here)."""
    metrics = PipelineMetrics(CollectorRegistry())
    for name in GAUGES + COUNTERS:
        assert hasattr(metrics, name), name


def test_the_workers_collectors_end_as_the_childs() -> None:
    """Labelled gauges are replaced (a department gone is gone); counters get the increments."""
    child_registry, worker_registry = CollectorRegistry(), CollectorRegistry()
    child, worker = PipelineMetrics(child_registry), PipelineMetrics(worker_registry)
    worker.department_users.labels("Gone", "enabled").set(9)
    worker.community_flags.labels("orphaned").inc(5)  # published by an earlier child
    before: dict[str, list[list[object]]] = {name: [] for name in COUNTERS}
    child.department_users.labels("Sales", "enabled").set(12)
    child.stickiness.set(0.25)
    child.community_flags.labels("idle").inc(2)
    reply = jsonutil.loads(jsonutil.dumps(samples(child, before)))  # as the pipe carries it
    apply_samples(worker, reply)
    value = worker_registry.get_sample_value
    assert 12 == value("esn_department_users", {"department": "Sales", "state": "enabled"})
    assert value("esn_department_users", {"department": "Gone", "state": "enabled"}) is None
    assert 0.25 == value("esn_stickiness_ratio")
    assert 2 == value("esn_community_flags_total", {"kind": "idle"})
    assert 5 == value("esn_community_flags_total", {"kind": "orphaned"})


def test_a_counter_carries_only_what_the_refresh_added() -> None:
    """A second refresh that published nothing moves no counter."""
    child, worker = PipelineMetrics(CollectorRegistry()), PipelineMetrics(CollectorRegistry())
    child.community_flags.labels("idle").inc(3)
    before = {"community_flags": [[{"kind": "idle"}, 3.0]]}
    apply_samples(worker, samples(child, before))
    assert worker.registry.get_sample_value("esn_community_flags_total", {"kind": "idle"}) in (
        None,
        0.0,
    )
