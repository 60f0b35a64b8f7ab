"""Community health counted in Redis: role holders, people, active people and active owners.

Each partition keeps its communities' role counts and active counts (fold.lua and directory.lua
keep them; docs/reference/redis.md): a read is one script call per partition, which moves the
active counts to the instant asked by reading only who crossed a window's start since the last
read (O(changes)), and answers every community's counts as two strings. No member is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from stream.store.directory_store import ROLES
from stream.store.redis_store import RedisStore, run_scripts, text

_HEALTH_SCRIPT = resources.files("stream.store").joinpath("community_health.lua").read_text()


@dataclass
class HealthCounts:
    """One community's counts, summed over partitions (their users are disjoint)."""

    roles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    people: int = 0
    active: int = 0
    active_owners: int = 0


class CommunityHealthReads:
    """Per-community counts read from every partition."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys
        self._script = store.client.register_script(_HEALTH_SCRIPT)

    async def counts(
        self, now_ms: int, window_ms: int, threshold_ms: int
    ) -> dict[str, HealthCounts]:
        """Communities with at least one role holder: their counts at ``now_ms``.

        Active people: last event within ``window_ms``; active owners: within ``threshold_ms``
        (both among enabled people, or of no known profile).
        """
        calls = []
        for p in await self._store.partitions():
            k = self._keys.partition(p)
            keys = [
                k.community_counts,
                k.community_active,
                k.community_active_people,
                k.community_active_owners,
            ]
            calls.append((keys, [now_ms, window_ms, threshold_ms]))
        found: dict[str, HealthCounts] = {}
        for reply in await run_scripts(self._client, self._script, calls):
            if isinstance(reply, Exception):
                raise reply
            roles, active = text(reply[0]), text(reply[1])
            for line in roles.split("\n") if roles else ():
                community, _, values = line.partition("\t")
                owners, members, followers, people = (int(v) for v in values.split(","))
                counts = found.setdefault(community, HealthCounts())
                for role, held in zip(ROLES, (owners, members, followers), strict=True):
                    counts.roles[role] += held
                counts.people += people
            for line in active.split("\n") if active else ():
                community, _, values = line.partition("\t")
                people_active, owners_active = (int(v) for v in values.split(","))
                counts = found.setdefault(community, HealthCounts())
                counts.active += people_active
                counts.active_owners += owners_active
        return {c: counts for c, counts in found.items() if counts.people}
