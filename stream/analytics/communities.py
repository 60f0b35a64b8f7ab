"""Community health: members by role, active members, health ratio, idle and orphaned.

Definitions (docs/reference/analytics.md, "Communities"), all at the clock's now with
W = ESN_COMMUNITY_WINDOW_DAYS and T = the first ESN_INACTIVITY_THRESHOLDS:
- people: distinct users holding any role (owner, member, follower);
- active members: people with an enabled (or unknown) profile whose last activity is within W;
- health: active members / people;
- idle: no event naming the community within W (or none ever);
- orphaned: no owner is enabled and active within T (a community without owners is orphaned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.analytics.days import iso_time
from stream.store import CommunityReads, RedisStore
from stream.store.directory_store import ROLES
from stream.store.member_reads import MemberReads


@dataclass(frozen=True)
class CommunityHealth:
    """One community's figures at one instant."""

    community: str
    roles: dict[str, int]
    people: int
    active_members: int
    health: float | None
    last_activity_ms: int | None
    events: int
    idle: bool
    orphaned: bool

    def as_json(self) -> dict[str, Any]:
        """The API's and the report's shape."""
        return {
            "community": self.community,
            "members_by_role": self.roles,
            "people": self.people,
            "active_members": self.active_members,
            "health": self.health,
            "last_activity": iso_time(self.last_activity_ms),
            "events": self.events,
            "idle": self.idle,
            "orphaned": self.orphaned,
        }


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


async def all_communities(
    store: RedisStore, now_ms: int, window_ms: int, threshold_ms: int
) -> list[CommunityHealth]:
    """Every community with a member or an event, by id."""
    inputs = await load_inputs(store)
    names = sorted(set(inputs.roles) | set(inputs.last_activity))
    return [evaluate(name, inputs, now_ms, window_ms, threshold_ms) for name in names]


def community_counts(rows: list[CommunityHealth]) -> dict[str, int]:
    """total, orphaned, idle and healthy (neither) communities."""
    return {
        "total": len(rows),
        "orphaned": sum(1 for c in rows if c.orphaned),
        "idle": sum(1 for c in rows if c.idle),
        "healthy": sum(1 for c in rows if not c.orphaned and not c.idle),
    }
