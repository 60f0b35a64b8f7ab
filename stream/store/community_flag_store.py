"""Redis reads and the compare-and-set commit of the community flags (community_flags.lua).

The community flags' state, outbox and counters share the hash tag ``{c}``: one slot, so the
commit stays one atomic script on a Redis Cluster too.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from stream.store.redis_store import RedisStore, run_scripts, text

_SCRIPT = resources.files("stream.store").joinpath("community_flags.lua").read_text()


class CommunityFlagStore:
    """The community flags as last committed, and their commit."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._commit = store.client.register_script(_SCRIPT)

    async def stored_states(self) -> dict[str, str]:
        """Community -> "flags|version" as last committed."""
        raw = await self.store.client.hgetall(self.store.keys.community_states)
        return {text(k): text(v) for k, v in raw.items()}

    async def commit(self, lines: Sequence[str]) -> int:
        """Commit "community\told\tnew\tevent_id\tjson" lines; returns the records added."""
        if not lines:
            return 0
        keys = self.store.keys
        call = (
            [
                keys.community_states,
                keys.community_outbox,
                keys.community_outbox_seq,
                keys.community_flags_ahead,
            ],
            ["\n".join(lines)],
        )
        (reply,) = await run_scripts(self.store.client, self._commit, [call])
        if isinstance(reply, Exception):
            raise reply
        return int(reply)
