"""The fenced fold script on a real Redis: replays are no-ops, overlaps refused, state exact."""

from __future__ import annotations

import pytest

from stream.events import Activity
from stream.fold import PartitionDelta
from stream.store import ApplyOutcome, RedisStore

pytestmark = pytest.mark.integration

T0 = 1_780_000_000_000


def delta(first: int, last: int, *events: tuple[str, int, str]) -> PartitionDelta:
    out = PartitionDelta("topic", 2, first_offset=first, last_offset=last)
    for actor, time_ms, event_type in events:
        out.add(Activity("id", actor, time_ms, event_type, "none", event_type))
    return out


class TestFence:
    async def test_a_replayed_batch_changes_nothing(self, store: RedisStore) -> None:
        """The same offsets applied twice count once: the second apply is reported as a replay."""
        batch = delta(0, 9, ("u1", T0, "like"), ("u1", T0 + 5, "like"))
        (first,) = await store.apply([batch])
        (again,) = await store.apply([batch])
        assert (
            first.outcome,
            again.outcome,
        ) == (ApplyOutcome.APPLIED, ApplyOutcome.ALREADY_APPLIED)
        state = await store.user_state("u1")
        assert state is not None
        assert state.counts == {"like": 2}
        assert await store.load_fences("topic", [2]) == {2: 9}

    async def test_a_batch_overlapping_the_fence_is_refused_whole(self, store: RedisStore) -> None:
        """A zombie's batch that straddles the fence is refused so the caller refolds the rest."""
        await store.apply([delta(0, 9, ("u1", T0, "view"))])
        (result,) = await store.apply([delta(5, 14, ("u1", T0, "view"))])
        assert (result.outcome, result.applied_before) == (ApplyOutcome.PARTIAL_OVERLAP, 9)
        state = await store.user_state("u1")
        assert state is not None and state.counts == {"view": 1}

    async def test_an_emptied_script_cache_is_loaded_again(self, store: RedisStore) -> None:
        """A restarted Redis has no scripts: NOSCRIPT ran nothing, the batch goes again once."""
        await store.client.script_flush()
        (result,) = await store.apply([delta(0, 1, ("u1", T0, "like"), ("u1", T0 + 5, "like"))])
        assert result.outcome is ApplyOutcome.APPLIED
        state = await store.user_state("u1")
        assert state is not None and state.counts == {"like": 2}
        assert await store.load_fences("topic", [2]) == {2: 1}

    async def test_fences_are_per_partition_and_start_unset(self, store: RedisStore) -> None:
        """A partition nothing was applied to reads -1."""
        assert await store.load_fences("topic", [0, 1]) == {0: -1, 1: -1}


class TestUserRecord:
    async def test_event_time_order_across_batches(self, store: RedisStore) -> None:
        """A later batch with older events widens first seen but never moves last seen back."""
        await store.apply([delta(0, 0, ("u1", T0 + 1000, "view"))])
        await store.apply([delta(1, 1, ("u1", T0, "post"))])
        await store.apply([delta(2, 2, ("u1", T0 + 500, "view"))])
        state = await store.user_state("u1")
        assert state is not None
        assert (
            state.first_seen_ms,
            state.last_seen_ms,
            state.counts,
        ) == (T0, T0 + 1000, {"view": 2, "post": 1})

    async def test_large_counts_round_trip(self, store: RedisStore) -> None:
        """Counts far beyond one base-36 digit survive the packed encoding."""
        big = PartitionDelta("topic", 0, 0, 0)
        big.add(Activity("id", "heavy", T0, "login", "none", "login"))
        big.users["heavy"].counts["login"] = 123_456_789
        await store.apply([big])
        state = await store.user_state("heavy")
        assert state is not None and state.counts == {"login": 123_456_789}

    async def test_unknown_user_reads_none(self, store: RedisStore) -> None:
        """No state, no record."""
        assert await store.user_state("nobody") is None


class TestDays:
    async def test_daily_sets_expire_after_the_retention(self, store: RedisStore) -> None:
        """A day's set carries an absolute expiry: the end of that day plus the retention."""
        await store.apply([delta(0, 0, ("u1", T0, "view"))])
        day = "2026-05-28"  # T0 is 2026-05-28T20:26:40Z
        assert {"u1"} == await store.daily_active_users(day)
        expire_at = await store.client.expiretime(store.keys.partition(2).day(day))
        end_of_day = 1_780_012_800  # 2026-05-29T00:00:00Z
        assert end_of_day + store.retention_days * 86_400 == expire_at
