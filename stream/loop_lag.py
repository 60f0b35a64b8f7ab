"""The event loop's lag: a task that sleeps a fixed tick and measures how late it woke up.

Anything that holds the loop (a long Python loop over a Redis reply, a blocking call) delays every
wake-up behind it: the overshoot is the stall the fold, the web pages and the timers all felt.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from prometheus_client import Gauge, Histogram

#: 25 ms: a stall shorter than one tick can hide partly inside a sleep, so the tick bounds the
#: error of every figure; 40 wake-ups a second cost nothing measurable.
TICK_SECONDS: Final = 0.025
#: The max gauge's sliding window: longer than any scrape interval we ship (15 s), so no stall
#: falls between two scrapes unseen.
WINDOW_SECONDS: Final = 60.0


class SlidingMax:
    """The largest value observed in the last ``window`` seconds of a clock (pure: clock given)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        # Decreasing values with their times: the head is the window's max (monotonic queue).
        self._entries: deque[tuple[float, float]] = deque()

    def observe(self, value: float) -> None:
        """Add one value at the clock's now."""
        now = self._clock()
        while self._entries and self._entries[-1][1] <= value:
            self._entries.pop()
        self._entries.append((now, value))
        self._expire(now)

    def value(self) -> float:
        """The window's max (0 when nothing was observed within it)."""
        self._expire(self._clock())
        return self._entries[0][1] if self._entries else 0.0

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0][0] < now - self.window:
            self._entries.popleft()


class LoopLagMonitor:
    """Feeds ``esn_event_loop_lag_seconds`` and ``esn_event_loop_lag_max_seconds``."""

    def __init__(self, histogram: Histogram, max_gauge: Gauge, tick: float = TICK_SECONDS) -> None:
        self.histogram = histogram
        self.tick = tick
        self.window = SlidingMax(WINDOW_SECONDS)
        max_gauge.set_function(self.window.value)

    def record(self, lag: float) -> None:
        """One measured overshoot, in seconds."""
        lag = max(0.0, lag)
        self.histogram.observe(lag)
        self.window.observe(lag)

    async def run(self) -> None:
        """Measure until cancelled."""
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(self.tick)
            self.record(clock() - before - self.tick)
