"""Content analytics: interactions by event and object type over time, and the top items.

Top items come from a bounded sorted set per day (ESN_TOP_ITEMS_CAPACITY items, see fold.lua); a
week is the sum of its days. While no day of the period touched more distinct items than that, the
counts are exact ("exact": true). Past it, the least counted items were dropped: a listed count may
be short by at most "error_bound" (the sum of the days' highest dropped counts), and any item with
more interactions than that bound in a day is never dropped that day.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream.analytics.days import iso_day, monday_of
from stream.store import RedisStore
from stream.store.redis_store import text


async def content_days(
    store: RedisStore, first_day: int, last_day: int
) -> list[Counter[tuple[str, str]]]:
    """Per day from first to last: (event type, object type) -> events, in one round trip."""
    async with store.client.pipeline(transaction=False) as pipe:
        for day in range(first_day, last_day + 1):
            pipe.hgetall(store.keys.content(day))
        replies = await pipe.execute()
    days = []
    for mix in replies:
        counts: Counter[tuple[str, str]] = Counter()
        for field, count in mix.items():
            event_type, _, object_type = text(field).partition("|")
            counts[event_type, object_type] += int(count)
        days.append(counts)
    return days


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
    keys = [store.keys.top_items("d", d) for d in range(first, last + 1)]
    async with store.client.pipeline(transaction=False) as pipe:
        # Whole sketches (at most ESN_TOP_ITEMS_CAPACITY items a day): ties at the cut are then
        # broken by item, independently of Redis's order among equal scores. A week is the sum
        # of its days.
        pipe.zunion(keys, withscores=True)
        pipe.mget([key + ":evicted" for key in keys])
        ranked, evicted = await pipe.execute()
    counted = sorted((-int(score), text(member)) for member, score in ranked)[:limit]
    items = []
    for negative, item in counted:
        object_type, _, object_id = item.partition(":")
        items.append(
            {"item": item, "object_type": object_type, "id": object_id, "interactions": -negative}
        )
    bound = sum(int(b) for b in evicted if b is not None)
    return {
        "period": period,
        "from": iso_day(first),
        "to": iso_day(last),
        "exact": bound == 0,
        "error_bound": bound,
        "items": items,
    }
