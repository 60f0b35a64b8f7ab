"""Whole-deployment state administration for ``esn-pulse rebuild``: count, delete, renumber.

Which keys are derived from Kafka (and so deleted by a rebuild) is a fact of the key layout, so it
is decided here; the only state kept is what Kafka cannot give back: initiatives.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from stream import jsonutil
from stream.store.initiative_store import InitiativeStore
from stream.store.redis_store import RedisStore, text

#: Keys per SCAN page and per UNLINK: bounds how long one command holds Redis.
_BATCH = 1000


def _glob_escape(literal: str) -> str:
    """A Redis MATCH pattern matching ``literal`` literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", literal)


class StateAdmin:
    """Every key under the deployment's prefix, as a rebuild sees them."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys

    def is_kept(self, key: str) -> bool:
        """Keys not derived from Kafka: initiatives (``esn-pulse initiative``), in this layout
        (``{init}``) or in layout 1's (``init``, ``init:<name>:users``), which
        :meth:`move_layout1_initiatives` moves."""
        rest = key[len(self._keys.prefix) :]
        # Nudges sent and the audit of them are not derived from Kafka: a replay must not
        # send them again.
        if rest.startswith(("{init}:", "{nudge}:", "{nudge-dry}:", "{nudge-ab}:")):
            return True
        return rest == "init" or (rest.startswith("init:") and rest.endswith(":users"))

    async def move_layout1_initiatives(self) -> int:
        """Move initiatives stored in layout 1 (one Redis) to their keys; returns how many.

        Each is written under its new keys before its old ones go, so a rebuild interrupted
        half-way moves the rest when run again.
        """
        old_records = self._keys.prefix + "init"
        raw = await self._client.hgetall(old_records)
        store = InitiativeStore(self._store)
        for name, record in raw.items():
            old_users = f"{self._keys.prefix}init:{text(name)}:users"
            members = sorted(text(u) for u in await self._client.smembers(old_users))
            await store.put(text(name), jsonutil.loads(record), members)
            await self._client.hdel(old_records, name)
            await self._client.delete(old_users)
        return len(raw)

    async def _all_keys(self) -> AsyncIterator[str]:
        pattern = _glob_escape(self._keys.prefix) + "*"
        async for raw in self._client.scan_iter(match=pattern, count=_BATCH):
            yield text(raw)

    async def count_keys(self) -> tuple[int, int]:
        """(derived keys a rebuild deletes, keys it keeps), read without writing."""
        deleted = kept = 0
        async for key in self._all_keys():
            if self.is_kept(key):
                kept += 1
            else:
                deleted += 1
        return deleted, kept

    async def delete_derived(self) -> int:
        """Delete every derived key (initiatives stay); returns how many were deleted."""
        deleted, batch = 0, []
        async for key in self._all_keys():
            if not self.is_kept(key):
                batch.append(key)
            if len(batch) >= _BATCH:
                deleted += await self._client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self._client.unlink(*batch)
        return deleted

    async def continue_numbering(self, flag_seqs: dict[int, int], community_seq: int) -> None:
        """Set the flag outboxes' last sequence numbers (partition -> seq; 0s are left unset)."""
        keys = self._keys
        seqs = {keys.partition(p).outbox_seq: seq for p, seq in flag_seqs.items() if seq > 0}
        if community_seq > 0:
            seqs[keys.community_outbox_seq] = community_seq
        # One SET each, pipelined: the keys are in different slots (no MSET on a cluster).
        async with self._client.pipeline(transaction=False) as pipe:
            for key, seq in seqs.items():
                pipe.set(key, seq)
            await pipe.execute()
