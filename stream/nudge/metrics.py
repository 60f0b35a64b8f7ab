"""The nudge service's metrics: every decision counted by kind, channel and outcome (never a
person), on a registry of its own so tests can read it fresh."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

#: Every outcome a delivery or a suppression can have: the label values (operations/nudges.md).
OUTCOMES = (
    "sent",
    "dry_run",
    "deferred",
    "failed",
    "dead_lettered",
    "unconfirmed",
    "cancelled",
    "stale",
    "disabled",
    "opted_out",
    "no_address",
    "window",
    "capped",
)


class NudgeMetrics:
    """``esn_nudges_total{kind,channel,outcome}`` and the pending deliveries."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.nudges = Counter(
            "esn_nudges_total",
            "Nudge deliveries and suppressions, by flag kind, channel and outcome.",
            ["kind", "channel", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "esn_nudges_pending",
            "Deliveries waiting (held, deferred or to retry).",
            registry=self.registry,
        )

    def count(self, kind: str, channel: str, outcome: str) -> None:
        """One decision."""
        self.nudges.labels(kind=kind, channel=channel, outcome=outcome).inc()
