"""The worker against a real broker and Redis: exact state, crashes, bad input, Redis outages."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from typing import Any

import pytest

from stream import jsonutil
from stream.generator import generate_events
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.topics import DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC, TopicNames
from tests.support import (
    Oracle,
    applied_count,
    eventually,
    keyed,
    produce_raw,
    read_topic,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

START = date(2026, 5, 1)


def as_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """The same event as a CloudEvents 1.0 structured record (id/time/actor on the envelope)."""
    data = {k: v for k, v in event.items() if k not in ("id", "time", "actor")}
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": "/connections/activitystreams",
        "type": f"com.example.esn.{event['type']}",
        "subject": event["actor"],
        "time": event["time"],
        "datacontenttype": "application/json",
        "data": data,
    }


def mixed_records(events: list[dict[str, Any]], seed: int = 3) -> list[tuple[bytes | None, bytes]]:
    """Keyed records, one in twenty wrapped as a CloudEvent."""
    rng = random.Random(seed)
    out = []
    for event in events:
        doc = as_cloudevent(event) if rng.random() < 0.05 else event
        out.append((event["actor"].encode(), jsonutil.dumps(doc)))
    return out


async def wait_applied(store: RedisStore, settings: Settings, worker: Any, timeout: float) -> None:
    await wait_fully_applied(store, settings, timeout, worker.check_alive)


class TestExactFold:
    async def test_fifty_thousand_events_match_the_oracle(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Each user's first/last seen and counts, daily actives and totals equal the oracle."""
        events = list(generate_events(users=2000, days=45, start=START, seed=11))
        assert len(events) >= 50_000
        # Shuffle within windows so out-of-order arrival is exercised, not only time order.
        rng = random.Random(5)
        for start in range(0, len(events), 500):
            window = events[start : start + 500]
            rng.shuffle(window)
            events[start : start + 500] = window
        worker = await worker_factory().started()
        await produce_raw(settings, mixed_records(events))
        await wait_applied(store, settings, worker, timeout=180)
        await Oracle.of(events).assert_matches(store)


class TestCrashRecovery:
    async def test_sigkill_mid_stream_then_restart_ends_in_the_uninterrupted_state(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Two SIGKILLs mid-backlog: the restarted worker neither loses nor double-counts."""
        events = list(generate_events(users=2000, days=45, start=START, seed=12))
        # A backlog, with its last 30% held back until after the kills: they land mid-stream
        # however fast the fold is (10,000-record fetches fold this backlog in about a second).
        held_back = int(len(events) * 0.7)
        await produce_raw(settings, keyed(events[:held_back]))

        async def applied() -> int:
            return await applied_count(store, settings)

        worker = await worker_factory().started()
        killed_at = []
        for fraction in (0.2, 0.55):

            async def progressed(target: float = fraction) -> bool:
                return await applied() >= target * len(events)

            await eventually(progressed, 120, f"{fraction:.0%} folded", worker.check_alive)
            worker.kill()
            killed_at.append(await applied())
            worker = await worker_factory().started()
        assert all(at < len(events) for at in killed_at), f"kills landed mid-stream: {killed_at}"
        await produce_raw(settings, keyed(events[held_back:]))
        await wait_applied(store, settings, worker, timeout=180)
        await Oracle.of(events).assert_matches(store)


class TestRebalance:
    async def test_workers_joining_and_dying_mid_stream_end_exact(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Partitions move between workers (join, SIGKILL, join) without loss or double count."""
        events = list(generate_events(users=2000, days=45, start=START, seed=15))
        first = await worker_factory().started()
        # Paced, so that the join happens while records flow; the last 30% are held back until
        # the kill, so that it lands mid-stream however slow the machine is.
        held_back = int(len(events) * 0.7)
        producing = asyncio.create_task(
            produce_raw(settings, keyed(events[:held_back]), rate=5_000)
        )

        async def reached(share: float) -> bool:
            return await applied_count(store, settings) >= share * len(events)

        await eventually(lambda: reached(0.15), 120, "15% folded", first.check_alive)
        second = await worker_factory().started()  # the group rebalances while folding
        await eventually(lambda: reached(0.5), 120, "50% folded", second.check_alive)
        first.kill()  # its partitions move on once the broker notices it is gone
        killed_at = await applied_count(store, settings)
        third = await worker_factory().started()
        await producing
        await produce_raw(settings, keyed(events[held_back:]), rate=5_000)
        await wait_applied(store, settings, third, timeout=180)
        second.check_alive()
        assert killed_at < len(events), "the kill landed mid-stream"
        await Oracle.of(events).assert_matches(store)


class TestMalformedInput:
    async def test_a_thousand_bad_records_go_to_the_dlq_and_the_rest_is_exact(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Bad records land unchanged in the DLQ with reason and source; valid ones fold."""
        events = list(generate_events(users=400, days=20, start=START, seed=13))
        bad_kinds: list[tuple[str, tuple[bytes | None, bytes]]] = [
            ("not_json", (b"u000001", b"{not json")),
            ("not_object", (b"u000001", b"[1, 2, 3]")),
            ("missing_field", (b"u000002", b'{"id":"x","type":"login","actor":"u000002"}')),
            (
                "bad_time",
                (b"u000003", b'{"id":"x","type":"login","actor":"u000003","time":"yesterday"}'),
            ),
            (
                "bad_time",  # no UTC offset: ambiguous, so rejected
                (
                    b"u000003",
                    b'{"id":"x","type":"login","actor":"u000003","time":"2026-05-02T10:00:00"}',
                ),
            ),
            (
                "key_mismatch",
                (
                    b"someone-else",
                    b'{"id":"x","type":"login","actor":"u000004","time":"2026-05-02T10:00:00Z"}',
                ),
            ),
            (
                "bad_field",
                (
                    b"u000005",
                    b'{"id":"x","type":"Not A Type!","actor":"u000005",'
                    b'"time":"2026-05-02T10:00:00Z"}',
                ),
            ),
            ("bad_cloudevent", (b"u000006", b'{"specversion":"0.3","data":{}}')),
        ]
        rng = random.Random(7)
        good = keyed(events)
        records: list[tuple[bytes | None, bytes]] = []
        expected_reasons: list[str] = []
        bad_positions = set(rng.sample(range(len(good) + 1000), 1000))
        good_iter = iter(good)
        for position in range(len(good) + 1000):
            if position in bad_positions:
                reason, record = bad_kinds[position % len(bad_kinds)]
                records.append(record)
                expected_reasons.append(reason)
            else:
                records.append(next(good_iter))
        worker = await worker_factory().started()
        await produce_raw(settings, records)
        await wait_applied(store, settings, worker, timeout=180)
        worker.check_alive()
        await Oracle.of(events).assert_matches(store)

        topics = TopicNames.from_settings(settings)
        dead = await read_topic(settings, topics.activity_dlq, expected=1000)
        assert len(dead) == 1000
        headers = [dict(r.headers) for r in dead]
        assert sorted(expected_reasons) == sorted(h[DLQ_REASON].decode() for h in headers)
        bad_values = {value for _, value in (kind[1] for kind in bad_kinds)}
        assert {r.value for r in dead} <= bad_values
        sources = {(h[DLQ_PARTITION], h[DLQ_OFFSET]) for h in headers}
        assert len(sources) == 1000, "each dead letter names a distinct source offset"
        assert {topics.activity.encode()} == {h[DLQ_TOPIC] for h in headers}
        _, body = worker.get("/metrics")
        invalid = [
            line
            for line in body.decode().splitlines()
            if line.startswith("esn_events_invalid_total{")
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in invalid) == 1000.0


class TestRedisOutage:
    async def test_redis_stopped_mid_stream_recovers_without_loss_or_duplicates(
        self,
        settings: Settings,
        store: RedisStore,
        worker_factory: Any,
        local_stack: LocalStack,
    ) -> None:
        """The worker retries while Redis is down, then catches up exactly."""
        events = list(generate_events(users=800, days=30, start=START, seed=14))
        worker = await worker_factory().started()
        producing = asyncio.create_task(produce_raw(settings, keyed(events), rate=10_000))

        async def some_progress() -> bool:
            return await applied_count(store, settings) >= 0.25 * len(events)

        await eventually(some_progress, 120, "25% folded", worker.check_alive)
        assert await asyncio.to_thread(local_stack.stop_redis), "the test stack owns Redis"
        try:

            async def not_ready() -> bool:
                status, _ = await asyncio.to_thread(worker.get, "/ready")
                return status == 503

            await eventually(not_ready, 20, "/ready to report Redis down", worker.check_alive)
            await asyncio.sleep(3)
        finally:
            await asyncio.to_thread(local_stack.start_redis)
        await producing
        await wait_applied(store, settings, worker, timeout=180)
        await Oracle.of(events).assert_matches(store)
        _, body = worker.get("/metrics")
        errors = [
            line for line in body.decode().splitlines() if line.startswith("esn_redis_errors_total")
        ]
        assert float(errors[0].rsplit(" ", 1)[1]) >= 1, "the outage was seen and retried"
