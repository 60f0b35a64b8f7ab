"""The engagement ladder now: registered, active, participating, contributing, per window.

Windows are whole UTC days ending with the day of the clock's now (1d is that day). Counts are
exact: the union of the per-day sets, taken inside Redis (SUNIONSTORE) so no member crosses the
wire; the sets are kept ESN_DAILY_ACTIVE_RETENTION_DAYS (35) days, longer than any window here.
"""

from __future__ import annotations

from typing import Final

from stream.analytics.days import day_of_ms, iso_day
from stream.store import RedisStore

TIERS: Final = ("registered", "active", "participating", "contributing")
#: The tiers with per-day sets, by their key letter.
_SET_TIERS: Final = {"active": "a", "participating": "p", "contributing": "c"}
WINDOWS: Final = {"1d": 1, "7d": 7, "30d": 30}


async def union_size(store: RedisStore, keys: list[str]) -> int:
    """Distinct members of several sets, counted inside Redis."""
    if len(keys) == 1:
        return int(await store.client.scard(keys[0]))
    scratch = f"{store.keys.prefix}tmp:union"
    async with store.client.pipeline(transaction=True) as pipe:
        pipe.sunionstore(scratch, keys)
        pipe.delete(scratch)
        size, _ = await pipe.execute()
    return int(size)


async def tier_users(store: RedisStore, tier: str, now_ms: int, days: int) -> int:
    """Users on a rung of the ladder in the ``days`` UTC days ending with now's day."""
    if now_ms <= 0:
        return 0
    last = day_of_ms(now_ms)
    letter = _SET_TIERS[tier]
    keys = [store.keys.tier_day(letter, iso_day(d)) for d in range(last - days + 1, last + 1)]
    return await union_size(store, keys)


async def tier_counts(store: RedisStore, now_ms: int, enabled: int) -> dict[str, dict[str, int]]:
    """window -> tier -> users; "registered" is the enabled profiles (the same in every window)."""
    out: dict[str, dict[str, int]] = {}
    for window, days in WINDOWS.items():
        row = {"registered": enabled}
        for tier in _SET_TIERS:
            row[tier] = await tier_users(store, tier, now_ms, days)
        out[window] = row
    return out
