"""The at-risk list (issue 16) as the API, the CLI and the report show it: who, since when,
their usual rhythm, last activity, department and communities, newest flag first."""

from __future__ import annotations

from typing import Any

from stream.analytics.days import iso_time
from stream.flags.machine import RHYTHM_WINDOW_DAYS
from stream.queries import FlaggedUser
from stream.store import DirectoryStore, RedisStore


def rhythm(active_days: int) -> dict[str, Any]:
    """Active days of the window and the usual gap, as the at_risk record carries them."""
    return {
        "active_days": active_days,
        "window_days": RHYTHM_WINDOW_DAYS,
        # Same rounding as the published record (stream.flags.records), so both agree.
        "usual_gap_days": round(RHYTHM_WINDOW_DAYS / active_days, 2) if active_days else None,
    }


async def at_risk_rows(
    store: RedisStore,
    flagged: list[FlaggedUser],
    *,
    department: str | None = None,
    community: str | None = None,
) -> list[dict[str, Any]]:
    """One row per at-risk user (directory read in one round trip), filtered."""
    enrichment = await DirectoryStore(store).profiles_and_roles([f.user_id for f in flagged])
    rows: list[dict[str, Any]] = []
    for f in flagged:
        profile, roles = enrichment[f.user_id]
        dept = profile.department if profile else None
        if department is not None and dept != department:
            continue
        if community is not None and not any(community in c for c in roles.values()):
            continue
        rows.append(
            {
                "user_id": f.user_id,
                "at_risk_since": iso_time(f.state.at_risk_ms),
                "rhythm": rhythm(f.state.active_days_count()),
                "last_seen": iso_time(f.state.last_ms),
                "department": dept,
                "communities": roles,
            }
        )
    return rows


async def at_risk_page(
    store: RedisStore,
    flagged: list[FlaggedUser],
    offset: int,
    limit: int,
    *,
    department: str | None = None,
    community: str | None = None,
) -> dict[str, Any]:
    """Rows ``offset`` to ``offset + limit``; unfiltered, the directory is read for those only."""
    if department is None and community is None:
        total = len(flagged)
        users = await at_risk_rows(store, flagged[offset : offset + limit])
    else:
        every = await at_risk_rows(store, flagged, department=department, community=community)
        total, users = len(every), every[offset : offset + limit]
    following = offset + len(users)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < total else None,
        "users": users,
    }
