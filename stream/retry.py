"""Retrying a Redis call until it succeeds, with capped exponential backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stream.store.errors import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoppedWhileRetrying(Exception):
    """The service began to stop while Redis was away: the work is left for the next owner."""


async def until_redis_answers(
    call: Callable[[], Awaitable[T]],
    max_delay: float,
    what: str,
    on_error: Callable[[Exception], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> T:
    """Await ``call()`` until Redis takes it: work is never skipped while Redis is away.

    With ``stopping``, a stop ends the wait (raising :class:`StoppedWhileRetrying`): nothing
    was committed past the failed call, so the next start does it again.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except REDIS_UNAVAILABLE as exc:
            if on_error:
                on_error(exc)
            if stopping is not None and stopping():
                raise StoppedWhileRetrying(what) from exc
            delay = min(max_delay, 0.1 * 2**attempt)
            attempt += 1
            log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
            if stopping is not None and stopping():
                raise StoppedWhileRetrying(what) from exc
