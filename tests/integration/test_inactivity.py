"""The inactivity engine on the real stack: a 200-day replay in event-clock mode, record by record.

The oracle is the pure state machine (itself held to a brute-force hourly oracle in the unit
tests) run once per partition over the whole sorted history; what is tested here is everything
around it: the reorder buffer, durable states, releases in many small steps, the outbox and the
exactly-once publisher, also across a SIGKILL.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream import jsonutil
from stream.events import epoch_ms
from stream.flags.machine import (
    Change,
    InactivityMachine,
    ProfileChange,
    Seen,
    Transition,
    change_order,
    definitions_from,
    parse_duration_ms,
)
from stream.generator import directory_records, generate_events
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import FLAG_SEQ, TopicNames
from tests.department_oracle import assert_department_counts_exact
from tests.e2e.test_cli import esn
from tests.support import (
    applied_count,
    eventually,
    keyed,
    produce_raw,
    read_topic,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

START = date(2025, 9, 1)
DAYS = 200


def partition_of(user_id: str, partitions: int) -> int:
    """Where Kafka's default partitioner puts a key (murmur2, as the Java client)."""
    return int(DefaultPartitioner()(user_id.encode(), list(range(partitions)), None))


def ms(value: str | None) -> int | None:
    return None if value is None else epoch_ms(datetime.fromisoformat(value))


def expected_transitions(
    settings: Settings, events: list[dict[str, Any]], directory: list[dict[str, Any]]
) -> list[Transition]:
    """Run the pure machine per partition over the full history up to each partition's clock."""
    lateness = parse_duration_ms(settings.allowed_lateness)
    changes: dict[int, list[Change]] = defaultdict(list)
    newest: dict[int, int] = {}
    for event in events:
        p = partition_of(event["actor"], settings.activity_partitions)
        at = ms(event["time"])
        assert at is not None
        changes[p].append(Seen(at, event["actor"]))
        newest[p] = max(newest.get(p, at), at)
    for record in directory:
        if record["kind"] == "profile":
            p = partition_of(record["user_id"], settings.activity_partitions)
            at, created = ms(record["updated"]), ms(record["created"])
            assert at is not None and created is not None
            changes[p].append(
                ProfileChange(at, record["user_id"], record["status"] == "enabled", created)
            )
    out: list[Transition] = []
    for p, items in changes.items():
        if p not in newest:
            continue  # no activity: the event clock of this partition never started
        machine = InactivityMachine(definitions_from(settings))
        # Only what the clock has passed: the last hour stays in the worker's reorder buffer (an
        # at-risk crossing can fall inside it, where no day-multiple threshold did).
        clock = newest[p] - lateness
        released = sorted({c for c in items if c.at_ms <= clock}, key=change_order)
        out += machine.release(released, clock)
    return sorted(out)


def as_transition(record: dict[str, Any]) -> Transition:
    threshold = record.get("threshold_seconds")
    away = record.get("away_seconds")
    return Transition(
        at_ms=ms(record["at"]),  # type: ignore[arg-type]
        user_id=record["user_id"],
        kind=record["kind"],
        threshold_ms=None if threshold is None else threshold * 1000,
        last_seen_ms=ms(record["last_seen"]),
        created_ms=ms(record["created"]),
        away_ms=None if away is None else round(away * 1000),
        at_risk_ms=ms(record.get("at_risk_since")),
        active_days=record["rhythm"]["active_days"] if "rhythm" in record else None,
        only_at_risk=record.get("ends") == "at_risk",
    )


@pytest.fixture
def event_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "clock": "event",
            "inactivity_thresholds": "30d,90d",
            "never_active_grace": "14d",
            "allowed_lateness": "1h",
            "sweep_interval_seconds": 0.3,
        }
    )


async def replay(
    settings: Settings, store: RedisStore, worker_factory: Any, kill_at: float | None
) -> tuple[list[Transition], list[Any], Any]:
    directory = list(directory_records(300, START, DAYS, seed=31))
    events = list(generate_events(300, DAYS, START, seed=31))
    # Out of order within the allowed lateness (1 h): shuffle each hour's events.
    rng = random.Random(4)
    by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_hour[(ms(event["time"]) or 0) // 3_600_000].append(event)
    events = []
    for hour in sorted(by_hour):
        rng.shuffle(by_hour[hour])
        events += by_hour[hour]
    expected = expected_transitions(settings, events, directory)
    topics = TopicNames.from_settings(settings)
    worker = await worker_factory(settings).started()
    await produce_raw(
        settings,
        [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
        topic=topics.directory,
    )

    await eventually(
        lambda: _directory_folded(worker, len(directory)),
        60,
        "directory folded",
        worker.check_alive,
    )
    producing = asyncio.create_task(produce_raw(settings, keyed(events), rate=15_000))
    if kill_at is not None:

        async def reached() -> bool:
            return await applied_count(store, settings) >= kill_at * len(events)

        await eventually(reached, 120, f"{kill_at:.0%} folded", worker.check_alive)
        worker.kill()
        worker = await worker_factory(settings).started()
    await producing
    await wait_fully_applied(store, settings, 180, worker.check_alive)
    records = await read_topic(settings, topics.flagged, expected=len(expected), timeout=90)
    await asyncio.sleep(2)  # a few more sweeps: nothing may be published twice
    records = await read_topic(settings, topics.flagged, expected=len(expected) + 1, timeout=3)
    return expected, records, worker


def held_flags(records: list[Any]) -> dict[str, set[str]]:
    """What each user holds after the topic's records, replayed in order."""
    held: dict[str, set[str]] = defaultdict(set)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        doc = jsonutil.loads(record.value)
        if doc["kind"] == "inactive":
            held[doc["user_id"]].add(f"inactive:{doc['threshold']}")
        elif doc["kind"] == "never_active":
            held[doc["user_id"]].add("never_active")
        else:
            held[doc["user_id"]].clear()
    return held


def gauge(worker: Any, name: str, labels: str = "") -> float:
    _, body = worker.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(f"{name}{labels} ") or line.startswith(f"{name}{labels}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not exposed")


class TestEventClockReplay:
    async def test_two_hundred_days_publish_exactly_the_oracles_flags(
        self, event_settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Every inactive, never-active, at-risk, reactivated and withdrawn record, once, as the
        oracle."""
        expected, records, worker = await replay(event_settings, store, worker_factory, None)
        got = sorted(as_transition(jsonutil.loads(r.value)) for r in records)
        kinds = {t.kind for t in expected}
        assert {"inactive", "never_active", "at_risk", "reactivated", "withdrawn"} == kinds
        assert expected == got
        per_partition: dict[int, list[int]] = defaultdict(list)
        for r in records:
            per_partition[r.partition].append(int(dict(r.headers)[FLAG_SEQ]))
        for seqs in per_partition.values():
            assert list(range(1, len(seqs) + 1)) == seqs, "gapless, in order, once"

        # The CLI and the gauges say what the topic says.
        held = held_flags(records)
        for flag, args in (
            ("inactive:30d", ["--threshold", "30d"]),
            ("inactive:90d", ["--threshold", "90d"]),
            ("never_active", ["--never-active"]),
        ):
            listed = esn(event_settings, "inactive", *args, "--format", "json")
            assert 0 == listed.returncode, listed.stderr
            rows = jsonutil.loads(listed.stdout)["users"]
            assert {u for u, flags in held.items() if flag in flags} == {r["user_id"] for r in rows}
            seen = [r["last_seen"] or r["created"] for r in rows]
            assert sorted(seen, reverse=True) == seen, "newest silence first"
            if flag.startswith("inactive:"):
                label = f'{{threshold="{flag.split(":")[1]}"}}'
                assert len(rows) == gauge(worker, "esn_users_inactive", label)
            else:
                assert len(rows) == gauge(worker, "esn_users_never_active")
        everyone = jsonutil.loads(esn(event_settings, "inactive", "--json").stdout)["users"]
        department = everyone[0]["department"]
        in_department = esn(
            event_settings, "inactive", "--department", department, "--format", "json"
        )
        assert [r for r in everyone if r["department"] == department] == jsonutil.loads(
            in_department.stdout
        )["users"]
        community = next(
            c for r in everyone for c in r["communities"]["member"] + r["communities"]["owner"]
        )
        in_community = esn(event_settings, "inactive", "--community", community, "--format", "json")
        assert [
            r for r in everyone if any(community in ids for ids in r["communities"].values())
        ] == jsonutil.loads(in_community.stdout)["users"]
        some_user = next(u for u, flags in held.items() if flags)
        shown = jsonutil.loads(esn(event_settings, "user", some_user, "--json").stdout)
        assert (True, sorted(held[some_user])) == (shown["enabled"], sorted(shown["flags"]))
        await assert_department_counts_exact(store, event_settings, settle_seconds=30)

    async def test_a_sigkill_mid_replay_neither_loses_nor_repeats_a_flag(
        self, event_settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Killed half-way, the restarted worker ends with the same records, none twice."""
        expected, records, _ = await replay(event_settings, store, worker_factory, kill_at=0.5)
        got = sorted(as_transition(jsonutil.loads(r.value)) for r in records)
        assert expected == got
        # The department counts the releases kept: no drift from the replayed batches.
        await assert_department_counts_exact(store, event_settings, settle_seconds=30)


async def _directory_folded(worker: Any, count: int) -> bool:
    _, body = await asyncio.to_thread(worker.get, "/metrics")
    return count <= sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("esn_directory_records_total{")
    )


def users_per_partition(partitions: int, prefix: str) -> dict[int, str]:
    """One user id that the default partitioner sends to each partition."""
    found: dict[int, str] = {}
    index = 0
    while len(found) < partitions:
        name = f"{prefix}{index}"
        found.setdefault(partition_of(name, partitions), name)
        index += 1
    return found


class TestOrderingCases:
    async def test_late_events_and_late_profiles_are_ordered_by_event_time(
        self, event_settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """An event 30 min late just before a crossing prevents the flag; a profile sent after
        the activity still sets the user's created time on the flag."""
        settings = event_settings.model_copy(update={"inactivity_thresholds": "30d"})
        topics = TopicNames.from_settings(settings)
        t0 = epoch_ms(datetime.fromisoformat("2026-02-01T09:00:00+00:00"))
        day, minute = 86_400_000, 60_000

        def event(actor: str, at: int, n: int) -> tuple[bytes, bytes]:
            iso = datetime.fromtimestamp(at / 1000, tz=UTC).isoformat()
            doc = {"id": f"{actor}-{n}", "type": "view", "actor": actor, "time": iso}
            return actor.encode(), jsonutil.dumps(doc)

        def profile(user: str, created: int, updated: int) -> tuple[bytes, bytes]:
            doc = {
                "user_id": user,
                "status": "enabled",
                "created": datetime.fromtimestamp(created / 1000, tz=UTC).isoformat(),
                "updated": datetime.fromtimestamp(updated / 1000, tz=UTC).isoformat(),
            }
            return user.encode(), jsonutil.dumps(doc)

        worker = await worker_factory(settings).started()
        await produce_raw(settings, [profile("never", t0, t0)], topic=topics.directory)
        await produce_raw(
            settings,
            [
                event("ooo", t0, 1),
                event("ooo", t0 + 30 * day + 20 * minute, 2),  # sent before...
                event("ooo", t0 + 30 * day - 10 * minute, 3),  # ...this one, 30 min late
                event("late-dir", t0 + day, 1),
            ],
        )
        await produce_raw(
            settings, [profile("late-dir", t0 - 100 * day, t0 + day + 10 * minute)],
            topic=topics.directory,
        )  # fmt: skip

        await eventually(
            lambda: _directory_folded(worker, 2), 60, "profiles folded", worker.check_alive
        )
        ticks = users_per_partition(settings.activity_partitions, "tick-")
        await produce_raw(settings, [event(u, t0 + 40 * day, 1) for u in ticks.values()])
        records = await read_topic(settings, topics.flagged, expected=2, timeout=60)
        await asyncio.sleep(1)
        records = await read_topic(settings, topics.flagged, expected=3, timeout=3)
        worker.check_alive()
        got = sorted(
            (d["kind"], d["user_id"], ms(d["at"]), ms(d["created"]))
            for d in (jsonutil.loads(r.value) for r in records)
        )
        assert [
            ("inactive", "late-dir", t0 + 31 * day, t0 - 100 * day),
            ("never_active", "never", t0 + 14 * day, t0),
        ] == got


class TestWallClock:
    async def test_live_mode_flags_by_the_wall_clock(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """With ESN_CLOCK=wall a user silent for 40 days is flagged at last seen + 30 days."""
        live = settings.model_copy(
            update={"clock": "wall", "allowed_lateness": "1s", "sweep_interval_seconds": 0.3}
        )
        now = int(datetime.now(UTC).timestamp() * 1000)
        day = 86_400_000
        last = now - 40 * day
        doc = {
            "id": "w1",
            "type": "login",
            "actor": "quiet",
            "time": datetime.fromtimestamp(last / 1000, tz=UTC).isoformat(),
        }
        worker = await worker_factory(live).started()
        await produce_raw(live, [(b"quiet", jsonutil.dumps(doc))])
        (record,) = await read_topic(live, TopicNames.from_settings(live).flagged, 1, timeout=30)
        flag = jsonutil.loads(record.value)
        worker.check_alive()
        assert ("inactive", "quiet", "30d", last + 30 * day) == (
            flag["kind"],
            flag["user_id"],
            flag["threshold"],
            ms(flag["at"]),
        )
