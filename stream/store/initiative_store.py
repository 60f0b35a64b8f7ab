"""Initiatives in Redis: their records (JSON) and the users each targets.

Initiatives are the one state Kafka cannot give back (``esn-pulse rebuild`` keeps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream import jsonutil
from stream.store.redis_store import RedisStore, text

#: Members per SADD: bounds one command's size for initiatives of a whole company.
_SADD_CHUNK = 10_000


class InitiativeStore:
    """Store, list and read initiatives over one store."""

    def __init__(self, store: RedisStore) -> None:
        self._client = store.client
        self._keys = store.keys

    async def put(self, name: str, record: dict[str, Any], members: Sequence[str]) -> None:
        """Store (or replace) an initiative's record and users, atomically."""
        keys = self._keys
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.initiative_users(name))
            for start in range(0, len(members), _SADD_CHUNK):
                pipe.sadd(keys.initiative_users(name), *members[start : start + _SADD_CHUNK])
            pipe.hset(keys.initiatives, name, jsonutil.dumps(record).decode())
            await pipe.execute()

    async def records(self) -> list[dict[str, Any]]:
        """Every stored initiative record, in no particular order."""
        raw = await self._client.hgetall(self._keys.initiatives)
        return [jsonutil.loads(v) for v in raw.values()]

    async def record(self, name: str) -> dict[str, Any] | None:
        """One initiative's record, or None."""
        raw = await self._client.hget(self._keys.initiatives, name)
        return jsonutil.loads(raw) if raw is not None else None

    async def users(self, name: str) -> set[str]:
        """The users an initiative targets."""
        return {text(u) for u in await self._client.smembers(self._keys.initiative_users(name))}
