"""Whole-deployment state administration for ``esn-pulse rebuild``: count, delete, renumber.

Which keys are derived from Kafka (and so deleted by a rebuild) is a fact of the key layout, so it
is decided here; the only state kept is what Kafka cannot give back: initiatives.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from stream.store.redis_store import RedisStore, text

#: Keys per SCAN page and per UNLINK: bounds how long one command holds Redis.
_BATCH = 1000


def _glob_escape(literal: str) -> str:
    """A Redis MATCH pattern matching ``literal`` literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", literal)


class StateAdmin:
    """Every key under the deployment's prefix, as a rebuild sees them."""

    def __init__(self, store: RedisStore) -> None:
        self._client = store.client
        self._keys = store.keys

    def is_kept(self, key: str) -> bool:
        """Keys not derived from Kafka: initiatives (``esn-pulse initiative``)."""
        rest = key[len(self._keys.prefix) :]
        return rest == "init" or (rest.startswith("init:") and rest.endswith(":users"))

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
        seqs = {keys.outbox_seq(p): seq for p, seq in flag_seqs.items() if seq > 0}
        if community_seq > 0:
            seqs[keys.community_outbox_seq] = community_seq
        if seqs:
            await self._client.mset(seqs)
