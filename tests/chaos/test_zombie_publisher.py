"""The flag publisher fences zombies: a stale owner of an output partition can never send again.

Two publishers over the same outbox stand in for a worker paused past its session timeout (the
zombie, still holding its cached position and producer) and the worker that took over.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream.flags.publisher import FlagPublisher
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import FLAG_SEQ, TopicNames
from tests.chaos.flag_topic import add_to_outbox, committed_seqs

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


class TestZombiePublisher:
    async def test_a_publisher_paused_mid_publish_sends_nothing_after_a_takeover(
        self, settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Paused after reading its outbox (SIGSTOP), resumed after another publisher took
        over: the zombie sends nothing and drops the partition; each record is on the topic
        once, esn.seq gapless."""
        zombie_store = RedisStore.from_settings(settings)
        zombie = FlagPublisher(settings, zombie_store)
        owner = FlagPublisher(settings, store)
        await zombie.start()
        await owner.start()
        try:
            await add_to_outbox(store, 0, range(1, 4))
            assert [1, 2, 3] == [r["at"] for r in await zombie.publish(0)]
            await add_to_outbox(store, 0, range(4, 6))

            paused, resume = asyncio.Event(), asyncio.Event()
            read_outbox = zombie_store.client.lrange

            async def read_then_pause(*args: Any) -> Any:
                entries = await read_outbox(*args)
                paused.set()
                await resume.wait()
                return entries

            monkeypatch.setattr(zombie_store.client, "lrange", read_then_pause)
            stale = asyncio.create_task(zombie.publish(0))
            await paused.wait()  # it holds records 4 and 5, and its producer
            assert [4, 5] == [r["at"] for r in await owner.publish(0)]  # took over
            resume.set()
            assert [] == await stale, "the zombie is fenced"
            monkeypatch.setattr(zombie_store.client, "lrange", read_outbox)
            await add_to_outbox(store, 0, range(6, 8))
            assert [] == await zombie.publish(0), "and leaves the partition alone"
            assert [6, 7] == [r["at"] for r in await owner.publish(0)]
            assert [1, 2, 3, 4, 5, 6, 7] == await committed_seqs(settings, 0)
            assert 0 == await store.client.llen(store.keys.partition(0).outbox)
        finally:
            await zombie.stop()
            await owner.stop()
            await zombie_store.close()

    async def test_a_transaction_open_when_fenced_never_commits(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A zombie paused mid-transaction: its records are aborted by the new owner's start,
        its commit fails, and a third publisher finds the tail behind the aborted batch."""
        zombie = FlagPublisher(settings, store)
        owner = FlagPublisher(settings, store)
        late = FlagPublisher(settings, store)
        for publisher in (zombie, owner, late):
            await publisher.start()
        try:
            await add_to_outbox(store, 1, range(1, 3))
            await zombie.publish(1)
            await add_to_outbox(store, 1, range(3, 6))
            producer = await zombie._producer(1)
            await producer.begin_transaction()
            topic = TopicNames.from_settings(settings).flagged
            delivered = await producer.send(
                topic, b"{}", key=b"u3", partition=1, headers=[(FLAG_SEQ, b"3")]
            )
            await delivered  # on the broker, uncommitted
            assert [3, 4, 5] == [r["at"] for r in await owner.publish(1)]
            with pytest.raises(Exception) as fenced:
                await producer.commit_transaction()
            assert "Fenced" in type(fenced.value).__name__
            assert [1, 2, 3, 4, 5] == await committed_seqs(settings, 1)
            await late._producer(1)  # its start resolves every earlier transaction first
            assert 5 == late.published[1]
        finally:
            for publisher in (zombie, owner, late):
                await publisher.stop()

    async def test_a_late_trim_never_drops_unsent_records(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """The outbox is trimmed by sequence number: a trim that comes after a newer owner
        trimmed further removes nothing it should not."""
        owner = FlagPublisher(settings, store)
        await owner.start()
        try:
            await add_to_outbox(store, 2, range(1, 4))
            await owner.publish(2)
            await add_to_outbox(store, 2, range(4, 6))
            # The zombie's late trim, for the three records it had committed: nothing to drop.
            await owner.outbox.trim(2, 3)
            left: list[Any] = await store.client.lrange(store.keys.partition(2).outbox, 0, -1)
            assert [b"4", b"5"] == [entry.split(b"\t", 1)[0] for entry in left]
        finally:
            await owner.stop()
