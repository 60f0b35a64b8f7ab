"""The analytics refresh on a thread of its own: its own event loop, Redis client and producer.

The refresh still reads every community's members (O(members)); on the ingest's loop, decoding
those replies held the fold, /ready and the timers for as long. On its own loop the ingest's
loop only shares the interpreter with it, which switches threads every few milliseconds, and
the garbage collector, paused while a refresh runs.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


async def _collector_paused(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` with the cyclic garbage collector off.

    A refresh holds a few objects per community member alive at once; a full collection that
    falls inside it walks all of them and stops every thread meanwhile: 125-160 ms stalls of the
    ingest's loop at 20,000 users, 25 ms with the collector off (docs/design/performance.md).
    What a refresh allocates has no cycles: reference counting frees it as it goes.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return await work()
    finally:
        if paused:
            gc.enable()


class RefreshThread:
    """One daemon thread running an event loop, started by the first coroutine submitted to it
    from another loop (importing the worker's app starts nothing)."""

    def __init__(self, name: str = "esn-analytics") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work()`` on the thread's loop; await its result from the caller's loop."""
        if not self._thread.is_alive():
            self._thread.start()
        future: Future[T] = asyncio.run_coroutine_threadsafe(_collector_paused(work), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (after what it is running) and wait for the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
