"""Key layout 3 on a real Redis: day bitmaps by user index, tier windows as their OR, the u8
progression and its spill, top items past a partition's share, and a bad payload refused whole."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ResponseError

from stream import jsonutil
from stream.analytics.tiers import tier_counts
from stream.events import Activity
from stream.fold import MS_PER_DAY, PartitionDelta
from stream.settings import Settings
from stream.store import AnalyticsReads, RedisStore
from stream.store.fold_call import iso_of, top_items_per_partition

pytestmark = pytest.mark.integration

DAY = 20_600  # 2026-05-27
T0 = DAY * MS_PER_DAY


def delta_of(partition: int, offset: int, events: list[tuple[str, int, str]]) -> PartitionDelta:
    """One batch of (actor, time, type) events of one partition at one offset."""
    delta = PartitionDelta("topic", partition, first_offset=offset, last_offset=offset)
    for actor, at, kind in events:
        delta.add(Activity("e", actor, at, kind, "post", kind, f"post:{actor}"))
    return delta


async def snapshot(store: RedisStore) -> dict[bytes, tuple[bytes | None, int]]:
    """DUMP and absolute expiry (PEXPIRETIME: unlike a TTL it does not move) of every key."""
    out: dict[bytes, tuple[bytes | None, int]] = {}
    async for key in store.client.scan_iter(match=store.keys.prefix + "*", count=1000):
        out[key] = (await store.client.dump(key), await store.client.pexpiretime(key))
    return out


class TestDayBitmaps:
    async def test_daily_users_come_back_by_index_over_batches_and_partitions(
        self, store: RedisStore
    ) -> None:
        """Users first seen in different batches get indexes in order; each day reads its own."""
        users = [f"user-{n:03d}" for n in range(40)]
        await store.apply([delta_of(0, 0, [(u, T0 + 5, "view") for u in users[:25]])])
        await store.apply([delta_of(0, 1, [(u, T0 + MS_PER_DAY, "view") for u in users[10:]])])
        await store.apply([delta_of(3, 0, [("elsewhere", T0 + 9, "login")])])
        assert (set(users[:25]) | {"elsewhere"}, set(users[10:])) == (
            await store.daily_active_users(iso_of(DAY)),
            await store.daily_active_users(iso_of(DAY + 1)),
        )

    async def test_a_late_event_counts_its_user_once_a_day(self, store: RedisStore) -> None:
        """The bitmap's old bit dedupes across batches: the exact daily counter stays exact."""
        await store.apply([delta_of(1, 0, [("a", T0 + 50, "view"), ("b", T0 + 60, "view")])])
        await store.apply([delta_of(1, 1, [("a", T0 + 10, "view"), ("c", T0 + 70, "post")])])
        counts = AnalyticsReads(store)
        assert ({DAY: 3}, {DAY: 1}) == (
            await counts.daily_counts("a", [DAY]),
            await counts.daily_counts("c", [DAY]),
        )


class TestTierWindows:
    async def test_windows_are_the_union_of_their_days_per_partition(
        self, store: RedisStore
    ) -> None:
        """A user active on several days of a window counts once; partitions add up."""
        await store.apply(
            [
                delta_of(0, 0, [("a", T0, "view"), ("b", T0 - 3 * MS_PER_DAY, "like")]),
                delta_of(2, 0, [("c", T0 - 10 * MS_PER_DAY, "post"), ("a2", T0, "post")]),
            ]
        )
        await store.apply([delta_of(0, 1, [("a", T0 - 2 * MS_PER_DAY, "comment")])])
        got = await tier_counts(store, T0 + 1000, enabled=9)
        assert {
            "1d": {"registered": 9, "active": 2, "participating": 1, "contributing": 1},
            "7d": {"registered": 9, "active": 3, "participating": 3, "contributing": 1},
            "30d": {"registered": 9, "active": 4, "participating": 4, "contributing": 2},
        } == got


class TestProgression:
    async def test_a_minute_past_255_users_spills_and_stays_exact(self, store: RedisStore) -> None:
        """A u8 a minute; the users past it are kept in the spill hash, and read back summed."""
        minute = 9 * 60 + 1
        at = T0 + minute * 60_000
        first = [(f"u{n}", at, "view") for n in range(200)]
        second = [(f"v{n}", at + 59_000, "view") for n in range(100)] + [("w", at + 60_000, "view")]
        await store.apply([delta_of(0, 0, first)])
        await store.apply([delta_of(0, 1, second)])
        assert {minute: 300, minute + 1: 1} == await AnalyticsReads(store).first_activity_minutes(
            DAY
        )
        spill = store.keys.partition(0).day_progression_spill(DAY)
        assert {b"541": b"100"} == await store.client.hgetall(spill)


class TestTopItems:
    async def test_a_partition_keeps_twice_its_share_and_reports_what_it_dropped(
        self, settings: Settings
    ) -> None:
        """Capacity 1000 over 12 partitions: 167 items a partition-day, the bound their drop."""
        assert (167, 20) == (top_items_per_partition(1000, 12), top_items_per_partition(20, 1))
        twelve = settings.model_copy(update={"top_items_capacity": 1000, "activity_partitions": 12})
        store = RedisStore.from_settings(twelve)
        try:
            delta = PartitionDelta("topic", 0, first_offset=0, last_offset=0)
            for n in range(300):
                for _ in range(1 + n // 100):  # items 200..299 three times, 100..199 twice
                    delta.add(Activity("e", "u", T0, "view", "post", "view", f"post:{n:03d}"))
            await store.apply([delta])
            top = await AnalyticsReads(store).top_items([DAY], 200)
            assert (167, 2) == (len(top.ranked), top.error_bound)
            assert ("post:200", 3) == top.ranked[0] and all(n >= 2 for _, n in top.ranked)
        finally:
            async for key in store.client.scan_iter(match=settings.redis_prefix + "*"):
                await store.client.delete(key)
            await store.close()


class TestPayloadChecks:
    @pytest.mark.parametrize(
        ("part", "bad"),
        [
            ("u", lambda u: u[0].__setitem__(2, -1)),  # a negative first seen
            ("u", lambda u: u[0][4].__setitem__("nonsense", 1)),  # a count of no slot
            ("t", lambda t: t[0][9].append(99)),  # a member position of no user
            ("t", lambda t: t[0][10].__setitem__(0, 1440)),  # a minute past the day
            ("o", lambda o: o[0][2].__setitem__(1, "many")),  # a top item count
            ("r", lambda r: r[0].__setitem__(2, 1.5)),  # likes received
            ("c", lambda c: c.__setitem__(1, "soon")),  # a community's last event
            ("b", lambda b: b.__setitem__(0, b[0].split("\t")[0] + "\t")),  # of no user
            ("b", lambda b: b.__setitem__(0, "soon\t" + b[0].split("\t")[1])),  # no time
            ("b", lambda b: b.__setitem__(0, int(b[0].split("\t")[0]))),  # not a member
            ("b", lambda b: b.__setitem__(0, "1" * 16 + "\ta")),  # past a double's exact range
            ("tot", lambda tot: tot.__setitem__(1, -2)),  # a total
        ],
    )
    async def test_a_bad_value_anywhere_writes_nothing(
        self, store: RedisStore, part: str, bad: Any
    ) -> None:
        """The script checks the whole payload before its first write: an error, no key changed."""
        events = [("a", T0 + 60_000, "like"), ("b", T0 + 120_000, "post")]
        await store.apply([delta_of(0, 0, events)])
        before = await snapshot(store)
        later = delta_of(0, 1, [*events, ("c", T0 + 180_000, "view")])
        later.received["b"] = [1, 0]
        later.communities["c1"] = [T0, 2]
        keys, args = store._script_call(later)
        payload = jsonutil.loads(args[2])
        bad(payload[part])
        args[2] = jsonutil.dumps(payload)
        with pytest.raises(ResponseError, match="ESNFOLD bad"):
            await store._fold(keys=keys, args=[*args, ""])
        assert before == await snapshot(store)
