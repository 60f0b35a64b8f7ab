"""The engagement ladder now: registered, active, participating, contributing, per window.

Windows are whole UTC days ending with the day of the clock's now (1d is that day). Counts are
exact and cheap: the fold keeps, per tier, a sorted set of each user's last event time (ZADD GT),
so the users of a window are one ZCOUNT from the window's first instant. (A union of the per-day
sets gave the same figure, but blocked Redis for tens of milliseconds per window.)
"""

from __future__ import annotations

from typing import Final

from stream.analytics.days import day_of_ms
from stream.fold import MS_PER_DAY
from stream.store import AnalyticsReads, RedisStore

TIERS: Final = ("registered", "active", "participating", "contributing")
#: The tiers with per-day sets, by their key letter.
_SET_TIERS: Final = {"active": "a", "participating": "p", "contributing": "c"}
WINDOWS: Final = {"1d": 1, "7d": 7, "30d": 30}


async def tier_users(store: RedisStore, tier: str, now_ms: int, days: int) -> int:
    """Users on a rung of the ladder in the ``days`` UTC days ending with now's day."""
    if now_ms <= 0:
        return 0
    first_ms = (day_of_ms(now_ms) - days + 1) * MS_PER_DAY
    return await AnalyticsReads(store).window_users(_SET_TIERS[tier], first_ms)


async def tier_counts(store: RedisStore, now_ms: int, enabled: int) -> dict[str, dict[str, int]]:
    """window -> tier -> users; "registered" is the enabled profiles (the same in every window)."""
    out: dict[str, dict[str, int]] = {}
    for window, days in WINDOWS.items():
        row = {"registered": enabled}
        for tier in _SET_TIERS:
            row[tier] = await tier_users(store, tier, now_ms, days)
        out[window] = row
    return out
