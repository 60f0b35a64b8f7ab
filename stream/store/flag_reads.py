"""Read side of the inactivity flags: counters, flag histories, flags per minute, event clocks.

Per-partition figures are merged here (histories and states: users are disjoint across
partitions; counts summed), so callers never learn how many keys hold one figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.store.redis_store import RedisStore, text


class FlagReads:
    """What the flag lifecycle wrote, read for reports, gauges and the demo."""

    def __init__(self, store: RedisStore, partitions: int) -> None:
        self._client = store.client
        self._keys = store.keys
        #: Activity partitions (ESN_ACTIVITY_PARTITIONS): per-partition figures span them all.
        self._partitions = partitions

    async def inactivity_counts(self) -> dict[str, int]:
        """The engine's counters: "enabled", "never_active", "inactive:<threshold>" -> users."""
        raw = await self._client.hgetall(self._keys.inactivity_counts)
        return {text(k): int(v) for k, v in raw.items()}

    async def enabled_users(self) -> int:
        """Users with an enabled profile (0 before the first count)."""
        raw = await self._client.hget(self._keys.inactivity_counts, "enabled")
        return int(text(raw)) if raw is not None else 0

    async def flag_histories(self) -> dict[str, str]:
        """user -> stored flag history ("i@ms,r@ms,..."), every partition's users."""
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in range(self._partitions):
                pipe.hgetall(self._keys.flag_history(partition))
            replies = await pipe.execute()
        return {text(u): text(raw) for reply in replies for u, raw in reply.items()}

    async def flags_per_minute(self, kind: str, days: Sequence[int]) -> dict[int, dict[int, int]]:
        """day -> minute of the day -> users flagged ``kind`` at that minute of event time."""
        async with self._client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self._keys.flag_minutes(kind, day))
            replies = await pipe.execute()
        return {
            day: {int(text(minute)): int(count) for minute, count in counts.items()}
            for day, counts in zip(days, replies, strict=True)
        }

    async def event_watermarks(self) -> dict[int, int]:
        """partition -> highest event time folded (partitions with none left out)."""
        keys = [self._keys.watermark_source(p) for p in range(self._partitions)]
        return {
            partition: int(raw)
            for partition, raw in enumerate(await self._client.mget(keys))
            if raw is not None
        }

    async def event_watermark(self, partition: int) -> int | None:
        """Highest event time folded by one partition, None before its first event."""
        raw = await self._client.get(self._keys.watermark_source(partition))
        return int(raw) if raw is not None else None
