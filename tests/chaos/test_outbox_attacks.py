"""Attacks on the flag outbox's reconciliation with its topic (issue 11), real broker and Redis.

Redis losing writes is played by DUMP of every key of the deployment and a later RESTORE of that
snapshot (an older AOF); releases go through the real release.lua (its "ahead" check included)
and community changes through the real community_flags.lua. Every attack ends by reading the
topic read_committed: each change once, esn.seq 1, 2, 3... in offset order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from stream import jsonutil
from stream.analytics.communities import CommunityHealth
from stream.analytics.community_flags import CommunityFlagger
from stream.clients import new_admin
from stream.flags.machine import definitions_from
from stream.flags.publisher import FlagPublisher
from stream.flags.release import InactivitySweeper
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.redis_store import text
from stream.store.release_store import ReleaseCommit, ReleaseStore
from stream.topics import TopicNames
from tests.chaos.flag_topic import committed_flags, log_end

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

Snapshot = dict[bytes, bytes]


class Crash(Exception):
    """The worker dies here (SIGKILL): nothing after this line of the publisher runs."""


# --- Redis as an older AOF leaves it --------------------------------------------------------


async def snapshot(store: RedisStore) -> Snapshot:
    """Every key of the deployment, DUMPed: what an AOF written now would bring back."""
    out: Snapshot = {}
    async for key in store.client.scan_iter(match=store.keys.prefix + "*", count=1000):
        dumped = await store.client.dump(key)
        if dumped is not None:
            out[key] = dumped
    return out


async def rollback(store: RedisStore, older: Snapshot) -> None:
    """Redis restarted from the older AOF: every key of the deployment as it was then."""
    async for key in store.client.scan_iter(match=store.keys.prefix + "*", count=1000):
        await store.client.delete(key)
    for key, dumped in older.items():
        await store.client.restore(key, 0, dumped, replace=True)


# --- releases and the topic -----------------------------------------------------------------


def user_record(user: str) -> dict[str, Any]:
    """A flag record with what the publisher and release.lua read of it."""
    return {"kind": "inactive", "user_id": user, "at": 9000, "event_id": f"{user}:inactive:1:9000"}


async def release(settings: Settings, store: RedisStore, partition: int, users: list[str]) -> int:
    """One commit of release.lua whose records are these users' flags; returns its last seq."""
    sweeper = InactivitySweeper(store, definitions_from(settings))
    stored = await store.client.hget(
        store.keys.partition(partition).inactivity_definitions, str(partition)
    )
    under = text(stored).split("\t", 1)[0] if stored is not None else ""
    records = [user_record(user) for user in users]
    commit = ReleaseCommit(
        under,
        sweeper.encoded,
        "",
        "",
        records=[jsonutil.dumps(r).decode() for r in records],
        event_ids=[r["event_id"] for r in records],
    )
    return await ReleaseStore(store).commit(partition, commit)


async def topic_users(settings: Settings, partition: int) -> list[tuple[int, str]]:
    """(esn.seq, user) of the committed records of a user flag partition, in offset order."""
    return [(seq, doc["user_id"]) for seq, doc in await committed_flags(settings, partition)]


def numbered(users: list[str]) -> list[tuple[int, str]]:
    """The only acceptable topic: each user once, numbered 1, 2, 3... in this order."""
    return list(enumerate(users, start=1))


async def outbox_seqs(store: RedisStore, partition: int) -> list[int]:
    entries: list[Any] = await store.client.lrange(store.keys.partition(partition).outbox, 0, -1)
    return [int(entry.split(b"\t", 1)[0]) for entry in entries]


def crash_at_trim(publisher: FlagPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher's process dies after its commit, before its trim."""

    async def crash(partition: int, last_seq: int) -> int:
        raise Crash(f"killed before trimming {partition} to {last_seq}")

    monkeypatch.setattr(publisher.outbox, "trim", crash)


def pause_before(
    target: object, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """Pause ``target.name`` (a coroutine method) on entry: (reached, resume)."""
    reached, resume = asyncio.Event(), asyncio.Event()
    original: Callable[..., Awaitable[Any]] = getattr(target, name)

    async def paused(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        await resume.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(target, name, paused)
    return reached, resume


async def reached_or_failed(reached: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Wait until the paused call is reached; a task that ended first fails the test."""
    waiter = asyncio.create_task(reached.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        raise AssertionError(f"the pause was never reached ({task!r})")


class TestReleasedAgainAfterARollback:
    async def test_more_records_than_before_in_another_order(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Released again in one go, reversed and with two new records: only the new ones go
        out, after the tail."""
        older = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 0, ["ua", "ub", "uc"])
            await publisher.publish(0)
            await rollback(store, older)
            assert 5 == await release(settings, store, 0, ["uc", "ux", "ua", "ub", "uy"])
            await publisher.publish(0)
            assert numbered(["ua", "ub", "uc", "ux", "uy"]) == await topic_users(settings, 0)
            assert b"5" == await store.client.get(store.keys.partition(0).outbox_seq)
            assert 0 == await store.client.scard(store.keys.partition(0).flags_ahead)
        finally:
            await publisher.stop()

    async def test_fewer_records_per_release_across_several_publishes(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Released again a few at a time with publishes in between: the ids not released yet
        wait in the ahead set and their later release queues nothing."""
        older = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 1, ["ua", "ub", "uc", "ud", "ue"])
            await publisher.publish(1)
            await rollback(store, older)
            await release(settings, store, 1, ["ud"])
            assert [] == await publisher.publish(1)
            await release(settings, store, 1, ["ub", "ux"])
            assert ["ux"] == [r["user_id"] for r in await publisher.publish(1)]
            await release(settings, store, 1, ["ua", "uc", "ue", "uy"])
            assert ["uy"] == [r["user_id"] for r in await publisher.publish(1)]
            expected = ["ua", "ub", "uc", "ud", "ue", "ux", "uy"]
            assert numbered(expected) == await topic_users(settings, 1)
            assert 0 == await store.client.scard(store.keys.partition(1).flags_ahead)
            assert 8 == await release(settings, store, 1, ["uz"]), "numbering goes on after 7"
        finally:
            await publisher.stop()

    async def test_the_same_records_in_another_order_add_nothing(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """The same changes released again, reversed: nothing is sent, and the next change is
        numbered right after the tail."""
        older = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 2, ["ua", "ub", "uc"])
            await publisher.publish(2)
            await rollback(store, older)
            await release(settings, store, 2, ["uc", "ub", "ua"])
            assert [] == await publisher.publish(2)
            assert [] == await outbox_seqs(store, 2)
            await release(settings, store, 2, ["uz"])
            await publisher.publish(2)
            assert numbered(["ua", "ub", "uc", "uz"]) == await topic_users(settings, 2)
        finally:
            await publisher.stop()

    async def test_a_second_rollback_after_a_reconciliation(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Rolled back once (reconciled, ids ahead), then again to a point with ids ahead and
        again to before the first reconciliation: each change still once."""
        start = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 3, ["ua", "ub", "uc"])
            await publisher.publish(3)
            await rollback(store, start)
            await release(settings, store, 3, ["ux", "ub"])
            await publisher.publish(3)  # ux is 4; ua and uc are ahead
            with_ahead = await snapshot(store)
            await release(settings, store, 3, ["ua"])
            await release(settings, store, 3, ["uy"])
            await publisher.publish(3)  # uy is 5
            await rollback(store, with_ahead)
            await release(settings, store, 3, ["ua", "uy", "uc"])
            assert [] == await publisher.publish(3)
            await rollback(store, start)
            await release(settings, store, 3, ["uc", "uy", "ua", "uz"])
            await publisher.publish(3)  # uz is 6; ub and ux are ahead
            await release(settings, store, 3, ["ux", "ub"])
            assert [] == await publisher.publish(3)
            expected = ["ua", "ub", "uc", "ux", "uy", "uz"]
            assert numbered(expected) == await topic_users(settings, 3)
            assert 0 == await store.client.scard(store.keys.partition(3).flags_ahead)
        finally:
            await publisher.stop()

    async def test_a_rollback_that_loses_the_reconciliation_itself(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Redis back at a point after the release made again but before its reconciliation,
        whose renumbered record was sent meanwhile: reconciled again, nothing twice."""
        start = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 4, ["ua", "ub", "uc"])
            await publisher.publish(4)
            await rollback(store, start)
            await release(settings, store, 4, ["ux", "ua"])
            released_again = await snapshot(store)
            await publisher.publish(4)  # ux is 4; ub and uc ahead
            await rollback(store, released_again)  # ux back at 1, nothing ahead
            await release(settings, store, 4, ["uc", "uy"])
            assert ["uy"] == [r["user_id"] for r in await publisher.publish(4)]
            await release(settings, store, 4, ["ub"])
            assert [] == await publisher.publish(4)
            assert numbered(["ua", "ub", "uc", "ux", "uy"]) == await topic_users(settings, 4)
        finally:
            await publisher.stop()


class TestCrashBetweenCommitAndTrim:
    async def test_before_any_rollback_the_restart_drops_exactly_what_it_sent(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed after its commit: the next publisher drops the committed entries, keeps the
        numbers of the rest and puts nothing in the ahead set."""
        first = FlagPublisher(settings, store)
        crash_at_trim(first, monkeypatch)
        try:
            await release(settings, store, 4, ["ua", "ub", "uc"])
            with pytest.raises(Crash):
                await first.publish(4)
        finally:
            await first.stop()
        await release(settings, store, 4, ["ud"])
        restarted = FlagPublisher(settings, store)
        try:
            assert ["ud"] == [r["user_id"] for r in await restarted.publish(4)]
            assert numbered(["ua", "ub", "uc", "ud"]) == await topic_users(settings, 4)
            assert 0 == await store.client.scard(store.keys.partition(4).flags_ahead)
        finally:
            await restarted.stop()

    async def test_after_a_reconciliation_the_restart_reconciles_again(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed between the commit of a reconciled outbox and its trim, then the ids ahead
        released: the restarted publisher sends only the one change that is new."""
        older = await snapshot(store)
        first = FlagPublisher(settings, store)
        try:
            await release(settings, store, 5, ["ua", "ub", "uc"])
            await first.publish(5)
            await rollback(store, older)
            await release(settings, store, 5, ["ux", "ua"])
            crash_at_trim(first, monkeypatch)
            with pytest.raises(Crash):
                await first.publish(5)  # ux committed as 4, not trimmed
        finally:
            await first.stop()
        await release(settings, store, 5, ["uc", "uy", "ub"])
        restarted = FlagPublisher(settings, store)
        try:
            assert ["uy"] == [r["user_id"] for r in await restarted.publish(5)]
            assert numbered(["ua", "ub", "uc", "ux", "uy"]) == await topic_users(settings, 5)
            assert 0 == await store.client.scard(store.keys.partition(5).flags_ahead)
        finally:
            await restarted.stop()

    async def test_a_rollback_to_before_the_commit_of_a_killed_publisher(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed before its trim, then Redis back at a point before that release: the
        release made again (another order, one change more) is reconciled once."""
        first = FlagPublisher(settings, store)
        try:
            await release(settings, store, 0, ["ua"])
            await first.publish(0)
            older = await snapshot(store)
            await release(settings, store, 0, ["ub", "uc"])
            crash_at_trim(first, monkeypatch)
            with pytest.raises(Crash):
                await first.publish(0)
        finally:
            await first.stop()
        await rollback(store, older)
        await release(settings, store, 0, ["uc", "ud", "ub"])
        restarted = FlagPublisher(settings, store)
        try:
            assert ["ud"] == [r["user_id"] for r in await restarted.publish(0)]
            assert numbered(["ua", "ub", "uc", "ud"]) == await topic_users(settings, 0)
        finally:
            await restarted.stop()


class TestZombieReconciling:
    async def test_a_zombie_reconciling_while_the_owner_commits_loses_nothing(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A zombie reads the tail, then (after the owner committed a reconciled outbox, not
        trimmed yet) the topic's ids: it must not drop what lies past its tail, or the
        owner's trim removes a record never sent."""
        older = await snapshot(store)
        zombie_store = RedisStore.from_settings(settings)
        zombie = FlagPublisher(settings, zombie_store)
        owner = FlagPublisher(settings, store)
        try:
            await release(settings, store, 1, ["ua", "ub", "uc"])
            await zombie.publish(1)
            await rollback(store, older)
            await release(settings, store, 1, ["ux", "ua"])

            zombie_paused, zombie_resume = pause_before(zombie, "_event_ids_since", monkeypatch)
            stale = asyncio.create_task(zombie.publish(1))
            await reached_or_failed(zombie_paused, stale)  # its tail: 3
            owner_paused, owner_resume = pause_before(owner.outbox, "trim", monkeypatch)
            owning = asyncio.create_task(owner.publish(1))
            await reached_or_failed(owner_paused, owning)  # ux committed as 4, not trimmed
            await release(settings, store, 1, ["uz"])  # queued as 5
            assert numbered(["ua", "ub", "uc", "ux"]) == await topic_users(settings, 1)
            zombie_resume.set()  # the ids it reads now include ux, past its tail
            assert [] == await stale, "the zombie is fenced"
            owner_resume.set()
            assert ["ux"] == [r["user_id"] for r in await owning]
            assert ["uz"] == [r["user_id"] for r in await owner.publish(1)]
            assert numbered(["ua", "ub", "uc", "ux", "uz"]) == await topic_users(settings, 1)
        finally:
            await zombie.stop()
            await owner.stop()
            await zombie_store.close()

    async def test_a_zombie_whose_tail_is_older_than_the_owners_trim_is_refused(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A zombie paused with a tail read before the owner committed and trimmed: its
        reconciliation is refused (published seq), it reads again and changes no number."""
        older = await snapshot(store)
        zombie_store = RedisStore.from_settings(settings)
        zombie = FlagPublisher(settings, zombie_store)
        owner = FlagPublisher(settings, store)
        try:
            await release(settings, store, 2, ["ua", "ub", "uc"])
            await zombie.publish(2)
            await rollback(store, older)
            await release(settings, store, 2, ["ux", "ub"])

            zombie_paused, zombie_resume = pause_before(zombie.outbox, "reconcile", monkeypatch)
            stale = asyncio.create_task(zombie.publish(2))
            await reached_or_failed(zombie_paused, stale)  # tail 3 and ids 1-3 read
            assert ["ux"] == [r["user_id"] for r in await owner.publish(2)]  # 4, trimmed
            await release(settings, store, 2, ["uy"])  # queued as 5
            zombie_resume.set()
            assert [] == await stale
            assert [5] == await outbox_seqs(store, 2)
            assert ["uy"] == [r["user_id"] for r in await owner.publish(2)]
            assert numbered(["ua", "ub", "uc", "ux", "uy"]) == await topic_users(settings, 2)
        finally:
            await zombie.stop()
            await owner.stop()
            await zombie_store.close()


def community(name: str, orphaned: bool, idle: bool) -> CommunityHealth:
    return CommunityHealth(
        community=name,
        roles={"member": 3},
        people=3,
        active_members=0,
        health=None,
        last_activity_ms=1_000,
        events=0,
        idle=idle,
        orphaned=orphaned,
    )


async def community_topic(settings: Settings) -> list[tuple[int, str]]:
    """(esn.seq, "community:kind") of the committed community flags, in offset order."""
    topic = TopicNames.from_settings(settings).communities_flagged
    return [
        (seq, f"{doc['community']}:{doc['kind']}")
        for seq, doc in await committed_flags(settings, 0, topic)
    ]


class TestCommunityOutbox:
    async def test_the_same_evaluation_again_is_reconciled(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Redis back before an evaluation, evaluated again at the same instant: what the topic
        holds is dropped, the new change goes out after the tail."""
        older = await snapshot(store)
        flagger = CommunityFlagger(settings, store)
        await flagger.start()
        try:
            both = [community("c1", True, False), community("c2", False, True)]
            await flagger.commit(both, 50_000)
            await flagger.publish()
            await rollback(store, older)
            both_and_more = [*reversed(both), community("c3", True, True)]
            await flagger.commit(both_and_more, 50_000)
            await flagger.publish()
            expected = ["c1:orphaned", "c2:idle", "c3:orphaned", "c3:idle"]
            assert numbered(expected) == await community_topic(settings)
        finally:
            await flagger.stop()

    async def test_a_change_evaluated_again_after_the_reconciliation(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Redis back before two changes; the first is evaluated again (reconciled, the second
        goes ahead), then the second (same instant): it must not be sent again."""
        older = await snapshot(store)
        flagger = CommunityFlagger(settings, store)
        await flagger.start()
        try:
            await flagger.commit([community("c1", True, False)], 50_000)
            await flagger.commit([community("c2", False, True)], 50_000)
            await flagger.publish()
            await rollback(store, older)
            await flagger.commit([community("c1", True, False)], 50_000)
            await flagger.publish()
            await flagger.commit([community("c2", False, True)], 50_000)
            await flagger.publish()
            assert numbered(["c1:orphaned", "c2:idle"]) == await community_topic(settings)
        finally:
            await flagger.stop()

    async def test_the_same_change_evaluated_again_later(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Redis back before an evaluation; the next evaluation (a minute later) finds the
        same change: the topic must not hold it twice."""
        older = await snapshot(store)
        flagger = CommunityFlagger(settings, store)
        await flagger.start()
        try:
            await flagger.commit([community("c1", True, False)], 50_000)
            await flagger.publish()
            await rollback(store, older)
            await flagger.commit([community("c1", True, False)], 110_000)
            await flagger.publish()
            assert numbered(["c1:orphaned"]) == await community_topic(settings)
        finally:
            await flagger.stop()


class TestRetention:
    async def delete_before(self, settings: Settings, partition: int, offset: int) -> None:
        """What retention does: the partition's records before ``offset`` are gone."""
        tp = TopicPartition(TopicNames.from_settings(settings).flagged, partition)
        admin = new_admin(settings)
        await admin.start()
        try:
            await admin.delete_records({tp: RecordsToDelete(offset)}, timeout_ms=30_000)
        finally:
            await admin.close()

    async def test_every_record_deleted_numbering_goes_on_after_the_published(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """The topic emptied by retention (tail 0, below what was published): a restarted
        publisher numbers the next change after the published seq, not from 1."""
        first = FlagPublisher(settings, store)
        try:
            await release(settings, store, 3, ["ua", "ub", "uc"])
            await first.publish(3)
        finally:
            await first.stop()
        tp = TopicPartition(TopicNames.from_settings(settings).flagged, 3)
        await self.delete_before(settings, 3, await log_end(settings, tp))
        await release(settings, store, 3, ["ud"])
        restarted = FlagPublisher(settings, store)
        try:
            await restarted.publish(3)
            assert [(4, "ud")] == await topic_users(settings, 3)
        finally:
            await restarted.stop()

    async def test_a_rollback_with_the_oldest_records_deleted(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Retention deleted the first records (the tail and the ones released again remain):
        the tail is still found and the records released again are matched, not resent."""
        publisher = FlagPublisher(settings, store)
        users = [f"u{n:02d}" for n in range(1, 21)]
        try:
            await release(settings, store, 4, users[:15])
            await publisher.publish(4)  # offsets 0-14, its commit marker 15
            older = await snapshot(store)
            await release(settings, store, 4, users[15:])
            await publisher.publish(4)  # offsets 16-20, marker 21
        finally:
            await publisher.stop()
        await self.delete_before(settings, 4, 12)
        await rollback(store, older)
        await release(settings, store, 4, [*reversed(users[15:]), "uw"])
        restarted = FlagPublisher(settings, store)
        try:
            assert ["uw"] == [r["user_id"] for r in await restarted.publish(4)]
            assert list(enumerate([*users, "uw"], start=1))[12:] == await topic_users(settings, 4)
        finally:
            await restarted.stop()


HOSTILE = [
    'u"quoted"',
    "u\\back\\slash",
    "u:colons:in:it",
    "u-\u00e9",  # é precomposed
    "u-e\u0301",  # the same é decomposed: another id
    "\u202eright-to-left",
    "emoji-\U0001f600-\u2028-sep",
    '{"event_id": "ua:inactive:1:9000"}',
    "x" * 256,
    "ua",
]


class TestHostileEventIds:
    async def test_quotes_unicode_and_long_ids_are_matched_exactly(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Event ids with quotes, backslashes, JSON, lookalike Unicode and 256 characters go
        through release.lua and outbox_reconcile.lua (cjson) and match only themselves."""
        older = await snapshot(store)
        publisher = FlagPublisher(settings, store)
        try:
            await release(settings, store, 5, HOSTILE[:-1])
            await publisher.publish(5)
            await rollback(store, older)
            await release(settings, store, 5, [*reversed(HOSTILE[2:]), "ub"])
            assert ["ua", "ub"] == [r["user_id"] for r in await publisher.publish(5)]
            await release(settings, store, 5, HOSTILE[:2])
            assert [] == await publisher.publish(5)
            expected = [*HOSTILE[:-1], "ua", "ub"]
            assert numbered(expected) == await topic_users(settings, 5)
        finally:
            await publisher.stop()
