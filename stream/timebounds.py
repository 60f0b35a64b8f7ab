"""The window of event times the gate believes: from a floor to the wall clock plus a skew.

An event outside it is a producer bug (a zero date, a unit mix-up, a clock years ahead), and
believing it would pin a user as active for years or, under the event clock, move a partition's
"now" into the future and flag everybody else on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from stream.events import InvalidEvent, epoch_ms

DEFAULT_MIN_EVENT_TIME: Final = "2000-01-01T00:00:00Z"
DEFAULT_MAX_FUTURE_SKEW: Final = "5m"
_UNITS_MS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000}


def parse_duration_ms(text: str) -> int:
    """'30d', '12h', '45m', '90s' -> milliseconds (positive, whole units)."""
    value, unit = text.strip()[:-1], text.strip()[-1:]
    if unit not in _UNITS_MS or not value.isdigit() or int(value) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 45m, 90s)")
    return int(value) * _UNITS_MS[unit]


def parse_instant_ms(text: str) -> int:
    """An RFC 3339 date-time with its offset -> epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        hint = "use e.g. 2000-01-01T00:00:00Z"
        raise ValueError(f"not an RFC 3339 time: {text!r} ({hint})") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +01:00)")
    return epoch_ms(moment)


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Earliest and latest event time (epoch ms, inclusive) accepted at one moment."""

    earliest_ms: int
    latest_ms: int

    @classmethod
    def at(
        cls,
        now_ms: int | None = None,
        min_event_time: str = DEFAULT_MIN_EVENT_TIME,
        max_future_skew: str = DEFAULT_MAX_FUTURE_SKEW,
    ) -> TimeBounds:
        """The window at ``now_ms`` (default: the wall clock), whatever clock the engine runs on."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(parse_instant_ms(min_event_time), now + parse_duration_ms(max_future_skew))

    def check(self, time_ms: int, text: object) -> None:
        """Raise ``bad_time`` for a time outside the window."""
        if time_ms < self.earliest_ms:
            raise InvalidEvent("bad_time", f"time {text!r} is before the floor ESN_MIN_EVENT_TIME")
        if time_ms > self.latest_ms:
            raise InvalidEvent(
                "bad_time", f"time {text!r} is later than now plus ESN_MAX_FUTURE_SKEW"
            )
