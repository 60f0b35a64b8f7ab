"""Daily series of engagement figures over the retention (default 400 days).

Per-day figures are exact: counters built from the new bits of the per-day bitmaps (BITFIELD SET
returns the old bit), so they outlive the bitmaps. Windows (WAU, MAU) merge the days'
HyperLogLogs: Redis's HLL has a standard error of 0.81%, so a trend point is within about 2.5% of
the truth 99% of the time.
"""

from __future__ import annotations

from typing import Final

from stream.analytics.days import iso_day
from stream.store import AnalyticsReads, RedisStore

#: metric -> what it is (the API's enum and docs/reference/analytics.md).
TREND_METRICS: Final = {
    "dau": "Users active that UTC day (exact).",
    "wau": "Users active in the 7 days ending that day (HyperLogLog, 0.81% standard error).",
    "mau": "Users active in the 30 days ending that day (HyperLogLog).",
    "mau28": "Users active in the 28 days ending that day (HyperLogLog).",
    "stickiness": "dau / mau of that day (0 when mau is 0).",
    "new": "Users whose first event ever was that day (exact).",
    "returning": "Active users that day whose first event was earlier: dau - new (exact).",
    "participating": "Users who liked, commented, followed, joined, mentioned, shared or "
    "created content that day (exact).",
    "contributing": "Users who posted, uploaded or edited content that day (exact).",
    "events": "Valid activity events that day, all types (exact).",
}
_EXACT_COUNTERS: Final = {"dau": "a", "new": "n", "participating": "p", "contributing": "c"}
_WINDOWS: Final = {"wau": 7, "mau": 30, "mau28": 28}


async def daily_counter(store: RedisStore, name: str, days: range) -> list[int]:
    """Values of an exact daily counter ("a", "p", "c", "n") for each day number."""
    counts = await AnalyticsReads(store).daily_counts(name, days)
    return [counts[day] for day in days]


async def window_counts(store: RedisStore, tier: str, days: range, window: int) -> list[int]:
    """Distinct users of a tier in the ``window`` days ending with each day (HLL union)."""
    counts = await AnalyticsReads(store).window_distinct(tier, days, window)
    return [counts[day] for day in days]


async def daily_events(store: RedisStore, days: range) -> list[int]:
    """Events per day, summed over the content mix."""
    counts = await AnalyticsReads(store).daily_events(days)
    return [counts[day] for day in days]


async def trend(store: RedisStore, metric: str, first_day: int, last_day: int) -> list[float]:
    """The metric's value for each day number from ``first_day`` to ``last_day`` inclusive."""
    days = range(first_day, last_day + 1)
    if metric in _EXACT_COUNTERS:
        return [float(v) for v in await daily_counter(store, _EXACT_COUNTERS[metric], days)]
    if metric in _WINDOWS:
        return [float(v) for v in await window_counts(store, "a", days, _WINDOWS[metric])]
    if metric == "returning":
        active = await daily_counter(store, "a", days)
        new = await daily_counter(store, "n", days)
        # new counts a user's first event of any type; with ESN_ACTIVITY_TYPES narrowed that
        # event may not count as activity, hence the floor.
        return [float(max(0, a - n)) for a, n in zip(active, new, strict=True)]
    if metric == "stickiness":
        active = await daily_counter(store, "a", days)
        monthly = await window_counts(store, "a", days, 30)
        return [round(a / m, 4) if m else 0.0 for a, m in zip(active, monthly, strict=True)]
    if metric == "events":
        return [float(v) for v in await daily_events(store, days)]
    raise ValueError(f"unknown metric {metric!r}")


def as_points(first_day: int, values: list[float], today: int) -> list[dict[str, object]]:
    """[{"date": "2026-03-04", "value": 12, "partial": false}, ...]: ``today`` (the engine's
    clock's UTC day) is partial, its figures still growing; a day after it has no data yet."""
    return [
        {
            "date": iso_day(first_day + i),
            "value": int(v) if float(v).is_integer() else v,
            "partial": first_day + i >= today,
        }
        for i, v in enumerate(values)
    ]
