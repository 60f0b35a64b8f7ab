"""Pure folding of one partition's batch of activity into per-user, per-day and total deltas.

No I/O here: the store applies a :class:`PartitionDelta` atomically together with the offset fence,
so this module decides *what* changes and the store decides *whether* it is applied.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from stream.events import CONTRIBUTING_TYPES, PARTICIPATING_TYPES, Activity

MS_PER_DAY = 86_400_000
#: Ids with control characters cannot travel in fold.lua's line format; the contract lets object,
#: community and target ids hold anything, so such rare ids are left out of the per-id analytics
#: (their events still count everywhere else).
_RECEIVED = ("like", "mention")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class UserDelta:
    """What one batch says about one user."""

    first_ms: int
    last_ms: int
    #: A plain dict, not a Counter: this is built once per user per batch, on the hot path.
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class PartitionDelta:
    """Everything a batch of records from one partition changes; ``last_offset`` is the fence."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    users: dict[str, UserDelta] = field(default_factory=dict)
    #: UTC day ("2026-03-04") -> user active that day (event types that count as activity) ->
    #: minute of the day of their first such event in this batch.
    day_actives: dict[str, dict[str, int]] = field(default_factory=dict)
    #: ("p" participating or "c" contributing, UTC day) -> users on that rung of the ladder.
    day_tiers: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: tier ("a", "p", "c") -> user -> time of their last event of that tier in this batch.
    tier_last: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"a": {}, "p": {}, "c": {}}
    )
    #: (UTC day, "type|object_type") -> events: the content mix over time.
    day_content: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (UTC day, "object_type:object_id") -> interactions with that item.
    day_objects: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: user -> [likes received, mentions received] (the target_user of like and mention events).
    received: dict[str, list[int]] = field(default_factory=dict)
    #: community -> [last event time ms, events] of the events that name the community.
    communities: dict[str, list[int]] = field(default_factory=dict)
    #: (type, object_type) -> events.
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Raw names of types folded as "other", so an operator can see what a source sends.
    unknown_types: Counter[str] = field(default_factory=Counter)
    events: int = 0
    max_event_ms: int | None = None
    #: (event time, user) of the events that count as activity, for the inactivity engine.
    activity_times: set[tuple[int, str]] = field(default_factory=set)
    #: Event types that count as activity; None: all of them.
    counting_types: frozenset[str] | None = None
    #: The compiled core's batch (stream.native) when it folded this one: it then holds the
    #: per-user, per-day and per-item fields (left empty here) and writes fold.lua's payload;
    #: ``events``, ``max_event_ms`` and ``totals`` are kept here too, for the worker's counters.
    native: Any = None

    def add(self, activity: Activity) -> None:
        """Fold one valid activity into the delta."""
        if self.native is not None:
            self._add_to_native(activity)
            return
        t = activity.time_ms
        # What can raise comes before the first change, so a failure leaves the delta as it was.
        day = utc_day(t // MS_PER_DAY)
        user = self.users.get(activity.actor)
        if user is None:
            user = self.users[activity.actor] = UserDelta(first_ms=t, last_ms=t)
        else:
            # Event time, not arrival order: a late event can only widen the range.
            if t < user.first_ms:
                user.first_ms = t
            if t > user.last_ms:
                user.last_ms = t
        counts = user.counts
        counts[activity.type] = counts.get(activity.type, 0) + 1
        counts_as_activity = self.counting_types is None or activity.raw_type in self.counting_types
        if counts_as_activity:
            actives = self.day_actives.get(day)
            if actives is None:
                actives = self.day_actives[day] = {}
            minute = t % MS_PER_DAY // 60_000
            first_minute = actives.get(activity.actor)
            if first_minute is None or minute < first_minute:
                actives[activity.actor] = minute
            self._seen_in_tier("a", activity.actor, t)
            self.activity_times.add((t, activity.actor))
        kind = activity.type
        if kind in PARTICIPATING_TYPES or kind in CONTRIBUTING_TYPES:
            self._add_tier("p", day, activity.actor)
            self._seen_in_tier("p", activity.actor, t)
            if kind in CONTRIBUTING_TYPES:
                self._add_tier("c", day, activity.actor)
                self._seen_in_tier("c", activity.actor, t)
        mix = f"{kind}|{activity.object_type}"
        self.totals[kind, activity.object_type] += 1
        self.day_content[day, mix] += 1
        if activity.type != activity.raw_type:
            self.unknown_types[activity.raw_type] += 1
        if activity.object_key is not None and not _CONTROL.search(activity.object_key):
            self.day_objects[day, activity.object_key] += 1
        target = activity.target_user
        if target is not None and kind in _RECEIVED and not _CONTROL.search(target):
            got = self.received.get(target)
            if got is None:
                got = self.received[target] = [0, 0]
            got[0 if kind == "like" else 1] += 1
        community = activity.community
        if community is not None and not _CONTROL.search(community):
            named = self.communities.get(community)
            if named is None:
                self.communities[community] = [t, 1]
            else:
                named[1] += 1
                if t > named[0]:
                    named[0] = t
        self.events += 1
        if self.max_event_ms is None or t > self.max_event_ms:
            self.max_event_ms = t

    def _add_to_native(self, activity: Activity) -> None:
        """What :meth:`add` folds, handed to the compiled core's batch (same rules)."""
        object_key, target, community = (
            activity.object_key,
            activity.target_user,
            activity.community,
        )
        self.native.add(
            activity.time_ms,
            activity.type,
            activity.raw_type,
            activity.object_type,
            activity.actor,
            target if target is not None and not _CONTROL.search(target) else None,
            object_key if object_key is not None and not _CONTROL.search(object_key) else None,
            community if community is not None and not _CONTROL.search(community) else None,
            self.counting_types is None or activity.raw_type in self.counting_types,
        )
        self.totals[activity.type, activity.object_type] += 1
        self.events += 1
        if self.max_event_ms is None or activity.time_ms > self.max_event_ms:
            self.max_event_ms = activity.time_ms

    def _seen_in_tier(self, tier: str, user: str, t: int) -> None:
        last = self.tier_last[tier]
        held = last.get(user)
        if held is None or t > held:
            last[user] = t

    def _add_tier(self, tier: str, day: str, user: str) -> None:
        members = self.day_tiers.get((tier, day))
        if members is None:
            members = self.day_tiers[tier, day] = set()
        members.add(user)

    def skip_through(self, offset: int) -> None:
        """Record that offsets up to ``offset`` are covered (also invalid records)."""
        if offset > self.last_offset:
            self.last_offset = offset


@lru_cache(maxsize=4096)
def utc_day(day_number: int) -> str:
    """Days since the epoch -> ISO date; cached because a batch spans few days."""
    return datetime.fromtimestamp(day_number * 86_400, tz=UTC).date().isoformat()
