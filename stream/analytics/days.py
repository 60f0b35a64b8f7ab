"""Day arithmetic shared by the analytics: UTC day numbers (days since 1970-01-01) and ISO dates."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from stream.fold import MS_PER_DAY, utc_day
from stream.settings import Settings
from stream.store import FlagReads, RedisStore

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def day_of_ms(ms: int) -> int:
    """The UTC day number of an instant."""
    return ms // MS_PER_DAY


def parse_day(text: str) -> int:
    """ "2026-03-04" -> its day number; ValueError on anything else."""
    return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL


def iso_day(number: int) -> str:
    """A day number as "2026-03-04"."""
    return utc_day(number)


def iso_time(ms: int | None) -> str | None:
    """An instant as RFC 3339 UTC with milliseconds, None stays None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def monday_of(number: int) -> int:
    """The day number of the Monday of a day's ISO week (day 0 was a Thursday)."""
    return number - (number + 3) % 7


async def clock_now_ms(store: RedisStore, settings: Settings) -> int:
    """The engine's now: the wall clock, or with ESN_CLOCK=event the highest event time folded."""
    if settings.clock == "wall":
        return int(time.time() * 1000)
    watermarks = await FlagReads(store).event_watermarks()
    return max(watermarks.values(), default=0)
