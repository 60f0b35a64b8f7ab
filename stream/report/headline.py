"""The report's headline: who is inactive now, and how the period compares with the one before.

Activity figures come from the daily series; flagged counts at the period's edges come from each
user's flag history (store/release.lua writes it with the flags), which records the first
threshold and never-active only, so the trend covers those two and no other threshold.
"""

from __future__ import annotations

from typing import Any

from stream.analytics.days import iso_day, iso_time
from stream.analytics.initiatives import parse_history
from stream.analytics.trends import trend
from stream.fold import MS_PER_DAY
from stream.settings import Settings
from stream.store import FlagReads, RedisStore

#: Last history code before an instant -> the flag the user held then (r, w: none).
_HELD = {"i": "inactive", "n": "never_active"}


def held_at(history: list[tuple[int, str]], at_ms: int) -> str | None:
    """The flag ("inactive" at the first threshold or "never_active") held at ``at_ms``, if any."""
    held = None
    for when, code in history:
        if when > at_ms:
            break
        held = _HELD.get(code)
    return held


def flagged_counts(histories: dict[str, list[tuple[int, str]]], at_ms: int) -> dict[str, int]:
    """Users holding each history flag at ``at_ms`` (pure)."""
    counts = {"inactive": 0, "never_active": 0}
    for history in histories.values():
        flag = held_at(history, at_ms)
        if flag is not None:
            counts[flag] += 1
    return counts


async def flag_histories(store: RedisStore, settings: Settings) -> dict[str, list[tuple[int, str]]]:
    """Every user's flag history, parsed."""
    stored = await FlagReads(store).flag_histories()
    return {user: parse_history(raw) for user, raw in stored.items()}


def change(now: float, before: float) -> dict[str, Any]:
    """A figure against its previous value: the delta and, when defined, the relative change."""
    delta = now - before
    return {
        "now": now,
        "before": before,
        "delta": round(delta, 4),
        "ratio": round(delta / before, 4) if before else None,
    }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


async def headline(
    store: RedisStore, settings: Settings, first: int, last: int, now_ms: int
) -> dict[str, Any]:
    """This period against the previous one of the same length, ending the day before ``first``."""
    length = last - first + 1
    before_first, before_last = first - length, first - 1
    dau = await trend(store, "dau", before_first, last)
    mau = await trend(store, "mau", before_first, last)
    events = await trend(store, "events", before_first, last)
    histories = await flag_histories(store, settings)
    start_ms = first * MS_PER_DAY
    end_ms = min((last + 1) * MS_PER_DAY - 1, now_ms)
    at_start, at_end = flagged_counts(histories, start_ms), flagged_counts(histories, end_ms)
    return {
        "previous": {"from": iso_day(before_first), "to": iso_day(before_last)},
        "start": iso_time(start_ms),
        "end": iso_time(end_ms),
        "average_dau": change(_mean(dau[length:]), _mean(dau[:length])),
        "mau_at_end": change(mau[-1], mau[length - 1]),
        "events": change(sum(events[length:]), sum(events[:length])),
        "inactive_first_threshold": change(at_end["inactive"], at_start["inactive"]),
        "never_active": change(at_end["never_active"], at_start["never_active"]),
    }
