"""The oracle of community health: every member's last activity and profile, read per partition.

This was stream/analytics' computation before the health index (layout 4): O(members), kept here
so that the tests hold the index's counts to it (tests/integration/test_community_health.py).

A partition's community sets hold its own users, whose user records and profiles live in the
same partition: each member is read there only, one HMGET per bucket, instead of one HGET per
member and partition (12 partitions: 24 commands a member before, a few per bucket now); the
role sets come back in one script reply per 500 communities, not one SMEMBERS each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stream.analytics.communities import CommunityHealth
from stream.store import CommunityReads
from stream.store.directory_store import ROLES
from stream.store.redis_store import RedisStore, decode_user_record, run_scripts, text

_MEMBERS_SCRIPT = (Path(__file__).parent / "community_members.lua").read_text()
#: Communities per script call: bounds how long one call holds Redis (3 sets each). At 500 a
#: call held it for tens of milliseconds, and the fold's calls queued behind (event latency).
_COMMUNITY_CHUNK = 50


@dataclass(frozen=True)
class PartitionMembers:
    """One partition's community roles and its members' last activity and directory status."""

    roles: dict[str, dict[str, set[str]]]
    last_seen: dict[str, int]
    disabled: set[str]


class MemberReads:
    """Per-partition reads of community members."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys
        self._sets = store.client.register_script(_MEMBERS_SCRIPT)

    async def partition_members(self, partition: int) -> PartitionMembers:
        """Roles of every community of the partition, and its members' figures."""
        k = self._keys.partition(partition)
        names = sorted(text(c) for c in await self._client.smembers(k.community_registry))
        calls: list[tuple[list[str], list[str]]] = []
        chunks: list[list[str]] = []
        for start in range(0, len(names), _COMMUNITY_CHUNK):
            chunk = names[start : start + _COMMUNITY_CHUNK]
            keys = [k.community_role(c, role) for c in chunk for role in ROLES]
            calls.append((keys, []))
            chunks.append(chunk)
        roles: dict[str, dict[str, set[str]]] = {}
        for chunk, reply in zip(
            chunks, await run_scripts(self._client, self._sets, calls), strict=True
        ):
            if isinstance(reply, Exception):
                raise reply
            at = 0
            for community in chunk:
                by_role = roles[community] = {}
                for role in ROLES:
                    count = int(reply[at])
                    by_role[role] = {text(m) for m in reply[at + 1 : at + 1 + count]}
                    at += 1 + count
        people = sorted(
            {u for by_role in roles.values() for users in by_role.values() for u in users}
        )
        last_seen, disabled = await self._figures(partition, people)
        return PartitionMembers(roles, last_seen, disabled)

    async def _figures(
        self, partition: int, users: Sequence[str]
    ) -> tuple[dict[str, int], set[str]]:
        """Last seen of the users with a record; those whose profile is not enabled."""
        k = self._keys.partition(partition)
        by_bucket: dict[int, list[str]] = {}
        for user in users:
            by_bucket.setdefault(self._store.bucket_of(user), []).append(user)
        buckets = sorted(by_bucket)
        async with self._client.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hmget(k.user_bucket(bucket), by_bucket[bucket])
                pipe.hmget(k.profile_bucket(bucket), by_bucket[bucket])
            replies = await pipe.execute()
        last_seen: dict[str, int] = {}
        disabled: set[str] = set()
        for index, bucket in enumerate(buckets):
            records, profiles = replies[2 * index], replies[2 * index + 1]
            for user, record, profile in zip(by_bucket[bucket], records, profiles, strict=True):
                if record is not None:
                    last_seen[user] = decode_user_record(user, record).last_seen_ms
                # A profile is "updated\tstatus\t...": only enabled ones count as active.
                if profile is not None and text(profile).split("\t", 2)[1] != "enabled":
                    disabled.add(user)
        return last_seen, disabled


@dataclass(frozen=True)
class CommunityInputs:
    """What the evaluation reads, loaded once for all communities."""

    roles: dict[str, dict[str, set[str]]]
    last_seen: dict[str, int]
    disabled: set[str]
    last_activity: dict[str, int]
    events: dict[str, int]


def is_active(user: str, inputs: CommunityInputs, now_ms: int, window_ms: int) -> bool:
    """Enabled (or not in the directory) and last seen within the window."""
    if user in inputs.disabled:
        return False
    seen = inputs.last_seen.get(user)
    return seen is not None and now_ms - seen <= window_ms


def evaluate(
    community: str, inputs: CommunityInputs, now_ms: int, window_ms: int, threshold_ms: int
) -> CommunityHealth:
    """A community's figures (pure: the oracle tests hold the Redis side to this)."""
    roles = inputs.roles.get(community, {role: set() for role in ROLES})
    people = set().union(*roles.values())
    active = sum(1 for user in people if is_active(user, inputs, now_ms, window_ms))
    last = inputs.last_activity.get(community)
    owners = roles.get("owner", set())
    return CommunityHealth(
        community=community,
        roles={role: len(roles.get(role, ())) for role in ROLES},
        people=len(people),
        active_members=active,
        health=round(active / len(people), 4) if people else None,
        last_activity_ms=last,
        events=inputs.events.get(community, 0),
        idle=last is None or now_ms - last > window_ms,
        orphaned=not any(is_active(o, inputs, now_ms, threshold_ms) for o in owners),
    )


async def load_inputs(store: RedisStore) -> CommunityInputs:
    """Memberships, last-seen of every member, disabled profiles and community activity.

    O(members): each partition's members are read in that partition only, by bucket, one
    partition at a time (a bounded reply each); see docs/design/performance.md.
    """
    reads = MemberReads(store)
    roles: dict[str, dict[str, set[str]]] = {}
    last_seen: dict[str, int] = {}
    disabled: set[str] = set()
    for partition in await store.partitions():
        members = await reads.partition_members(partition)
        for community, by_role in members.roles.items():
            merged = roles.setdefault(community, {role: set() for role in ROLES})
            for role, users in by_role.items():
                merged[role] |= users
        for user, seen in members.last_seen.items():
            last_seen[user] = max(seen, last_seen.get(user, seen))
        disabled |= members.disabled
    roles = {c: by_role for c, by_role in roles.items() if any(by_role.values())}
    activity = await CommunityReads(store).community_figures()
    return CommunityInputs(
        roles=roles,
        last_seen=last_seen,
        disabled=disabled,
        last_activity=activity.last_activity,
        events=activity.events,
    )


async def all_communities_scan(
    store: RedisStore, now_ms: int, window_ms: int, threshold_ms: int
) -> list[CommunityHealth]:
    """Every community with a member or an event, by id."""
    inputs = await load_inputs(store)
    names = sorted(set(inputs.roles) | set(inputs.last_activity))
    return [evaluate(name, inputs, now_ms, window_ms, threshold_ms) for name in names]
