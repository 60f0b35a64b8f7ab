"""Configuration changes on the real stack: a worker runs a 200-day history under one configuration,
stops, and a worker with another starts. Thresholds and grace are migrated (each resulting record
published once, as computed here from the input); bucket count and activity types are refused in
one line with exit code 1 (a bad setting), and ``esn-pulse rebuild`` then replays the topics
under the new ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from typing import Any

import pytest

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.flags.definitions import encode_definitions
from stream.flags.machine import (
    Change,
    InactivityMachine,
    ProfileChange,
    Seen,
    Transition,
    change_order,
    definitions_from,
    parse_duration_ms,
    threshold_label,
)
from stream.generator import directory_records, generate_events
from stream.settings import Settings
from stream.store import LAYOUT, FlagReads, InitiativeStore, RedisStore
from stream.store.definitions_store import DefinitionsStore
from stream.store.redis_store import text
from stream.topics import FLAG_SEQ, TopicNames
from tests.integration.test_inactivity import (
    _directory_folded,
    as_transition,
    ms,
    partition_of,
)
from tests.support import (
    REPO,
    Oracle,
    eventually,
    keyed,
    produce_raw,
    read_topic,
    settings_env,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

START = date(2025, 9, 1)
DAYS = 200
USERS = 120
Flag = tuple[str, int | None]


@pytest.fixture
def base(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "clock": "event",
            "inactivity_thresholds": "30d,90d",
            "never_active_grace": "14d",
            "allowed_lateness": "1h",
            "sweep_interval_seconds": 0.3,
        }
    )


def history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = list(generate_events(USERS, DAYS, START, seed=5))
    return events, list(directory_records(USERS, START, DAYS, seed=5))


def held_by(transitions: list[Transition]) -> dict[str, dict[Flag, Transition]]:
    """What each user holds at the end of a run, with the record that raised each flag."""
    held: dict[str, dict[Flag, Transition]] = defaultdict(dict)
    for t in transitions:
        if t.kind == "inactive":
            held[t.user_id].pop(("at_risk", None), None)  # the first threshold supersedes it
            held[t.user_id][("inactive", t.threshold_ms)] = t
        elif t.kind == "never_active":
            held[t.user_id][("never_active", None)] = t
        elif t.kind == "at_risk":
            held[t.user_id][("at_risk", None)] = t
        elif t.kind == "withdrawn" and t.threshold_ms is not None:
            held[t.user_id].pop(("inactive", t.threshold_ms), None)
        elif t.kind == "withdrawn" and t.only_at_risk:
            held[t.user_id].pop(("at_risk", None), None)
        else:
            held[t.user_id].clear()
    return held


def released_at(settings: Settings, events: list[dict[str, Any]]) -> dict[int, int]:
    """Each partition's event-clock watermark once everything is folded."""
    newest: dict[int, int] = {}
    for event in events:
        p = partition_of(event["actor"], settings.activity_partitions)
        newest[p] = max(newest.get(p, 0), ms(event["time"]) or 0)
    lateness = parse_duration_ms(settings.allowed_lateness)
    return {p: at - lateness for p, at in newest.items()}


def released_run(
    settings: Settings, events: list[dict[str, Any]], directory: list[dict[str, Any]]
) -> list[Transition]:
    """A run per partition over what its watermark released: later changes wait in the buffer.

    The watermark follows every event; only the counted types are activity.
    """
    types = {t.strip() for t in settings.activity_types.split(",") if t.strip()}
    changes: dict[int, list[Change]] = defaultdict(list)
    for event in events:
        if types and event["type"] not in types:
            continue
        at = ms(event["time"])
        assert at is not None
        changes[partition_of(event["actor"], settings.activity_partitions)].append(
            Seen(at, event["actor"])
        )
    for record in directory:
        if record["kind"] == "profile":
            at, created = ms(record["updated"]), ms(record["created"])
            assert at is not None and created is not None
            p = partition_of(record["user_id"], settings.activity_partitions)
            enabled = record["status"] == "enabled"
            changes[p].append(ProfileChange(at, record["user_id"], enabled, created))
    out: list[Transition] = []
    for p, released in released_at(settings, events).items():
        machine = InactivityMachine(definitions_from(settings))
        due = sorted({c for c in changes[p] if c.at_ms <= released}, key=change_order)
        out += machine.release(due, released)
    return sorted(out)


def migration_records(
    old: Settings, new: Settings, events: list[dict[str, Any]], directory: list[dict[str, Any]]
) -> list[Transition]:
    """The records that lead from what a run under ``old`` holds to what one under ``new`` does,
    at each partition's released instant."""
    held_old = held_by(released_run(old, events, directory))
    held_new = held_by(released_run(new, events, directory))
    released = released_at(old, events)
    out: list[Transition] = []
    for user in set(held_old) | set(held_new):
        before, after = held_old.get(user, {}), held_new.get(user, {})
        at = released[partition_of(user, old.activity_partitions)]
        inactive_after = any(flag[0] == "inactive" for flag in after)
        for flag in before.keys() - after.keys():
            raised = before[flag]
            if flag[0] == "at_risk":
                if not inactive_after:  # else superseded by the inactivity flag: no record
                    out.append(
                        Transition(at, user, "withdrawn", None, raised.last_seen_ms,
                                   raised.created_ms, at_risk_ms=raised.at_risk_ms,
                                   only_at_risk=True)
                    )  # fmt: skip
                continue
            out.append(
                Transition(at, user, "withdrawn", flag[1], raised.last_seen_ms, raised.created_ms)
            )
        held_at_risk = before.get(("at_risk", None))
        for flag in after.keys() - before.keys():
            raised = after[flag]
            if flag[0] == "inactive":
                # A migration's inactivity flag supersedes the at-risk flag held before it.
                first = raised.threshold_ms == definitions_from(new).thresholds_ms[0]
                since = held_at_risk.at_risk_ms if held_at_risk and first else None
                raised = dataclasses.replace(raised, at_risk_ms=since)
            out.append(raised)
    return sorted(out)


async def first_run(
    settings: Settings, worker_factory: Any, store: RedisStore
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Fold the whole history under ``settings``, wait for every flag, stop the worker."""
    events, directory = history()
    topics = TopicNames.from_settings(settings)
    worker = await worker_factory(settings).started()
    await produce_raw(
        settings,
        [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
        topic=topics.directory,
    )
    await eventually(
        lambda: _directory_folded(worker, len(directory)), 60, "directory", worker.check_alive
    )
    await produce_raw(settings, keyed(events))
    await wait_fully_applied(store, settings, 120, worker.check_alive)
    expected = released_run(settings, events, directory)
    records = await read_topic(settings, topics.flagged, len(expected), timeout=90)
    assert expected == sorted(as_transition(jsonutil.loads(r.value)) for r in records)
    await sweeps_done(worker, 2)
    await released_to_the_end(store, settings, events, worker)
    worker.stop()
    return events, directory, records


async def released_to_the_end(
    store: RedisStore, settings: Settings, events: list[dict[str, Any]], worker: Any
) -> None:
    """Until every partition's states are released to its final watermark, as the oracles
    assume (a migration withdraws and raises at that instant).

    A finished sweep is not enough: one that ran while the consumer was rebalancing swept the
    partitions it held then, maybe none, and still counts as a sweep. The likely cause of a
    clean-clone CI run's migration records 13 days early: the first worker stopped with a
    partition's states released to an earlier watermark, and the migration (rightly) withdrew
    at the instant they were released to.
    """
    expected = released_at(settings, events)
    definitions = DefinitionsStore(store)

    async def released() -> bool:
        found = {p: (await definitions.partition(p)).released_ms for p in expected}
        return found == expected

    await eventually(released, 60, "every partition released to the end", worker.check_alive)


async def sweeps_done(worker: Any, count: int) -> None:
    """Wait until ``count`` sweeps started after now have finished (nothing more to publish)."""
    for _ in range(count):
        started = time.time()

        async def finished(started: float = started) -> bool:
            _, body = await asyncio.to_thread(worker.get, "/metrics")
            for line in body.decode().splitlines():
                if line.startswith("esn_sweep_age_seconds "):
                    return float(line.split()[1]) < time.time() - started
            return False

        await eventually(finished, 30, "a sweep", worker.check_alive)


async def markers(store: RedisStore) -> dict[int, str]:
    out = {}
    for partition in await store.partitions():
        raw = await store.client.hgetall(store.keys.partition(partition).inactivity_definitions)
        out.update({int(text(p)): text(v).partition("\t")[0] for p, v in raw.items()})
    return out


async def second_run(
    new: Settings,
    worker_factory: Any,
    store: RedisStore,
    events: list[dict[str, Any]],
    before: int,
    expected: int,
    kill_first: bool = False,
) -> tuple[list[Any], Any]:
    """Start under ``new``; wait for every partition to be migrated and ``expected`` records."""
    flagged = TopicNames.from_settings(new).flagged
    encoded = encode_definitions(definitions_from(new))
    partitions = set(released_at(new, events))
    if kill_first:
        # SIGKILL as soon as the first partition is migrated: the rest is done after a restart.
        worker = worker_factory(new).start()

        async def one_migrated() -> bool:
            return encoded in (await markers(store)).values()

        await eventually(one_migrated, 90, "a first partition migrated", worker.check_alive)
        worker.kill()
    worker = await worker_factory(new).started()

    async def migrated() -> bool:
        found = await markers(store)
        return all(found.get(p) == encoded for p in partitions)

    await eventually(migrated, 60, "every partition migrated", worker.check_alive)
    records = await read_topic(new, flagged, before + expected, timeout=60)
    await sweeps_done(worker, 2)
    records = await read_topic(new, flagged, before + expected + 1, timeout=3)
    worker.check_alive()
    return records, worker


def after_first(records: list[Any], first: list[Any]) -> list[Any]:
    seen = {(r.partition, r.offset) for r in first}
    return [r for r in records if (r.partition, r.offset) not in seen]


def assert_gapless(records: list[Any]) -> None:
    per_partition: dict[int, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_partition[r.partition].append(int(dict(r.headers)[FLAG_SEQ]))
    for seqs in per_partition.values():
        assert list(range(1, len(seqs) + 1)) == seqs, "numbered once each, no gap"


async def assert_counts(store: RedisStore, settings: Settings, held: dict[str, Any]) -> None:
    """The gauges' counts say what the users hold under the new definitions."""
    counts = await FlagReads(store).inactivity_counts()
    for threshold in (1, 30, 60, 90):
        label = threshold_label(threshold * 86_400_000)
        flag = ("inactive", threshold * 86_400_000)
        assert sum(flag in f for f in held.values()) == counts.get(f"inactive:{label}", 0), label
    never = sum(("never_active", None) in f for f in held.values())
    assert never == counts.get("never_active", 0)


async def contents(store: RedisStore, name: str) -> Any:
    """What a hash or sorted set holds (DUMP bytes follow a hash table's order: a hash past 128
    fields or 64-byte values is one, and its order moves while Redis rehashes it)."""
    kind = text(await store.client.type(name))
    if kind == "hash":
        return kind, await store.client.hgetall(name)
    if kind == "zset":
        return kind, await store.client.zrange(name, 0, -1, withscores=True)
    assert kind == "none", f"{name} is a {kind}"
    return kind, None


class TestDefinitionsMigrate:
    @pytest.mark.parametrize(
        ("old", "new", "kill"),
        [
            ({}, {"inactivity_thresholds": "30d"}, True),  # removed (SIGKILL mid-migration)
            ({"inactivity_thresholds": "30d"}, {"inactivity_thresholds": "30d,90d"}, False),
            ({}, {"inactivity_thresholds": "1d,60d"}, False),  # added below, replaced
            ({}, {"never_active_grace": "200d"}, False),  # longer grace
            ({"never_active_grace": "200d"}, {"never_active_grace": "14d"}, False),  # shorter
        ],
        ids=["remove-killed", "add", "replace", "longer-grace", "shorter-grace"],
    )
    async def test_the_restarted_worker_publishes_each_change_once(
        self,
        base: Settings,
        store: RedisStore,
        worker_factory: Any,
        old: dict[str, str],
        new: dict[str, str],
        kill: bool,
    ) -> None:
        """Withdrawn and raised records, exactly the computed ones, once; then what a run
        under the new definitions holds, in the flags and the gauges' counts."""
        before = base.model_copy(update=old)
        after = base.model_copy(update=new)
        events, directory, first = await first_run(before, worker_factory, store)
        expected = migration_records(before, after, events, directory)
        assert expected, "the change must change something for this test to mean anything"
        records, _ = await second_run(
            after, worker_factory, store, events, len(first), len(expected), kill_first=kill
        )
        added = [jsonutil.loads(r.value) for r in after_first(records, first)]
        assert expected == sorted(as_transition(doc) for doc in added)
        assert len({doc["event_id"] for doc in added}) == len(added)
        for doc in added:
            if doc["kind"] == "withdrawn":
                assert "definitions_changed" == doc["reason"]
        assert_gapless(records)
        held = held_by(released_run(after, events, directory))
        await assert_counts(store, after, {u: f for u, f in held.items() if f})

    async def test_reordered_thresholds_change_nothing(
        self, base: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """ "90d,30d" is "30d,90d": no record, no write to the inactivity state."""
        events, _, first = await first_run(base, worker_factory, store)
        keys = store.keys
        names = []
        for p in range(base.activity_partitions):
            k = keys.partition(p)
            names += [k.inactivity_counts, k.inactivity_definitions]
            names += [k.inactivity_states, k.due, k.flag_history]
        dumped = [await contents(store, name) for name in names]
        reordered = base.model_copy(update={"inactivity_thresholds": " 90d, 30d "})
        records, _ = await second_run(reordered, worker_factory, store, events, len(first), 0)
        assert len(first) == len(records)
        assert dumped == [await contents(store, name) for name in names]


def esn(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def assert_replayed_exactly(
    settings: Settings, store: RedisStore, worker_factory: Any, first_run_output: Any
) -> None:
    """After a rebuild: a worker replays the topics into exactly the state and flags a run
    under ``settings`` gives, and the flag numbering continues after the first run's."""
    events, directory, first = first_run_output
    worker = await worker_factory(settings).started()
    await wait_fully_applied(store, settings, 120, worker.check_alive)
    expected = released_run(settings, events, directory)
    flagged = TopicNames.from_settings(settings).flagged
    records = await read_topic(settings, flagged, len(first) + len(expected), timeout=90)
    await sweeps_done(worker, 2)
    records = await read_topic(settings, flagged, len(first) + len(expected) + 1, 3)
    replayed = after_first(records, first)
    assert expected == sorted(as_transition(jsonutil.loads(r.value)) for r in replayed)
    assert_gapless(records)  # the numbering continues after the rebuild
    if not settings.activity_types:
        await Oracle.of(events).assert_matches(store)


class TestRefusedUntilRebuilt:
    @pytest.mark.parametrize(
        ("change", "setting"),
        [
            ({"user_buckets": 64}, "ESN_USER_BUCKETS"),
            ({"activity_types": "post,comment,like"}, "ESN_ACTIVITY_TYPES"),
        ],
        ids=["buckets", "activity-types"],
    )
    async def test_one_line_exit_1_then_rebuild_replays_under_the_new_setting(
        self,
        base: Settings,
        store: RedisStore,
        worker_factory: Any,
        change: dict[str, Any],
        setting: str,
    ) -> None:
        """The worker refuses in one line naming the setting and the rebuild; after
        ``esn-pulse rebuild --yes`` a worker under the new setting rebuilds exactly."""
        events, directory, first = await first_run(base, worker_factory, store)
        changed = base.model_copy(update=change)
        refused = worker_factory(changed).start()
        assert refused.proc is not None
        code = await asyncio.to_thread(refused.proc.wait, 120)
        lines = [line for line in refused.log_path.read_text().splitlines() if line.strip()]
        assert (ExitCode.BAD_CONFIG, 1) == (code, len(lines)), lines
        assert setting in lines[0] and "esn-pulse rebuild" in lines[0]

        dry = esn(changed, "rebuild")
        assert 0 == dry.returncode, dry.stderr
        assert "nothing done" in dry.stdout
        assert await store.client.exists(
            store.keys.partition(0).fence(TopicNames.from_settings(base).activity)
        )
        done = esn(changed, "rebuild", "--yes")
        assert 0 == done.returncode, done.stderr
        assert "deleted" in done.stdout

        rebuilt_store = RedisStore.from_settings(changed)
        try:
            await assert_replayed_exactly(
                changed, rebuilt_store, worker_factory, (events, directory, first)
            )
        finally:
            await rebuilt_store.close()

    @pytest.mark.parametrize("old", [1, 2, 3])
    async def test_a_state_of_an_older_key_layout_is_refused_then_rebuilt(
        self, base: Settings, store: RedisStore, worker_factory: Any, old: int
    ) -> None:
        """An upgrade from the layout before the hash tags (1), before the day bitmaps (2) or
        before the community health index (3): the worker refuses in one line naming the
        rebuild; ``rebuild --yes`` deletes the old keys, moves the initiatives and the worker
        replays the topics into the new layout, exactly."""
        events, directory, first = await first_run(base, worker_factory, store)
        # What a deployment of an older layout left: its record (layout 1: no layout field), old
        # keys and an initiative under layout 1's names.
        prefix, topic = base.redis_prefix, TopicNames.from_settings(base).activity
        if old == 1:
            await store.client.hdel(store.keys.deployment, "layout")
        else:
            await store.client.hset(store.keys.deployment, "layout", old)
        await store.client.hset(prefix + "u1:7", "someone", "1,2,3")
        await store.client.set(f"{prefix}fence:{topic}:0", 99)
        record = {"name": "onboarding", "start": "2026-01-01", "users": 2, "created": "x"}
        await store.client.hset(prefix + "init", "onboarding", jsonutil.dumps(record))
        await store.client.sadd(prefix + "init:onboarding:users", "u-1", "u-2")

        refused = worker_factory(base).start()
        assert refused.proc is not None
        code = await asyncio.to_thread(refused.proc.wait, 120)
        lines = [line for line in refused.log_path.read_text().splitlines() if line.strip()]
        assert (ExitCode.BAD_CONFIG, 1) == (code, len(lines)), lines
        assert f"key layout {old}," in lines[0] and "esn-pulse rebuild --yes" in lines[0]

        dry = esn(base, "rebuild")
        assert 0 == dry.returncode, dry.stderr
        assert f"from key layout {old} to {LAYOUT}" in dry.stdout and "nothing done" in dry.stdout
        done = esn(base, "rebuild", "--yes")
        assert 0 == done.returncode, done.stderr
        assert f"from key layout {old} to {LAYOUT}" in done.stdout
        for old in (prefix + "u1:7", f"{prefix}fence:{topic}:0", prefix + "init"):
            assert 0 == await store.client.exists(old), old
        initiatives = InitiativeStore(store)
        assert record == await initiatives.record("onboarding")
        assert {"u-1", "u-2"} == await initiatives.users("onboarding")

        await assert_replayed_exactly(base, store, worker_factory, (events, directory, first))
        assert LAYOUT == (await DefinitionsStore(store).stored() or _never()).layout

    async def test_rebuild_refuses_while_a_worker_runs(
        self, base: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Deleting state under a running worker would corrupt it: one line, nothing deleted."""
        await worker_factory(base).started()
        fence = store.keys.partition(0).fence(TopicNames.from_settings(base).activity)
        await store.client.set(fence, 41)
        result = esn(base, "rebuild", "--yes")
        assert ExitCode.FAILURE == result.returncode
        assert 1 == len(result.stderr.strip().splitlines()) and "stop every worker" in result.stderr
        assert b"41" == await store.client.get(fence)


class TestRetention:
    async def test_a_rebuild_says_what_retention_dropped_and_needs_consent(
        self, base: Settings, store: RedisStore
    ) -> None:
        """Records deleted from the activity topic (as retention does) cannot be replayed: the
        rebuild names them and refuses, in one line, unless --allow-loss."""
        from aiokafka import TopicPartition
        from aiokafka.admin import RecordsToDelete

        from stream.clients import new_admin

        events = list(generate_events(10, 5, START, seed=2))[:40]
        await produce_raw(base, keyed(events))
        topic = TopicNames.from_settings(base).activity
        admin = new_admin(base)
        await admin.start()
        try:
            ends = await _ends(base, topic)
            partition = max(ends, key=lambda p: ends[p])
            await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(3)})
        finally:
            await admin.close()
        await store.client.set(store.keys.partition(partition).fence(topic), 10)

        refused = esn(base, "rebuild", "--yes")
        assert ExitCode.FAILURE == refused.returncode
        assert 1 == len(refused.stderr.strip().splitlines())
        assert f"{topic}[{partition}] <3" in refused.stderr and "--allow-loss" in refused.stderr
        assert b"10" == await store.client.get(store.keys.partition(partition).fence(topic))

        done = esn(base, "rebuild", "--yes", "--allow-loss")
        assert 0 == done.returncode, done.stderr
        assert "3 records were beyond retention" in done.stdout
        assert 0 == await store.client.exists(store.keys.partition(partition).fence(topic))


async def _ends(settings: Settings, topic: str) -> dict[int, int]:
    from tests.support import EndOffsets

    async with EndOffsets(settings, topic) as ends:
        return await ends.get()


def _never() -> Any:
    raise AssertionError("no deployment record after the replay")
