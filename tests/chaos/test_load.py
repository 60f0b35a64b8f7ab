"""Bounded under load (short): a burst well beyond the worker's fold rate; the lag grows and then
drains, every event is counted once, and the worker's memory does not follow the backlog."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.settings import Settings
from tests.chaos.load import bounded_under_load

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

#: The backlog waits in Kafka: the worker holds a fetch or two, whatever the lag.
RSS_GROWTH_MIB = 150


async def test_overload_grows_the_lag_then_drains_with_memory_bounded(
    stack_settings: Settings, drill_logs: Path
) -> None:
    """30 s of the fold rate's events sent as fast as the producer can: the lag grows, drains,
    every event is counted once, and the worker's RSS does not follow the lag."""
    figures = await bounded_under_load(
        stack_settings, drill_logs, seconds=15, backlog=30_000, overload=None
    )
    print("\n".join(figures.lines()))
    assert figures.produced == figures.counted, "every event counted once"
    assert figures.drain_seconds is not None
    assert figures.before is not None
    # Whatever the machine's pace, a burst of 30 s of input outruns a 15 s drain by far.
    burst = figures.produced - 30_000
    assert figures.peak_lag.lag >= 0.1 * burst, figures.lines()
    assert figures.peak_rss - figures.before.rss_mib < RSS_GROWTH_MIB, figures.lines()
