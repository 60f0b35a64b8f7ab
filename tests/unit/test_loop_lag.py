"""The event loop lag monitor: the sliding max and the overshoot it measures."""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry

from stream.loop_lag import LoopLagMonitor, SlidingMax
from stream.metrics import PipelineMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestSlidingMax:
    def test_the_max_of_the_window_and_only_of_it(self) -> None:
        """The largest value within the window; one older than the window is forgotten."""
        clock = FakeClock()
        window = SlidingMax(60.0, clock)
        assert 0.0 == window.value()
        window.observe(0.3)
        clock.now += 10
        window.observe(0.1)
        window.observe(0.2)
        assert 0.3 == window.value()
        clock.now += 55  # 0.3 is 65 s old, 0.1 and 0.2 are 55 s old
        assert 0.2 == window.value()
        clock.now += 10
        assert 0.0 == window.value()

    def test_a_later_larger_value_replaces_smaller_ones(self) -> None:
        """A larger value observed later stays the max after the earlier ones expire."""
        clock = FakeClock()
        window = SlidingMax(5.0, clock)
        window.observe(0.5)
        clock.now += 3
        window.observe(0.7)
        clock.now += 4
        assert 0.7 == window.value()


class TestMonitor:
    def test_a_blocked_loop_shows_in_the_histogram_and_the_max(self) -> None:
        """A 150 ms blocking call while the monitor sleeps is measured as a stall over 100 ms."""
        registry = CollectorRegistry()
        metrics = PipelineMetrics(registry)
        monitor = LoopLagMonitor(metrics.loop_lag, metrics.loop_lag_max, tick=0.01)

        async def scenario() -> None:
            task = asyncio.ensure_future(monitor.run())
            await asyncio.sleep(0.05)
            time.sleep(0.15)  # holds the loop: the monitor wakes at least 0.14 s late
            await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert registry.get_sample_value("esn_event_loop_lag_max_seconds") >= 0.1
        count = registry.get_sample_value("esn_event_loop_lag_seconds_count")
        below = registry.get_sample_value("esn_event_loop_lag_seconds_bucket", {"le": "0.1"})
        assert count is not None and below is not None and count - below >= 1

    def test_an_early_wake_up_counts_as_no_lag(self) -> None:
        """A negative overshoot (clock granularity) is recorded as 0, never below."""
        registry = CollectorRegistry()
        metrics = PipelineMetrics(registry)
        monitor = LoopLagMonitor(metrics.loop_lag, metrics.loop_lag_max)
        monitor.record(-0.001)
        assert 0.0 == registry.get_sample_value("esn_event_loop_lag_seconds_sum")
        assert 1 == registry.get_sample_value("esn_event_loop_lag_seconds_bucket", {"le": "0.001"})
