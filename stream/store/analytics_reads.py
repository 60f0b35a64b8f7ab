"""Read side of the engagement analytics: daily counters, tier windows, content mix, top items.

Callers ask for figures by name and day; how a figure is laid out in Redis (one key per day, per
partition or per anything) stays in this module, which merges what it reads (sums counts, unions
HyperLogLogs and sorted sets) before handing plain values back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from stream.store.redis_store import RedisStore, text


@dataclass(frozen=True)
class TopItems:
    """The most interacted-with items of some days, and how far their counts may be short."""

    #: (item, interactions), most interactions first, ties broken by item.
    ranked: list[tuple[str, int]]
    #: Sum of the days' highest dropped counts (0: every listed count is exact).
    error_bound: int


class AnalyticsReads:
    """Figures the analytics read, over one store."""

    def __init__(self, store: RedisStore) -> None:
        self._client = store.client
        self._keys = store.keys

    async def daily_counts(self, name: str, days: Sequence[int]) -> dict[int, int]:
        """day number -> value of an exact daily counter ("a", "p", "c", "n"); 0 when unset."""
        if not days:
            return {}
        raw = await self._client.hmget(self._keys.stats(name), [str(d) for d in days])
        return {
            day: int(value) if value is not None else 0
            for day, value in zip(days, raw, strict=True)
        }

    async def window_users(self, tier: str, first_ms: int) -> int:
        """Users of a tier ("a", "p", "c") whose last event of it is at or after ``first_ms``."""
        return int(await self._client.zcount(self._keys.tier_last(tier), first_ms, "+inf"))

    async def window_distinct(self, tier: str, days: Sequence[int], window: int) -> dict[int, int]:
        """day -> distinct users of a tier in the ``window`` days ending with it (HLL union)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.pfcount(
                    *[self._keys.tier_hll(tier, d) for d in range(day - window + 1, day + 1)]
                )
            replies = await pipe.execute()
        return {day: int(count) for day, count in zip(days, replies, strict=True)}

    async def daily_events(self, days: Sequence[int]) -> dict[int, int]:
        """day -> valid activity events of that day, all types."""
        async with self._client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hvals(self._keys.content(day))
            replies = await pipe.execute()
        return {day: sum(int(v) for v in values) for day, values in zip(days, replies, strict=True)}

    async def content_mix(self, days: Sequence[int]) -> dict[int, Counter[tuple[str, str]]]:
        """day -> (event type, object type) -> events, in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self._keys.content(day))
            replies = await pipe.execute()
        out: dict[int, Counter[tuple[str, str]]] = {}
        for day, mix in zip(days, replies, strict=True):
            counts: Counter[tuple[str, str]] = Counter()
            for field, count in mix.items():
                event_type, _, object_type = text(field).partition("|")
                counts[event_type, object_type] += int(count)
            out[day] = counts
        return out

    async def top_items(self, days: Sequence[int], limit: int) -> TopItems:
        """The ``limit`` items with the most interactions summed over ``days``."""
        keys = [self._keys.top_items("d", d) for d in days]
        async with self._client.pipeline(transaction=False) as pipe:
            # Whole sketches (at most ESN_TOP_ITEMS_CAPACITY items a day): ties at the cut are
            # then broken by item, independently of Redis's order among equal scores.
            pipe.zunion(keys, withscores=True)
            pipe.mget([key + ":evicted" for key in keys])
            ranked, evicted = await pipe.execute()
        counted = sorted((-int(score), text(member)) for member, score in ranked)[:limit]
        return TopItems(
            ranked=[(item, -negative) for negative, item in counted],
            error_bound=sum(int(b) for b in evicted if b is not None),
        )

    async def first_activity_minutes(self, day: int) -> dict[int, int]:
        """minute of ``day`` -> users whose first activity that day was at that minute."""
        raw = await self._client.hgetall(self._keys.day_progression(day))
        return {int(text(minute)): int(users) for minute, users in raw.items()}
