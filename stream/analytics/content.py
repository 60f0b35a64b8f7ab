"""Content analytics: interactions by event and object type over time, and the top items.

Top items come from a bounded list per partition and day (twice the partition's share of
ESN_TOP_ITEMS_CAPACITY, see fold.lua), summed over partitions; a week is the sum of its days.
While no partition-day of the period held more distinct items than that, the counts are exact
("exact": true). Past it, the least counted items were dropped: a listed count is never above the
truth and is short by at most "error_bound" (the sum of the partition-days' highest dropped
counts) unless the item was dropped more than once in one partition-day.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream.analytics.days import iso_day, monday_of
from stream.store import AnalyticsReads, RedisStore


async def content_days(
    store: RedisStore, first_day: int, last_day: int
) -> list[Counter[tuple[str, str]]]:
    """Per day from first to last: (event type, object type) -> events, in one round trip."""
    days = range(first_day, last_day + 1)
    mix = await AnalyticsReads(store).content_mix(days)
    return [mix[day] for day in days]


def by_type_per_day(first_day: int, days: list[Counter[tuple[str, str]]]) -> list[dict[str, Any]]:
    """[{"date", "counts": event type -> events}] of the days read by :func:`content_days`."""
    out = []
    for index, mix in enumerate(days):
        counts: Counter[str] = Counter()
        for (event_type, _), count in mix.items():
            counts[event_type] += count
        out.append({"date": iso_day(first_day + index), "counts": dict(sorted(counts.items()))})
    return out


async def top_items(store: RedisStore, period: str, day: int, limit: int) -> dict[str, Any]:
    """The ``limit`` most-interacted-with items of the day (period "day") or its ISO week."""
    if period == "day":
        first = last = day
    else:
        first = monday_of(day)
        last = first + 6
    # A week is the sum of its days.
    top = await AnalyticsReads(store).top_items(range(first, last + 1), limit)
    items = []
    for item, interactions in top.ranked:
        object_type, _, object_id = item.partition(":")
        items.append(
            {
                "item": item,
                "object_type": object_type,
                "id": object_id,
                "interactions": interactions,
            }
        )
    bound = top.error_bound
    return {
        "period": period,
        "from": iso_day(first),
        "to": iso_day(last),
        "exact": bound == 0,
        "error_bound": bound,
        "items": items,
    }
