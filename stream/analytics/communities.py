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
from stream.store.community_health import CommunityHealthReads, HealthCounts


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


def health_of(
    community: str,
    counts: HealthCounts | None,
    last_activity_ms: int | None,
    events: int,
    now_ms: int,
    window_ms: int,
) -> CommunityHealth:
    """A community's figures from its counts (pure; the counts are at ``now_ms`` already)."""
    counts = counts or HealthCounts()
    people, active = counts.people, counts.active
    return CommunityHealth(
        community=community,
        roles=dict(counts.roles),
        people=people,
        active_members=active,
        health=round(active / people, 4) if people else None,
        last_activity_ms=last_activity_ms,
        events=events,
        idle=last_activity_ms is None or now_ms - last_activity_ms > window_ms,
        orphaned=counts.active_owners == 0,
    )


async def all_communities(
    store: RedisStore, now_ms: int, window_ms: int, threshold_ms: int
) -> list[CommunityHealth]:
    """Every community with a member or an event, by id.

    No member is read: each partition's counts are kept by the fold and the directory script
    and moved to ``now_ms`` by the read (O(changes since the last read) plus a line a
    community; docs/design/performance.md, "Community health").
    """
    counts = await CommunityHealthReads(store).counts(now_ms, window_ms, threshold_ms)
    activity = await CommunityReads(store).community_figures()
    names = sorted(set(counts) | set(activity.last_activity))
    return [
        health_of(
            name,
            counts.get(name),
            activity.last_activity.get(name),
            activity.events.get(name, 0),
            now_ms,
            window_ms,
        )
        for name in names
    ]


def community_counts(rows: list[CommunityHealth]) -> dict[str, int]:
    """total, orphaned, idle and healthy (neither) communities."""
    return {
        "total": len(rows),
        "orphaned": sum(1 for c in rows if c.orphaned),
        "idle": sum(1 for c in rows if c.idle),
        "healthy": sum(1 for c in rows if not c.orphaned and not c.idle),
    }
