"""The nudge service's metrics: every decision counted by kind, channel and outcome (never a
person), on a registry of its own so tests can read it fresh."""

from __future__ import annotations

import math
from typing import Any

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
        self.effect_share = Gauge(
            "esn_nudge_effect_share",
            "Share of the last 90 days' flags active again within the window, nudged or not "
            "(NaN under the minimum group size).",
            ["window", "group"],
            registry=self.registry,
        )

    def show_effect(self, figure: dict[str, Any]) -> None:
        """The effect figure (stream.nudge.effect) as gauges, NaN where it has no share."""
        for window, row in figure["windows"].items():
            for group in ("nudged", "not_nudged"):
                share = row[group]["share"]
                value = math.nan if share is None else float(share)
                self.effect_share.labels(window=window, group=group).set(value)

    def start_series(self, kinds_channels: list[tuple[str, str]]) -> None:
        """Every configured kind and channel at 0 sent, so a board shows 0, not "no data"."""
        for kind, channel in kinds_channels:
            self.nudges.labels(kind=kind, channel=channel, outcome="sent")

    def count(self, kind: str, channel: str, outcome: str) -> None:
        """One decision."""
        self.nudges.labels(kind=kind, channel=channel, outcome=outcome).inc()
