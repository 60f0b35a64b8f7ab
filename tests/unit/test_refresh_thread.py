"""The analytics refresh's own thread: work runs there, on its own loop, and stops cleanly."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from stream.analytics.refresh_thread import RefreshThread


class TestRefreshThread:
    def test_work_runs_on_another_thread_while_the_callers_loop_keeps_turning(self) -> None:
        """A blocking 0.3 s piece of work does not hold the caller's loop (it ticks meanwhile)."""
        worker = RefreshThread()

        async def blocking() -> str:
            time.sleep(0.3)  # what decoding a large reply does to its loop
            return threading.current_thread().name

        async def scenario() -> tuple[str, int]:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.ensure_future(tick())
            name = await worker.run(blocking)
            ticker.cancel()
            return name, ticks

        try:
            name, ticks = asyncio.run(scenario())
        finally:
            worker.stop()
        assert "esn-analytics" == name
        assert ticks >= 10, "the caller's loop ran while the work blocked its own"

    def test_an_error_reaches_the_caller_and_the_thread_stops(self) -> None:
        """The work's exception is raised where it was awaited; stop() ends the thread."""
        worker = RefreshThread()

        async def failing() -> None:
            raise ConnectionError("Redis went away")

        with pytest.raises(ConnectionError, match="went away"):
            asyncio.run(worker.run(failing))
        worker.stop()
        assert not worker._thread.is_alive()

    def test_stopping_a_thread_never_started_is_harmless(self) -> None:
        """An app built but never refreshed (a CLI command importing it) has nothing to stop."""
        RefreshThread().stop()


class TestCollectorPause:
    def test_the_collector_is_off_during_the_work_and_on_again_after(self) -> None:
        """A collection cannot stall the ingest's loop mid-refresh; afterwards it runs as before."""
        worker = RefreshThread()

        async def collector_state() -> bool:
            return gc.isenabled()

        try:
            assert gc.isenabled()
            assert not asyncio.run(worker.run(collector_state))
            assert gc.isenabled()
        finally:
            worker.stop()

    def test_a_collector_already_off_stays_off(self) -> None:
        """The pause does not turn on a collector someone else turned off."""
        worker = RefreshThread()

        async def nothing() -> None:
            return None

        gc.disable()
        try:
            asyncio.run(worker.run(nothing))
            assert not gc.isenabled()
        finally:
            gc.enable()
            worker.stop()
