"""A partition's fold as one fold.lua call: its declared KEYS and one JSON payload (layout 4).

The payload is decoded by cjson inside Redis (C), so neither side parses text lines; its shape is
documented at the top of fold.lua, which checks every value before its first write.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from stream import jsonutil
from stream.events import COUNTED_TYPES
from stream.fold import MS_PER_DAY, PartitionDelta
from stream.store.keys import PartitionKeys

#: 1-based slot of each counted type in a user record (see fold.lua).
SLOT = {name: index + 1 for index, name in enumerate(COUNTED_TYPES)}
_SLOTS_JSON = jsonutil.dumps(SLOT).decode()
#: A backfill writes days older than their retention; their keys live this long after the last
#: write so that the exact daily counters (built on the bitmaps' old bits) stay exact meanwhile.
BACKFILL_GRACE_S = 2 * 86_400
#: The longest tier window the analytics read from the day bitmaps (stream/analytics/tiers.py's
#: 30d), plus the day it ends with: bitmaps are kept at least this long whatever
#: ESN_DAILY_ACTIVE_RETENTION_DAYS says.
TIER_WINDOW_DAYS = 31
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class FoldPlan:
    """What a fold call needs besides the delta: buckets, retentions, the top items kept."""

    user_buckets: int
    retention_days: int
    analytics_retention_days: int
    #: Items a partition keeps a day (see :func:`top_items_per_partition`).
    top_items_capacity: int


def top_items_per_partition(capacity: int, partitions: int) -> int:
    """Items each partition keeps a day: twice its share of ESN_TOP_ITEMS_CAPACITY.

    The organisation's ranking sums the partitions' lists; an item's interactions are spread
    over the partitions of the people who interact with it, so a partition holding twice its
    share of the capacity keeps every item that ranks in the top ``capacity`` with room to
    spare, and what it drops is still bounded (the highest count dropped, kept with the list).
    """
    return max(1, min(capacity, math.ceil(2 * capacity / max(1, partitions))))


@lru_cache(maxsize=4096)
def day_number(iso_day: str) -> int:
    """Days since the epoch of an ISO date."""
    return date.fromisoformat(iso_day).toordinal() - _EPOCH_ORDINAL


@lru_cache(maxsize=4096)
def iso_of(number: int) -> str:
    """The ISO date of a day number (days since the epoch)."""
    return date.fromordinal(number + _EPOCH_ORDINAL).isoformat()


def expire_at(number: int, retention_days: int) -> int:
    """Epoch seconds when data of a day expires: the end of that day plus the retention."""
    return (number + 1 + retention_days) * (MS_PER_DAY // 1000)


def fold_call(
    delta: PartitionDelta, k: PartitionKeys, plan: FoldPlan, now_s: int
) -> tuple[list[str], list[Any]]:
    """fold.lua's KEYS and ARGV (without the expected fence, which the caller appends)."""
    buckets = plan.user_buckets
    floor = now_s + BACKFILL_GRACE_S
    fixed = [
        k.fence(delta.topic),
        k.totals,
        k.unknown_types,
        k.reorder_buffer,
        k.watermark_source,
        k.community_activity,
        k.user_index,
        k.community_people,
        k.community_active_people,
        k.community_active_owners,
        k.community_active,
    ]
    if delta.native is not None:
        # The compiled core's batch writes the same payload as below, without a Python object
        # per event (tests/unit/test_native_fold.py holds the two to the same payload).
        touched_keys, payload = delta.native.payload(
            k,
            buckets,
            floor,
            max(plan.retention_days, TIER_WINDOW_DAYS),
            plan.analytics_retention_days,
            plan.top_items_capacity,
            _SLOTS_JSON,
        )
        return fixed + touched_keys, [delta.first_offset, delta.last_offset, payload]
    # A dict keeps the declared keys unique and in a stable order.
    touched: dict[str, None] = {}

    # The per-user and per-event work here runs in the worker's one Python thread: plain loops
    # over dicts, C-level map() where a loop would only look things up, no tuple per event.
    by_bucket: dict[int, list[Any]] = {}
    for user_id, user in delta.users.items():
        group = by_bucket.get(bucket := zlib.crc32(user_id.encode()) % buckets)
        if group is None:
            group = by_bucket[bucket] = [k.user_bucket(bucket)]
        # Counts go by type name (a JSON object); fold.lua maps names to record slots.
        group += (user_id, user.first_ms, user.last_ms, user.counts)
    users_part = list(by_bucket.values())
    touched.update(dict.fromkeys(group[0] for group in users_part))
    # Users are numbered in the order fold.lua meets them: bucket by bucket.
    position = {
        user_id: number
        for number, user_id in enumerate(
            (user_id for group in users_part for user_id in group[1::4]), start=1
        )
    }
    if users_part:
        touched[k.stats("n")] = None

    bitmap_days = max(plan.retention_days, TIER_WINDOW_DAYS)
    tiers_part: list[list[Any]] = []
    for day, actives in delta.day_actives.items():
        number = day_number(day)
        bitmap, hll = k.tier_day("a", day), k.tier_hll("a", number)
        progression, spill = k.day_progression(number), k.day_progression_spill(number)
        touched.update(dict.fromkeys((bitmap, k.stats("a"), hll, progression, spill)))
        tiers_part.append(
            [
                "a",
                number,
                bitmap,
                k.stats("a"),
                max(floor, expire_at(number, bitmap_days)),
                hll,
                max(floor, expire_at(number, plan.analytics_retention_days)),
                progression,
                spill,
                list(map(position.__getitem__, actives)),
                list(actives.values()),
            ]
        )
    for (tier, day), members in delta.day_tiers.items():
        number = day_number(day)
        bitmap = k.tier_day(tier, day)
        touched[bitmap] = None
        touched[k.stats(tier)] = None
        tiers_part.append(
            [
                tier,
                number,
                bitmap,
                k.stats(tier),
                max(floor, expire_at(number, bitmap_days)),
                "",
                0,
                "",
                "",
                list(map(position.__getitem__, members)),
                [],
            ]
        )

    def analytics_expire_at(number: int) -> int:
        return max(floor, expire_at(number, plan.analytics_retention_days))

    content: dict[int, list[Any]] = {}
    for (day, mix), count in delta.day_content.items():
        content.setdefault(day_number(day), []).extend((mix, count))
    content_part = []
    for number, fields in content.items():
        touched[k.content(number)] = None
        content_part.append([k.content(number), analytics_expire_at(number), fields])
    # Weeks are the union of their days' lists, taken when asked (half the writes).
    top: dict[int, list[Any]] = {}
    for (day, item), count in delta.day_objects.items():
        top.setdefault(day_number(day), []).extend((item, count))
    top_part = []
    for number, items in top.items():
        touched[k.top_items("d", number)] = None
        top_part.append([k.top_items("d", number), analytics_expire_at(number), items])

    received: dict[str, list[Any]] = {}
    for receiver, (likes, mentions) in delta.received.items():
        key = k.received(zlib.crc32(receiver.encode()) % buckets)
        got = received.get(key)
        if got is None:
            got = received[key] = [key]
            touched[key] = None
        got += (receiver, likes, mentions)

    payload = {
        "n": k.stats("n"),
        "u": users_part,
        "t": tiers_part,
        "m": content_part,
        "o": top_part,
        "cap": plan.top_items_capacity,
        "slots": SLOT,
        "r": list(received.values()),
        "c": [x for name, pair in delta.communities.items() for x in (name, *pair)],
        # The reorder buffer's members whole, "time\tuser": fold.lua takes each score from the
        # member's digits (formatting times and joining users in Lua cost it more than the ZADD).
        "b": [f"{t}\t{user}" for t, user in delta.activity_times],
        "w": -1 if delta.max_event_ms is None else delta.max_event_ms,
        "tot": [x for (t, o), c in delta.totals.items() for x in (f"{t}|{o}", c)],
        "unk": [x for pair in delta.unknown_types.items() for x in pair],
    }
    args: list[Any] = [delta.first_offset, delta.last_offset, jsonutil.dumps(payload)]
    return fixed + list(touched), args
