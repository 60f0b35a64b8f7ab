"""The read models behind the HTTP API, the CLI and the report: one function per question.

Each takes already-parsed parameters; :func:`parse_range` and friends turn raw query strings into
them and raise :class:`BadRequest` naming the parameter, which the API answers with a 400.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream.analytics.communities import all_communities, community_counts
from stream.analytics.content import by_type_per_day, content_days, top_items
from stream.analytics.days import day_of_ms, iso_day, iso_time, parse_day
from stream.analytics.departments import department_figures
from stream.analytics.initiatives import get_initiative, initiative_figures, list_initiatives
from stream.analytics.tiers import tier_counts
from stream.analytics.trends import TREND_METRICS, as_points, trend
from stream.flags.machine import Definitions, threshold_label
from stream.queries import FlaggedUser, flags_of, inactivity_state, with_directory
from stream.settings import Settings
from stream.store import DirectoryStore, FlagReads, RedisStore, UserReads


class BadRequest(ValueError):
    """A parameter the caller got wrong; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


class NotFound(LookupError):
    """The thing asked for does not exist."""


def parse_range(
    settings: Settings, now_ms: int, raw_from: str | None, raw_to: str | None, default_days: int
) -> tuple[int, int]:
    """from/to as day numbers: ISO dates, inclusive, at most the retention apart."""
    last = _day_param("to", raw_to, day_of_ms(now_ms))
    first = _day_param("from", raw_from, last - default_days + 1)
    if first > last:
        raise BadRequest("from", f"{iso_day(first)} is after to={iso_day(last)}")
    if last - first + 1 > settings.analytics_retention_days:
        raise BadRequest(
            "from",
            f"at most {settings.analytics_retention_days} days (ESN_ANALYTICS_RETENTION_DAYS)",
        )
    return first, last


#: Days the API answers for: day numbers before 1970 are negative and an ISO week that ends
#: after 9999-12-31 cannot be written, so both ends are refused as a 400 rather than a 500.
FIRST_DAY = 0
LAST_DAY = parse_day("9999-12-24")


def parse_date(name: str, raw: str | None, default: int) -> int:
    """A date query parameter as a day number within FIRST_DAY..LAST_DAY."""
    return _day_param(name, raw, default)


def _day_param(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return max(FIRST_DAY, default)
    try:
        day = parse_day(raw)
    except ValueError:
        raise BadRequest(name, f"{raw[:40]!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(name, f"must be between {iso_day(FIRST_DAY)} and {iso_day(LAST_DAY)}")
    return day


def parse_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(name, f"{raw[:40]!r} is not an integer") from None
    if not low <= value <= high:
        raise BadRequest(name, f"must be between {low} and {high}")
    return value


def parse_choice(name: str, raw: str | None, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    value = default if raw is None or raw == "" else raw
    if value not in choices:
        raise BadRequest(name, f"{value[:40]!r} is not one of {', '.join(choices)}")
    return value


async def summary(
    store: RedisStore, settings: Settings, definitions: Definitions, now_ms: int
) -> dict[str, Any]:
    """The headline figures now: users, flags, tiers, stickiness, communities, departments."""
    counts = await FlagReads(store).inactivity_counts()
    enabled = counts.get("enabled", 0)
    tiers = await tier_counts(store, now_ms, enabled)
    dau, mau = tiers["1d"]["active"], tiers["30d"]["active"]
    communities = await all_communities(
        store, now_ms, settings.community_window_days * 86_400_000, definitions.thresholds_ms[0]
    )
    return {
        "now": iso_time(now_ms),
        "clock": settings.clock,
        "users": {
            "enabled": enabled,
            "inactive": {
                threshold_label(t): counts.get(f"inactive:{threshold_label(t)}", 0)
                for t in definitions.thresholds_ms
            },
            "never_active": counts.get("never_active", 0),
        },
        "active": {window: row["active"] for window, row in tiers.items()},
        "stickiness": round(dau / mau, 4) if mau else 0.0,
        "tiers": tiers,
        "communities": community_counts(communities),
        "departments": await department_figures(store, settings),
        "min_group_size": settings.min_group_size,
    }


async def trends(
    store: RedisStore, metric: str, first: int, last: int, now_ms: int
) -> dict[str, Any]:
    """One metric's daily series; the day of ``now_ms`` (the engine's clock) marked partial."""
    values = await trend(store, metric, first, last)
    return {
        "metric": metric,
        "definition": TREND_METRICS[metric],
        "from": iso_day(first),
        "to": iso_day(last),
        "points": as_points(first, values, day_of_ms(now_ms)),
    }


async def user_view(
    store: RedisStore, settings: Settings, definitions: Definitions, user_id: str
) -> dict[str, Any]:
    """Everything known about one user: activity, flags, interactions, directory."""
    state = await store.user_state(user_id)
    inactivity = await inactivity_state(store, settings, user_id)
    profile, roles = (await DirectoryStore(store).profiles_and_roles([user_id]))[user_id]
    if state is None and inactivity is None and profile is None:
        raise NotFound(f"user {user_id!r} is not known")
    reads = UserReads(store)
    likes_in, mentions_in = await reads.interactions_received(user_id)
    counts = state.counts if state else {}
    return {
        "user_id": user_id,
        "first_seen": iso_time(state.first_seen_ms) if state else None,
        "last_seen": iso_time(state.last_seen_ms) if state else None,
        "events": sum(counts.values()),
        "counts": counts,
        "likes": {"given": counts.get("like", 0), "received": likes_in},
        "mentions": {"given": counts.get("mention", 0), "received": mentions_in},
        "enabled": inactivity.enabled
        if inactivity
        else (profile.status == "enabled" if profile else None),
        "flags": flags_of(inactivity, definitions) if inactivity else [],
        "department": profile.department if profile else None,
        "created": iso_time(profile.created_ms) if profile else None,
        "communities": roles,
    }


async def inactive_page(
    store: RedisStore, flagged: list[FlaggedUser], offset: int, limit: int
) -> dict[str, Any]:
    """Rows ``offset`` to ``offset + limit`` of a flagged list; the directory is read for those."""
    page = flagged[offset : offset + limit]
    rows = await with_directory(store, page)
    following = offset + len(page)
    return {
        "total": len(flagged),
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < len(flagged) else None,
        "users": [
            {
                "user_id": r.user_id,
                "flags": r.flags,
                "last_seen": iso_time(r.last_seen_ms),
                "created": iso_time(r.created_ms),
                "department": r.department,
                "communities": r.roles,
            }
            for r in rows
        ],
    }


async def communities_view(
    store: RedisStore, settings: Settings, definitions: Definitions, now_ms: int, state: str
) -> dict[str, Any]:
    """Every community's health, optionally only the orphaned or idle ones."""
    rows = await all_communities(
        store, now_ms, settings.community_window_days * 86_400_000, definitions.thresholds_ms[0]
    )
    selected = [
        c
        for c in rows
        if state == "all" or (state == "orphaned" and c.orphaned) or (state == "idle" and c.idle)
    ]
    return {
        "now": iso_time(now_ms),
        "window_days": settings.community_window_days,
        "counts": community_counts(rows),
        "communities": [c.as_json() for c in selected],
    }


async def content_view(store: RedisStore, first: int, last: int) -> dict[str, Any]:
    """Content mix over a range: totals by (type, object type) and per-day series by type."""
    days = await content_days(store, first, last)
    mix = sum(days, Counter[tuple[str, str]]())
    return {
        "from": iso_day(first),
        "to": iso_day(last),
        "by_type_and_object": [
            {"type": t, "object_type": o, "events": n}
            for (t, o), n in sorted(mix.items(), key=lambda item: (-item[1], item[0]))
        ],
        "by_day": by_type_per_day(first, days),
    }


async def top_view(store: RedisStore, period: str, day: int, limit: int) -> dict[str, Any]:
    """Top items of a day or week."""
    return await top_items(store, period, day, limit)


async def initiatives_view(store: RedisStore) -> dict[str, Any]:
    """The stored initiatives."""
    return {
        "initiatives": [
            {"name": i.name, "start": iso_time(i.start_ms), "users": i.users}
            for i in await list_initiatives(store)
        ]
    }


async def initiative_view(
    store: RedisStore, settings: Settings, name: str, now_ms: int
) -> dict[str, Any]:
    """One initiative's figures against everyone else."""
    initiative = await get_initiative(store, name)
    if initiative is None:
        raise NotFound(f"initiative {name!r} is not known")
    return await initiative_figures(store, settings, initiative, now_ms)
