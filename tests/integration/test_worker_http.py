"""The worker's web server: /health, /ready and /metrics against the real stack."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pytest

from stream import jsonutil
from stream.generator import generate_events
from stream.settings import Settings
from stream.store import RedisStore
from tests.support import keyed, produce_raw, wait_fully_applied

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        out.append((match["name"], labels, float(match["value"])))
    return out


class TestEndpoints:
    async def test_health_ready_and_metrics(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Health is up, ready once assigned, and the counters add up to what was produced."""
        worker = await worker_factory().started()
        assert worker.get("/health")[0] == 200
        status, body = worker.get("/ready")
        expected = {"ready": True, "reasons": [], "kafka_assigned": True, "redis": True}
        assert (200, expected) == (status, jsonutil.loads(body))
        events = list(generate_events(users=150, days=7, start=date(2026, 6, 1), seed=21))
        await produce_raw(settings, keyed(events))
        await wait_fully_applied(store, settings, 60, worker.check_alive)

        status, body = worker.get("/metrics")
        assert status == 200
        parsed = samples(body.decode())
        names = {name for name, _, _ in parsed}
        total = sum(v for name, _, v in parsed if name == "esn_events_total")
        assert len(events) == total
        assert {
            "esn_event_lag_seconds_bucket",
            "esn_last_event_timestamp_seconds",
            "esn_consumer_applied_offset",
            "esn_redis_up",
            "esn_event_loop_lag_seconds_bucket",
            "esn_event_loop_lag_max_seconds",
        } <= names
        assert any(name.startswith("faust_") for name in names), "Faust's own sensor metrics"
        lag_count = sum(v for name, _, v in parsed if name == "esn_event_lag_seconds_count")
        assert len(events) == lag_count
        last = next(v for name, _, v in parsed if name == "esn_last_event_timestamp_seconds")
        newest = max(datetime.fromisoformat(e["time"]).timestamp() for e in events)
        assert newest == pytest.approx(last, abs=0.001)

        users = {e["actor"] for e in events}
        for name, labels, _ in parsed:
            assert not users & set(labels.values()), f"user id in a label of {name}"
