"""Read side of the inactivity flags: counters, flag histories, flags per minute, event clocks.

Per-partition figures are merged here (histories and states: users are disjoint across
partitions; counts summed), so callers never learn how many keys hold one figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.store.redis_store import RedisStore, text


class FlagReads:
    """What the flag lifecycle wrote, read for reports, gauges and the demo."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys

    async def inactivity_counts(self) -> dict[str, int]:
        """The engine's counters: "enabled", "never_active", "inactive:<threshold>" -> users."""
        return await self._store.summed_partition_hashes("inactivity_counts")

    async def enabled_users(self) -> int:
        """Users with an enabled profile (0 before the first count)."""
        return (await self.inactivity_counts()).get("enabled", 0)

    async def flag_histories(self) -> dict[str, str]:
        """user -> stored flag history ("i@ms,r@ms,..."), every partition's users."""
        async with self._client.pipeline(transaction=False) as pipe:
            for p in await self._store.partitions():
                pipe.hgetall(self._keys.partition(p).flag_history)
            replies = await pipe.execute()
        return {text(u): text(raw) for reply in replies for u, raw in reply.items()}

    async def flags_per_minute(self, kind: str, days: Sequence[int]) -> dict[int, dict[int, int]]:
        """day -> minute of the day -> users flagged ``kind`` at that minute of event time."""
        partitions = await self._store.partitions()
        async with self._client.pipeline(transaction=False) as pipe:
            for p in partitions:
                for day in days:
                    pipe.hgetall(self._keys.partition(p).flag_minutes(kind, day))
            replies = await pipe.execute()
        out: dict[int, dict[int, int]] = {day: {} for day in days}
        for index, counts in enumerate(replies):
            minutes = out[days[index % len(days)]]
            for minute, count in counts.items():
                minutes[int(text(minute))] = minutes.get(int(text(minute)), 0) + int(count)
        return out

    async def event_watermarks(self) -> dict[int, int]:
        """partition -> highest event time folded (partitions with none left out)."""
        partitions = await self._store.partitions()
        async with self._client.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.get(self._keys.partition(p).watermark_source)
            replies = await pipe.execute()
        return {p: int(raw) for p, raw in zip(partitions, replies, strict=True) if raw is not None}

    async def event_watermark(self, partition: int) -> int | None:
        """Highest event time folded by one partition, None before its first event."""
        raw = await self._client.get(self._keys.partition(partition).watermark_source)
        return int(raw) if raw is not None else None
