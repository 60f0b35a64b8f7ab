"""Nothing stops the pipeline: hostile records, a script that refuses, lost state, outages."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from datetime import date
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream import jsonutil
from stream.clients import new_admin, new_producer
from stream.events import Activity
from stream.fold import PartitionDelta
from stream.generator import generate_events
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import ApplyOutcome, DirectoryStore, RedisStore
from stream.store.redis_store import ApplyResult
from stream.topics import (
    DLQ_EXCEPTION,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TRUNCATED,
    TopicNames,
)
from tests.support import (
    Oracle,
    applied_count,
    eventually,
    free_port,
    keyed,
    produce_raw,
    read_topic,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

START = date(2026, 5, 1)
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
GOOD = {"id": "h", "type": "login", "time": "2026-05-03T10:00:00Z"}


def event(actor: str, **fields: Any) -> bytes:
    return jsonutil.dumps({**GOOD, "actor": actor, **fields})


def hostile_corpus() -> list[tuple[str, Record]]:
    """(expected reason, record): every kind of hostile record the brief names, and more."""
    huge = "x" * 100_000
    corpus: list[tuple[str, Record]] = [
        ("not_json", (b"u000001", None, [])),  # a tombstone
        ("not_json", (b"u000001", b'\xff\xfe{"id":1}', [])),
        ("key_mismatch", (b"\xff\xfeu000001", event("u000001"), [])),
        ("not_json", (b"u000001", b"[" * 100_000 + b"]" * 100_000, [])),
        ("not_json", (b"u000001", event("u000001")[:-1] + b',"n":NaN}', [])),
        ("not_json", (b"u000001", event("u000001")[:-1] + b',"n":Infinity}', [])),
        ("not_json", (b"u000001", event("u000001")[:-1] + b',"n":"\\udc00"}', [])),
        ("too_large", (b"u000001", event("u000001", pad="p" * 2_000_000), [])),
        ("not_object", (b"u000001", b"[1,2]", [])),
        ("bad_cloudevent", (b"u000001", b'{"specversion":"0.3","data":{}}', [])),
        ("bad_cloudevent", (b"u000001", b'{"specversion":"1.0","data":"text"}', [])),
    ]
    for when in (
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2031-01-01T00:00:00Z",
        1_700_000_000,
        -1,
        1e300,
    ):
        corpus.append(("bad_time", (b"u000002", event("u000002", time=when), [])))
    for field in ("id", "community", "target_user", "source"):
        corpus.append(("bad_field", (b"u000003", event("u000003", **{field: huge}), [])))
    corpus.append(("bad_field", (huge.encode(), event(huge), [])))
    corpus.append(("bad_field", (b"u", event("u", object={"type": "post", "id": huge}), [])))
    for actor in ("u\x00", "u\n1", "u\t1", "\x1b[2Ju"):
        corpus.append(("bad_field", (actor.encode(), event(actor), [])))
    corpus.append(("bad_field", (b"u000004", event("u000004", type="<script>"), [])))
    corpus.append(("missing_field", (b"u000004", b"{}", [("x", b"\xff" * 1000)])))
    return corpus


def valid_oddities() -> list[dict[str, Any]]:
    """Valid by the contract although odd: they must fold like any other event."""
    return [
        {**GOOD, "id": "m1", "actor": "<b>markup</b>"},
        {**GOOD, "id": "m2", "actor": "caf\u00e9"},  # NFC
        {**GOOD, "id": "m3", "actor": "cafe\u0301"},  # NFD: a different id, kept apart
        {**GOOD, "id": "m4", "actor": "u000005", "community": "c\x01ctl", "target_user": "t\x02"},
        {**GOOD, "id": "m5", "actor": "u000006", "object": {"type": "post", "id": "p\x00x"}},
        {**GOOD, "id": "m6", "actor": "u000007", "time": "2026-05-03 10:00:00.1234567Z"},
    ]


async def produce_records(settings: Settings, records: list[Record]) -> None:
    """Send records exactly as given, headers included, allowing values up to 4 MB."""
    producer = new_producer(
        settings,
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        topic = TopicNames.from_settings(settings).activity
        pending = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def allow_large_records(settings: Settings, topic: str) -> None:
    """Raise the topic's record limit, as an operator might: the gate must still bound them."""
    admin = new_admin(settings)
    await admin.start()
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(8 * 1024 * 1024)}
        )
        await admin.alter_configs([resource])
    finally:
        await admin.close()


class TestHostileCorpus:
    async def test_hostile_records_are_dead_lettered_once_and_the_rest_folds(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Worker alive, every hostile record once in the DLQ with its reason, all valid folded."""
        topics = TopicNames.from_settings(settings)
        await allow_large_records(settings, topics.activity)
        valid = list(generate_events(users=60, days=10, start=START, seed=5)) + valid_oddities()
        corpus = hostile_corpus()
        rng = random.Random(11)
        records: list[Record] = [(e["actor"].encode(), jsonutil.dumps(e), []) for e in valid]
        # Hostile records between valid ones, on every partition their keys hash to.
        for _, record in corpus:
            records.insert(rng.randrange(len(records) + 1), record)
        worker = await worker_factory().started()
        await produce_records(settings, records)
        await wait_fully_applied(store, settings, 180, worker.check_alive)
        worker.check_alive()
        await Oracle.of(valid).assert_matches(store)

        dead = await read_topic(settings, topics.activity_dlq, len(corpus) + 1, timeout=10)
        assert len(corpus) == len(dead), "each hostile record is dead-lettered exactly once"
        sources = {(dict(r.headers)[DLQ_PARTITION], dict(r.headers)[DLQ_OFFSET]) for r in dead}
        assert len(corpus) == len(sources)
        got = sorted(dict(r.headers)[DLQ_REASON].decode() for r in dead)
        assert sorted(reason for reason, _ in corpus) == got
        (cut,) = [r for r in dead if DLQ_TRUNCATED in dict(r.headers)]
        assert 64 * 1024 == len(cut.value), "a too-large record is kept as its first 64 KiB"
        assert not [r for r in dead if DLQ_EXCEPTION in dict(r.headers)], "no internal errors"
        _, ready = worker.get("/ready")
        assert jsonutil.loads(ready)["ready"] is True


def snapshot_keys(store: RedisStore, prefix: str) -> Any:
    async def snap() -> dict[bytes, tuple[bytes | None, Any]]:
        out = {}
        async for key in store.client.scan_iter(match=prefix + "*", count=1000):
            expires = await store.client.execute_command("PEXPIRETIME", key)
            out[key] = (await store.client.dump(key), expires)
        return out

    return snap()


def delta_of(offset: int, activities: list[Activity]) -> PartitionDelta:
    delta = PartitionDelta("t", 0, first_offset=offset, last_offset=offset)
    for activity in activities:
        delta.add(activity)
    return delta


def login(actor: str, ms: int) -> Activity:
    return Activity("e", actor, ms, "login", "none", "login", "post:p1", "c1", "t1")


class TestScriptAtomicity:
    async def test_a_refused_fold_leaves_state_and_fence_unchanged(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A bad line anywhere in the call: an error reply, and not one key written."""
        day = 20_500 * 86_400_000
        first = delta_of(0, [login("a", day + 1), login("b", day + 2)])
        assert [ApplyResult(ApplyOutcome.APPLIED, -1)] == await store.apply([first], {0: -1})
        before = await snapshot_keys(store, settings.redis_prefix)
        # A negative time can only come from a bug past the gate: the script must refuse it
        # before its first write (the user line comes first, the bad buffer line later).
        broken = delta_of(1, [login("a", day + 3), login("c", day + 4)])
        broken.activity_times.add((-5, "c"))
        (result,) = await store.apply([broken], {0: 0})
        assert (ApplyOutcome.REFUSED, True) == (result.outcome, "reorder buffer" in result.error)
        assert before == await snapshot_keys(store, settings.redis_prefix)
        assert {0: 0} == await store.load_fences("t", [0])

    async def test_a_fence_behind_the_callers_is_reported_and_nothing_written(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Redis that went back (restart, failover) is seen, not folded over."""
        day = 20_500 * 86_400_000
        await store.apply([delta_of(0, [login("a", day)])], {0: -1})
        before = await snapshot_keys(store, settings.redis_prefix)
        (result,) = await store.apply([delta_of(9, [login("a", day + 1)])], {0: 8})
        assert ApplyResult(ApplyOutcome.STATE_LOST, 0) == result
        assert before == await snapshot_keys(store, settings.redis_prefix)


def roster_of(users: list[str]) -> list[tuple[bytes | None, bytes]]:
    """One enabled profile per user, as directory records."""
    profile = {"status": "enabled", "created": "2026-01-01T00:00:00Z"}
    return [
        (u.encode(), jsonutil.dumps({**profile, "user_id": u, "updated": profile["created"]}))
        for u in users
    ]


class TestStateLoss:
    async def test_a_redis_restart_that_lost_directory_writes_is_repaired(
        self,
        settings: Settings,
        store: RedisStore,
        worker_factory: Any,
        local_stack: LocalStack,
    ) -> None:
        """No activity arrives to notice it: the new run id alone brings the directory back."""
        users = [f"r{n:04d}" for n in range(200)]
        directory = DirectoryStore(store)
        worker = await worker_factory().started()
        await produce_raw(
            settings, roster_of(users), topic=TopicNames.from_settings(settings).directory
        )

        async def roster_folded() -> bool:
            return len(await directory.profiles(users)) == len(users)

        await eventually(roster_folded, 60, "the roster folded", worker.check_alive)
        # What an AOF that lost its last second looks like to the directory: the writes gone,
        # the Kafka offsets committed.
        for partition in await store.partitions():
            prefix = store.keys.partition(partition).profile_prefix
            async for key in store.client.scan_iter(match=prefix + "*", count=1000):
                await store.client.delete(key)
        assert await asyncio.to_thread(local_stack.stop_redis)
        await asyncio.to_thread(local_stack.start_redis)
        await eventually(roster_folded, 60, "the roster back after the restart", worker.check_alive)

    async def test_keys_deleted_mid_stream_are_rebuilt_from_the_topic(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """A Redis emptied under a running worker: detected, re-read, exact again."""
        events = list(generate_events(users=300, days=20, start=START, seed=17))
        users = sorted({e["actor"] for e in events})
        roster = roster_of(users)
        directory = DirectoryStore(store)
        half = len(events) // 2
        worker = await worker_factory().started()
        await produce_raw(settings, roster, topic=TopicNames.from_settings(settings).directory)
        await produce_raw(settings, keyed(events[:half]))
        await wait_fully_applied(store, settings, 120, worker.check_alive)

        async def roster_folded() -> bool:
            return len(await directory.profiles(users)) == len(users)

        await eventually(roster_folded, 60, "the roster folded", worker.check_alive)
        async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
            await store.client.delete(key)
        await produce_raw(settings, keyed(events[half:]))
        await wait_fully_applied(store, settings, 180, worker.check_alive)
        await Oracle.of(events).assert_matches(store)
        # The directory has no fence of its own: it is read again with the lost partitions.
        await eventually(roster_folded, 60, "the roster back", worker.check_alive)
        _, body = worker.get("/metrics")
        losses = [
            line for line in body.decode().splitlines() if line.startswith("esn_state_losses_total")
        ]
        assert float(losses[0].rsplit(" ", 1)[1]) >= 1


class TestOutages:
    async def test_kafka_unreachable_at_start_waits_and_stops_on_sigterm(
        self, settings: Settings, worker_factory: Any
    ) -> None:
        """No crash loop: /health up, /ready 503 naming Kafka, a prompt exit on SIGTERM."""
        nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
        worker = worker_factory(nowhere).start()

        async def answering() -> bool:
            return (await asyncio.to_thread(worker.get, "/health"))[0] == 200

        await eventually(answering, 60, "/health while Kafka is unreachable", worker.check_alive)
        status, body = worker.get("/ready")
        reasons = jsonutil.loads(body)["reasons"]
        assert (503, True) == (status, any("Kafka" in reason for reason in reasons))
        await asyncio.sleep(4)  # a few retries
        worker.check_alive()
        assert worker.proc is not None
        stopped = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(worker.proc.wait, 15)
        assert time.monotonic() - stopped < 10
        log = worker.log_path.read_text()
        assert "Traceback" not in log
        retries = [line for line in log.splitlines() if "Not starting yet" in line]
        assert 1 <= len(retries) <= 5, "one line per retry, with backoff"

    async def test_redis_down_at_start_then_back_begins_and_folds_exactly(
        self,
        settings: Settings,
        store: RedisStore,
        worker_factory: Any,
        local_stack: LocalStack,
    ) -> None:
        """Started while Redis is away, the worker begins when it returns."""
        events = list(generate_events(users=100, days=10, start=START, seed=19))
        await produce_raw(settings, keyed(events))
        assert await asyncio.to_thread(local_stack.stop_redis), "the test stack owns Redis"
        try:
            worker = worker_factory().start()

            async def says_redis() -> bool:
                status, body = await asyncio.to_thread(worker.get, "/ready")
                return status == 503 and b"Redis" in body

            await eventually(says_redis, 60, "/ready naming Redis", worker.check_alive)
        finally:
            await asyncio.to_thread(local_stack.start_redis)
        await wait_fully_applied(store, settings, 180, worker.check_alive)
        await Oracle.of(events).assert_matches(store)

    async def test_sigterm_while_redis_is_down_stops_within_the_deadline(
        self,
        settings: Settings,
        store: RedisStore,
        worker_factory: Any,
        local_stack: LocalStack,
    ) -> None:
        """A stop never hangs on a retry loop; the next worker folds what was left, exactly."""
        events = list(generate_events(users=200, days=10, start=START, seed=23))
        worker = await worker_factory().started()
        await produce_raw(settings, keyed(events[:1000]))
        await wait_fully_applied(store, settings, 120, worker.check_alive)
        assert await asyncio.to_thread(local_stack.stop_redis)
        try:
            await produce_raw(settings, keyed(events[1000:]))

            async def retrying() -> bool:
                return "Redis apply failed" in worker.log_path.read_text()

            await eventually(retrying, 60, "the worker to retry Redis", worker.check_alive)
            assert worker.proc is not None
            stopped = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.proc.wait, 40)
            assert time.monotonic() - stopped < 30, f"stopped with {code}"
        finally:
            await asyncio.to_thread(local_stack.start_redis)
        second = await worker_factory().started()
        await wait_fully_applied(store, settings, 180, second.check_alive)
        await Oracle.of(events).assert_matches(store)
        assert await applied_count(store, settings) == len(events)
