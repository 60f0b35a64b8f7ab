"""Community health counted in Redis: people, active people and active owners per community.

Each partition keeps a health index (fold.lua and directory.lua keep it; docs/reference/redis.md):
a read is one script call per partition and chunk of communities answering six numbers a
community, O(communities x partitions) whatever the members, instead of reading every member's
last activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from stream.store.directory_store import ROLES
from stream.store.redis_store import RedisStore, run_scripts, text

_HEALTH_SCRIPT = resources.files("stream.store").joinpath("community_health.lua").read_text()
#: Communities per script call: bounds how long one call holds Redis (six O(log n) commands a
#: community, a few microseconds; the fold's calls queue behind a long one).
_COMMUNITY_CHUNK = 200


@dataclass
class HealthCounts:
    """One community's counts, summed over partitions (their users are disjoint)."""

    roles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    people: int = 0
    active: int = 0
    active_owners: int = 0


def since(now_ms: int, window_ms: int) -> str:
    """The health index's bound for "last event within ``window_ms`` of ``now_ms``"."""
    return f"{max(0, now_ms - window_ms):015d}"


class CommunityHealthReads:
    """Per-community counts read from every partition's health index."""

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
        partitions = await self._store.partitions()
        async with self._client.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.smembers(self._keys.partition(p).community_registry)
            registries = await pipe.execute()
        bounds = [since(now_ms, window_ms), since(now_ms, threshold_ms)]
        calls: list[tuple[list[str], list[str]]] = []
        chunks: list[list[str]] = []
        for p, registry in zip(partitions, registries, strict=True):
            k = self._keys.partition(p)
            names = sorted(text(c) for c in registry)
            for start in range(0, len(names), _COMMUNITY_CHUNK):
                chunk = names[start : start + _COMMUNITY_CHUNK]
                keys = [k.community_health]
                keys += [k.community_role(c, role) for c in chunk for role in ROLES]
                calls.append((keys, bounds + chunk))
                chunks.append(chunk)
        found: dict[str, HealthCounts] = {}
        for chunk, reply in zip(
            chunks, await run_scripts(self._client, self._script, calls), strict=True
        ):
            if isinstance(reply, Exception):
                raise reply
            for index, community in enumerate(chunk):
                figures = [int(v) for v in reply[6 * index : 6 * index + 6]]
                if not any(figures[:3]):
                    continue  # everyone left: not a community of anyone (as before)
                counts = found.setdefault(community, HealthCounts())
                for role, held in zip(ROLES, figures[:3], strict=True):
                    counts.roles[role] += held
                counts.people += figures[3]
                counts.active += figures[4]
                counts.active_owners += figures[5]
        return found
