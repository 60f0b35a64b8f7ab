"""Redis memory of a deployment, split by what it grows with: users, user-days, days, or traffic.

The split is by key name (the part after the prefix and any hash tag), so it holds for the
single-slot layout (``esn:day:2026-01-05``) and the per-partition one (``esn:{p3}:day:2026-01-05``)
alike. Every byte comes from the servers (MEMORY USAGE); only the attribution is ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Sets with one member per user active that day: they grow with user-days.
USER_DAY_KINDS = frozenset({"day", "tday"})
#: Per-day aggregates whose size is bounded per day (HyperLogLogs, content mix, top items,
#: daily counters and progression, flag minutes): they grow with the days retained.
PER_DAY_KINDS = frozenset({"hll", "content", "top", "stats", "flagmin"})
#: Work in flight: the reorder buffer (held back by the bench, drained by the sweep within the
#: allowed lateness) and flag records waiting for the publisher.
TRANSIENT_KINDS = frozenset({"buf", "outbox"})

_HASH_TAG = re.compile(r"^\{[^}]*\}:?")


def key_kind(key: str, prefix: str) -> str:
    """The key's name kind: its first segment after ``prefix`` and a leading hash tag."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    rest = _HASH_TAG.sub("", rest, count=1)
    return rest.split(":", 1)[0]


def category_of(kind: str) -> str:
    """ "user-day", "per-day", "transient" or "per-user" (everything else, constants included)."""
    if kind in USER_DAY_KINDS:
        return "user-day"
    if kind in PER_DAY_KINDS:
        return "per-day"
    if kind in TRANSIENT_KINDS:
        return "transient"
    return "per-user"


@dataclass(frozen=True)
class MemoryFigures:
    """A deployment's Redis memory after folding an input, and the input's sizes."""

    #: INFO memory used_memory after minus before, summed over the masters.
    used_memory_delta: int
    #: MEMORY USAGE summed over the deployment's keys, per category.
    by_category: Mapping[str, int]
    keys: int
    users: int
    user_days: int
    days: int
    events: int

    @property
    def key_bytes(self) -> int:
        """MEMORY USAGE of every key of the deployment."""
        return sum(self.by_category.values())

    @property
    def per_user(self) -> float:
        """Bytes per user of what grows with users (records, last-seen, states, memberships)."""
        return self.by_category.get("per-user", 0) / max(self.users, 1)

    @property
    def per_user_day(self) -> float:
        """Bytes per (user, active day) pair of the daily sets."""
        return self.by_category.get("user-day", 0) / max(self.user_days, 1)

    @property
    def per_day(self) -> float:
        """Bytes per day of input of the bounded per-day aggregates."""
        return self.by_category.get("per-day", 0) / max(self.days, 1)

    @property
    def transient_per_event(self) -> float:
        """Bytes per input event of the reorder buffer and outboxes (all held back here)."""
        return self.by_category.get("transient", 0) / max(self.events, 1)

    @property
    def all_per_user(self) -> float:
        """Every key's bytes over the users: the crude figure."""
        return self.key_bytes / max(self.users, 1)

    @property
    def used_per_user(self) -> float:
        """used_memory's growth over the users (allocator overhead and dict tables included)."""
        return self.used_memory_delta / max(self.users, 1)


def memory_figures(
    usage: Mapping[str, int],
    prefix: str,
    used_before: int,
    used_after: int,
    users: int,
    user_days: int,
    days: int,
    events: int,
) -> MemoryFigures:
    """Sum ``usage`` (key -> MEMORY USAGE bytes) per category and hold the input's sizes."""
    by_category = dict.fromkeys(("per-user", "user-day", "per-day", "transient"), 0)
    for key, size in usage.items():
        by_category[category_of(key_kind(key, prefix))] += size
    return MemoryFigures(
        used_after - used_before, by_category, len(usage), users, user_days, days, events
    )
