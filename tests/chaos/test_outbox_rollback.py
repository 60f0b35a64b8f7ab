"""After Redis loses writes, the flag outbox is reconciled with the topic by event id.

A Redis restarted from an older AOF has its outbox and counter back at an older point; the records
released again are numbered from there and may come in another order or another grouping than the
first time. Each change must still reach the topic once, with esn.seq gapless.
"""

from __future__ import annotations

from typing import Any

import pytest

from stream.flags.publisher import FlagPublisher
from stream.settings import Settings
from stream.store import RedisStore
from tests.chaos.flag_topic import committed_flags, flag_json

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


async def set_outbox(store: RedisStore, partition: int, first_seq: int, users: list[str]) -> None:
    """The outbox and its counter as a release after a rollback leaves them."""
    keys = store.keys
    await store.client.delete(keys.partition(partition).outbox)
    for offset, user in enumerate(users):
        entry = f"{first_seq + offset}\t{flag_json(user, ord(user[-1]))}"
        await store.client.rpush(keys.partition(partition).outbox, entry)
    await store.client.set(keys.partition(partition).outbox_seq, first_seq + len(users) - 1)


async def published(settings: Settings, partition: int) -> list[tuple[int, str]]:
    return [(seq, doc["user_id"]) for seq, doc in await committed_flags(settings, partition)]


class TestOutboxAfterRollback:
    async def test_records_released_again_in_another_order_are_published_once(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Topic a..e (1-5); Redis back at 2 releases d, c, f as 3-5: f goes out as 6, nothing
        twice, and e (on the topic, not released again yet) is remembered as ahead."""
        publisher = FlagPublisher(settings, store)
        try:
            await set_outbox(store, 3, 1, ["ua", "ub", "uc", "ud", "ue"])
            await publisher.publish(3)
            await set_outbox(store, 3, 3, ["ud", "uc", "uf"])  # the rollback and re-release
            await publisher.publish(3)
            assert [(1, "ua"), (2, "ub"), (3, "uc"), (4, "ud"), (5, "ue"), (6, "uf")] == (
                await published(settings, 3)
            )
            assert {b"ue:inactive::101"} == await store.client.smembers(
                store.keys.partition(3).flags_ahead
            )
            assert b"6" == await store.client.get(store.keys.partition(3).outbox_seq)
        finally:
            await publisher.stop()

    async def test_a_worker_restarting_after_the_rollback_reconciles_too(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A publisher that starts after the rollback (its tail read from the topic) finds the
        outbox numbered behind it and reconciles instead of skipping by number."""
        first = FlagPublisher(settings, store)
        try:
            await set_outbox(store, 4, 1, ["ua", "ub", "uc"])
            await first.publish(4)
        finally:
            await first.stop()
        await set_outbox(store, 4, 2, ["ux", "uc", "ub"])  # ux is new, numbered 2
        restarted = FlagPublisher(settings, store)
        try:
            await restarted.publish(4)
            assert [(1, "ua"), (2, "ub"), (3, "uc"), (4, "ux")] == await published(settings, 4)
            assert [] == await store.client.lrange(store.keys.partition(4).outbox, 0, -1)
        finally:
            await restarted.stop()

    async def test_an_id_ahead_is_committed_without_a_new_record(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """release.lua, given a record whose event id the topic already holds (the ahead set),
        commits the release but queues no record and no number for it."""
        from stream.flags.definitions import encode_definitions
        from stream.flags.machine import definitions_from
        from stream.store.release_store import ReleaseStore
        from tests.integration.test_script_checks import release_args, release_keys

        release = ReleaseStore(store)
        keys = release_keys(release)
        encoded = encode_definitions(definitions_from(settings))
        await store.client.sadd(store.keys.partition(0).flags_ahead, "u1:inactive:2592000000:9000")
        args: list[Any] = release_args(encoded, a10="")
        assert 0 == await release._commit(keys=keys, args=args)
        assert [] == await store.client.lrange(store.keys.partition(0).outbox, 0, -1)
        assert 0 == await store.client.scard(store.keys.partition(0).flags_ahead)
        # Not ahead any more: the same record the next time is queued, numbered 1.
        assert 1 == await release._commit(keys=keys, args=release_args(encoded, a13=""))
