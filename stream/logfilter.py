"""Client libraries repeat one error per connection attempt; a log keeps the first of each.

During a broker outage aiokafka and Faust log the same failure several times a second (6,071
ERROR lines in a 56 s outage before this filter); an operator needs one line saying it started,
and a count when it is said again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Loggers whose repeats are folded: the clients', not ours (ours already back off).
_LIBRARIES = ("aiokafka", "faust", "mode", "kafka")


class RepeatFilter(logging.Filter):
    """Pass a library's message once per window; the next one passed says how many were held."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        #: (logger, message template) -> (when last passed, repeats held since).
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside the window."""
        if record.levelno < logging.WARNING or not record.name.startswith(_LIBRARIES):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        passed = self._seen.get(key)
        if passed is not None and now - passed[0] < self.window_s:
            self._seen[key] = (passed[0], passed[1] + 1)
            return False
        if passed is not None and passed[1]:
            record.msg = (
                f"{record.msg} (repeated {passed[1]} times in the last {self.window_s:.0f} s)"
            )
        self._seen[key] = (now, 0)
        if len(self._seen) > 1000:  # bounded: templates, not values, are the keys
            self._seen.clear()
        return True


def fold_library_repeats() -> None:
    """Add one RepeatFilter to every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
