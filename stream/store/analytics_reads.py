"""Read side of the engagement analytics: daily counters, tier windows, content mix, top items.

Callers ask for figures by name and day; how a figure is laid out in Redis (one key per day, per
partition or per anything) stays in this module, which merges what it reads (sums counts, unions
HyperLogLogs and sorted sets) before handing plain values back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster

from stream import jsonutil
from stream.store.fold_call import iso_of
from stream.store.keys import PartitionKeys
from stream.store.redis_store import CLUSTER_IN_FLIGHT, RedisStore, run_scripts, text

_WINDOWS_SCRIPT = resources.files("stream.store").joinpath("tier_windows.lua").read_text()


@dataclass(frozen=True)
class TopItems:
    """The most interacted-with items of some days, and how far their counts may be short."""

    #: (item, interactions), most interactions first, ties broken by item.
    ranked: list[tuple[str, int]]
    #: Sum of the days' highest dropped counts (0: every listed count is exact).
    error_bound: int


class AnalyticsReads:
    """Figures the analytics read, over one store: each kept per partition, merged here."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys
        self._windows = store.client.register_script(_WINDOWS_SCRIPT)

    async def _per_partition(self, queue: Callable[[Any, PartitionKeys], None]) -> list[list[Any]]:
        """Run ``queue(pipe, keys)`` for every partition in one pipeline; replies per partition."""
        partitions = await self._store.partitions()
        async with self._client.pipeline(transaction=False) as pipe:
            sizes = []
            for p in partitions:
                before = len(pipe)
                queue(pipe, self._keys.partition(p))
                sizes.append(len(pipe) - before)
            replies = await pipe.execute() if partitions else []
        out, start = [], 0
        for size in sizes:
            out.append(replies[start : start + size])
            start += size
        return out

    async def daily_counts(self, name: str, days: Sequence[int]) -> dict[int, int]:
        """day number -> value of an exact daily counter ("a", "p", "c", "n"); 0 when unset."""
        if not days:
            return {}
        fields = [str(d) for d in days]
        out = dict.fromkeys(days, 0)
        for (raw,) in await self._per_partition(lambda pipe, k: pipe.hmget(k.stats(name), fields)):
            for day, value in zip(days, raw, strict=True):
                out[day] += int(value) if value is not None else 0
        return out

    async def window_users(
        self, tier: str, last_day: int, windows: Sequence[int]
    ) -> dict[int, int]:
        """window (days) -> users of a tier ("a", "p", "c") in the days ending with ``last_day``.

        Exact: per partition, the OR of the window's day bitmaps (a bit per user index),
        counted by one script in Redis (tier_windows.lua) that returns only the counts; the
        partitions' users are disjoint, so their counts add up.
        """
        if not windows:
            return {}
        lengths = sorted(set(windows))
        iso_days = [iso_of(last_day - back) for back in range(lengths[-1])]
        calls = []
        for p in await self._store.partitions():
            k = self._keys.partition(p)
            calls.append(([k.scratch, *(k.tier_day(tier, iso) for iso in iso_days)], lengths))
        out = dict.fromkeys(windows, 0)
        for reply in await run_scripts(self._client, self._windows, calls):
            if isinstance(reply, Exception):
                raise reply
            for length, count in zip(lengths, reply, strict=True):
                out[length] += int(count)
        return out

    async def window_distinct(self, tier: str, days: Sequence[int], window: int) -> dict[int, int]:
        """day -> distinct users of a tier in the ``window`` days ending with it.

        One multi-day PFCOUNT per partition (its days share its slot), summed: a user is in one
        partition only, so the partitions' distinct users add up.
        """

        def windows(k: PartitionKeys) -> list[list[str]]:
            return [[k.tier_hll(tier, d) for d in range(day - window + 1, day + 1)] for day in days]

        if isinstance(self._client, RedisCluster):
            # redis-py's cluster pipelines refuse PFCOUNT: each on its own, concurrently but
            # a bounded number in flight (past a node's max_connections its pool raises).
            client, gate = self._client, asyncio.Semaphore(CLUSTER_IN_FLIGHT)
            # A fresh cluster client given many commands at once, before it learnt the slots,
            # sends some on connections still being set up (redis-py: 'NoneType' object has no
            # attribute 'writelines'): learn them first (a no-op once done).
            await client.initialize()

            async def pfcount(keys: list[str]) -> int:
                async with gate:
                    return int(await client.pfcount(*keys))

            partitions = await self._store.partitions()
            flat = await asyncio.gather(
                *(pfcount(keys) for p in partitions for keys in windows(self._keys.partition(p)))
            )
            per_partition = [flat[i : i + len(days)] for i in range(0, len(flat), len(days))]
        else:

            def queue(pipe: Any, k: PartitionKeys) -> None:
                for keys in windows(k):
                    pipe.pfcount(*keys)

            per_partition = await self._per_partition(queue)
        out = dict.fromkeys(days, 0)
        for replies in per_partition:
            for day, count in zip(days, replies, strict=True):
                out[day] += int(count)
        return out

    async def daily_events(self, days: Sequence[int]) -> dict[int, int]:
        """day -> valid activity events of that day, all types."""
        return {day: sum(mix.values()) for day, mix in (await self.content_mix(days)).items()}

    async def content_mix(self, days: Sequence[int]) -> dict[int, Counter[tuple[str, str]]]:
        """day -> (event type, object type) -> events, in one round trip."""

        def queue(pipe: Any, k: PartitionKeys) -> None:
            for day in days:
                pipe.hgetall(k.content(day))

        out: dict[int, Counter[tuple[str, str]]] = {day: Counter() for day in days}
        for replies in await self._per_partition(queue):
            for day, mix in zip(days, replies, strict=True):
                for field, count in mix.items():
                    event_type, _, object_type = text(field).partition("|")
                    out[day][event_type, object_type] += int(count)
        return out

    async def top_items(self, days: Sequence[int], limit: int) -> TopItems:
        """The ``limit`` items with the most interactions summed over ``days``."""
        if not days:
            return TopItems([], 0)

        def queue(pipe: Any, k: PartitionKeys) -> None:
            # Whole sketches (at most ESN_TOP_ITEMS_CAPACITY items a day and partition): ties at
            # the cut are then broken by item, independently of Redis's order among equal scores.
            for d in days:  # GETs, not MGET: a cluster's pipeline refuses MGET
                pipe.get(k.top_items("d", d))

        totals: Counter[str] = Counter()
        bound = 0
        for lists in await self._per_partition(queue):
            for raw in lists:
                if raw is None:
                    continue
                kept = jsonutil.loads(raw)  # [bound, item, count, item, count...]
                bound += int(kept[0])
                for index in range(1, len(kept), 2):
                    totals[kept[index]] += int(kept[index + 1])
        counted = sorted((-count, item) for item, count in totals.items())[:limit]
        return TopItems(ranked=[(item, -negative) for negative, item in counted], error_bound=bound)

    async def first_activity_minutes(self, day: int) -> dict[int, int]:
        """minute of ``day`` -> users whose first activity that day was at that minute."""

        def queue(pipe: Any, k: PartitionKeys) -> None:
            pipe.get(k.day_progression(day))
            pipe.hgetall(k.day_progression_spill(day))

        out: Counter[int] = Counter()
        for progression, spill in await self._per_partition(queue):
            # A u8 per minute (BITFIELD u8 #minute); a minute's users past 255 are in the spill.
            for minute, users in enumerate(progression or b""):
                if users:
                    out[minute] += users
            for minute, users in spill.items():
                out[int(text(minute))] += int(users)
        return dict(out)
