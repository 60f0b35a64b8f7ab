"""The engagement ladder now: registered, active, participating, contributing, per window.

Windows are whole UTC days ending with the day of the clock's now (1d is that day). Counts are
exact and cheap: the fold keeps, per tier and day, a bitmap of the users by their dense index, so
the users of every window are the OR of its days' bitmaps, counted, read once per tier (a union
of per-day sets gave the same figure, but blocked Redis for tens of milliseconds per window).
"""

from __future__ import annotations

from typing import Final

from stream.analytics.days import day_of_ms
from stream.store import AnalyticsReads, RedisStore

TIERS: Final = ("registered", "active", "participating", "contributing")
#: The tiers with per-day bitmaps, by their key letter.
_SET_TIERS: Final = {"active": "a", "participating": "p", "contributing": "c"}
WINDOWS: Final = {"1d": 1, "7d": 7, "30d": 30}


async def tier_users(store: RedisStore, tier: str, now_ms: int, days: int) -> int:
    """Users on a rung of the ladder in the ``days`` UTC days ending with now's day."""
    if now_ms <= 0:
        return 0
    reads = AnalyticsReads(store)
    return (await reads.window_users(_SET_TIERS[tier], day_of_ms(now_ms), [days]))[days]


async def tier_counts(store: RedisStore, now_ms: int, enabled: int) -> dict[str, dict[str, int]]:
    """window -> tier -> users; "registered" is the enabled profiles (the same in every window)."""
    out: dict[str, dict[str, int]] = {
        window: {"registered": enabled} | dict.fromkeys(_SET_TIERS, 0) for window in WINDOWS
    }
    if now_ms <= 0:
        return out
    reads = AnalyticsReads(store)
    for tier, letter in _SET_TIERS.items():
        users = await reads.window_users(letter, day_of_ms(now_ms), list(WINDOWS.values()))
        for window, days in WINDOWS.items():
            out[window][tier] = users[days]
    return out
