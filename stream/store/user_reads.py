"""Per-user reads of the inactivity side: one user's state, every user's, interactions received.

States are returned as stored (stream/flags/state_codec.py decodes them): a caller that needs a
few of many decodes only those. Users are disjoint across partitions, so merging is a union.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from stream.store.redis_store import RedisStore, text


class UserReads:
    """Inactivity states and received interactions, wherever a user's partition is."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys

    async def inactivity_state(self, user_id: str) -> str | None:
        """A user's stored inactivity state, or None when no partition holds one."""
        async with self._client.pipeline(transaction=False) as pipe:
            for p in await self._store.partitions():
                pipe.hget(self._keys.partition(p).inactivity_states, user_id)
            found = [raw for raw in await pipe.execute() if raw is not None]
        return text(found[0]) if found else None

    async def inactivity_states(self) -> dict[str, str]:
        """user -> stored inactivity state, every user of every partition, in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for p in await self._store.partitions():
                pipe.hgetall(self._keys.partition(p).inactivity_states)
            replies = await pipe.execute()
        return {text(user): text(raw) for reply in replies for user, raw in reply.items()}

    async def scan_inactivity_states(self) -> AsyncIterator[tuple[str, str]]:
        """(user, stored state) of every user, a thousand at a time (never one long command)."""
        for p in await self._store.partitions():
            key = self._keys.partition(p).inactivity_states
            async for user, raw in self._client.hscan_iter(key, count=1000):
                yield text(user), text(raw)

    async def interactions_received(self, user_id: str) -> tuple[int, int]:
        """(likes, mentions) the user received; (0, 0) when none (summed over partitions: the
        likes a person receives are counted in the partition of whoever gave them)."""
        bucket = self._store.bucket_of(user_id)
        async with self._client.pipeline(transaction=False) as pipe:
            for p in await self._store.partitions():
                pipe.hget(self._keys.partition(p).received(bucket), user_id)
            replies = await pipe.execute()
        likes = mentions = 0
        for raw in replies:
            if raw:
                got_likes, got_mentions = (int(x) for x in text(raw).split(","))
                likes += got_likes
                mentions += got_mentions
        return likes, mentions
