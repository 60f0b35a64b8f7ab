"""Applies two fetches deep (stream/ingest_apply.py) on a real Redis: a batch sent behind one
still in flight is applied exactly once whatever order Redis runs them in, and a real loss of
state under it is still told apart and read again.

The ingest is the worker's own (ActivityIngest, the real store and fold script); only its Kafka
consumer's assignment and seek are stood in for, since no broker position is involved here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from stream.batch import FoldedFetch, Reject
from stream.events import Activity
from stream.fold import PartitionDelta
from stream.ingest import ActivityIngest
from stream.ingest_apply import handle_in_order, send_fetch
from stream.metrics import PipelineMetrics
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames

pytestmark = pytest.mark.integration

T0 = 1_780_000_000_000
PARTITION = 3


class _Consumer:
    """The consumer's position, as the ingest sees it: what is assigned, where it was sought."""

    def __init__(self, topic: str) -> None:
        self.assigned = {TopicPartition(topic, PARTITION)}
        self.sought: list[int] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append(offset)

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.sought.append(0)


async def _no_dead_letters(reject: Reject) -> None:
    raise AssertionError(f"nothing here is dead-lettered: {reject}")


@pytest.fixture
async def ingest(settings: Settings, store: RedisStore) -> AsyncIterator[ActivityIngest]:
    worker = ActivityIngest(settings, store, PipelineMetrics(CollectorRegistry()), _no_dead_letters)
    consumer = _Consumer(TopicNames.from_settings(settings).activity)
    worker.consumer = consumer  # type: ignore[assignment]

    async def reread(partitions: Any) -> int:
        return 0

    worker.directory.reread_partitions = reread  # type: ignore[method-assign]
    worker.fences[PARTITION] = -1
    yield worker


def _fetch(ingest: ActivityIngest, first: int, last: int, user: str) -> FoldedFetch:
    """One fetch of one partition: a view by ``user`` per offset, a second apart."""
    topic = TopicNames.from_settings(ingest.settings).activity
    delta = PartitionDelta(topic, PARTITION, first_offset=first, last_offset=last)
    times = []
    for offset in range(first, last + 1):
        time_ms = T0 + offset * 1000
        delta.add(Activity(f"e{offset}", user, time_ms, "view", "blog", "b1"))
        times.append(time_ms)
    return FoldedFetch(deltas=[delta], event_times_ms={PARTITION: times}, generations={})


async def _state(store: RedisStore, *users: str) -> list[tuple[int, int, dict[str, int]]]:
    out = []
    for user in users:
        state = await store.user_state(user)
        assert state is not None, user
        out.append((state.first_seen_ms, state.last_seen_ms, state.counts))
    return out


class TestSentAhead:
    async def test_a_batch_that_runs_before_the_one_it_follows_is_applied_again(
        self, ingest: ActivityIngest, store: RedisStore
    ) -> None:
        """B is sent behind A; Redis runs B first: it writes nothing, then is applied after A."""
        first, second = _fetch(ingest, 0, 9, "ua"), _fetch(ingest, 10, 19, "ub")
        ingest.sent_through[PARTITION] = 9  # A is in flight: B names its end as B's fence
        sent_b = await send_fetch(ingest, second, {})
        assert sent_b is not None and sent_b.sent_ahead_of == {PARTITION: -1}
        (early,) = await sent_b.replies  # ran before A: the fence it found is A's start
        assert (early.outcome.name, early.applied_before) == ("STATE_LOST", -1)
        assert await store.user_state("ub") is None, "a batch run too early writes nothing"
        ingest.sent_through.pop(PARTITION)
        sent_a = await send_fetch(ingest, first, {})
        assert sent_a is not None and sent_a.sent_ahead_of == {}
        a_done = await _handled(ingest, sent_a, None)
        await handle_in_order(ingest, sent_b, a_done)  # its reply, read above, is handled now

        assert ingest.fences[PARTITION] == 19
        assert ingest.consumer.sought == []  # type: ignore[attr-defined]
        assert await _state(store, "ua", "ub") == [
            (T0, T0 + 9_000, {"view": 10}),
            (T0 + 10_000, T0 + 19_000, {"view": 10}),
        ]
        assert await store.load_fences(first.deltas[0].topic, [PARTITION]) == {PARTITION: 19}
        assert ingest.sent_through == {}

    async def test_two_in_flight_in_order_apply_once_each(
        self, ingest: ActivityIngest, store: RedisStore
    ) -> None:
        """The usual case: A then B sent before either reply is read, both applied once."""
        first, second = _fetch(ingest, 0, 4, "ua"), _fetch(ingest, 5, 9, "ua")
        sent_a = await send_fetch(ingest, first, {})
        sent_b = await send_fetch(ingest, second, {})
        assert sent_a is not None and sent_b is not None
        assert sent_b.sent_ahead_of == {PARTITION: -1}
        a_done = await _handled(ingest, sent_a, None)
        await handle_in_order(ingest, sent_b, a_done)
        assert ingest.fences[PARTITION] == 9
        assert await _state(store, "ua") == [(T0, T0 + 9_000, {"view": 10})]
        assert ingest.sent_through == {}

    async def test_a_real_loss_under_a_batch_sent_ahead_is_read_again(
        self, ingest: ActivityIngest, store: RedisStore, settings: Settings
    ) -> None:
        """A lands, Redis then loses everything, B (sent behind A) runs: B is not applied over
        the hole; the partition is sought back to what Redis holds."""
        first, second = _fetch(ingest, 0, 9, "ua"), _fetch(ingest, 10, 19, "ub")
        sent_a = await send_fetch(ingest, first, {})
        assert sent_a is not None
        await sent_a.replies
        async for key in store.client.scan_iter(match=settings.redis_prefix + "*"):
            await store.client.delete(key)  # Redis restarted empty after A
        sent_b = await send_fetch(ingest, second, {})
        assert sent_b is not None and sent_b.sent_ahead_of == {PARTITION: -1}
        a_done = await _handled(ingest, sent_a, None)
        await handle_in_order(ingest, sent_b, a_done)

        # Tried again behind A's confirmed fence, B still finds nothing: a loss, read again
        # from the beginning (the fence Redis holds).
        assert ingest.consumer.sought == [0]  # type: ignore[attr-defined]
        assert ingest.fences[PARTITION] == -1
        assert await store.user_state("ub") is None
        assert await store.load_fences(first.deltas[0].topic, [PARTITION]) == {PARTITION: -1}

    async def test_a_reply_for_a_partition_sought_since_moves_nothing(
        self, ingest: ActivityIngest
    ) -> None:
        """Sought (a rebalance, a loss) while in flight: its reply is the old position's."""
        sent = await send_fetch(ingest, _fetch(ingest, 0, 9, "ua"), {})
        assert sent is not None
        await ingest.seek(TopicPartition(sent.folded.deltas[0].topic, PARTITION), -1)
        await handle_in_order(ingest, sent, None)
        assert ingest.fences[PARTITION] == -1


async def _handled(ingest: ActivityIngest, sent: Any, previous: Any) -> Any:
    """Handle ``sent`` and return a finished future standing for it (the next one's previous)."""
    done = asyncio.ensure_future(handle_in_order(ingest, sent, previous))
    await done
    return done
