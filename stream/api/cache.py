"""A short-lived answer cache with one computation in flight per key.

Twenty dashboards asking for /summary at once start one computation, not twenty: the others
await the same task. Answers are reused for ``ttl`` seconds, then computed afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class AnswerCache:
    """Per-process, per-key: (computed at, answer) and the task computing the next one."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, Any]] = {}
        self._pending: dict[Hashable, asyncio.Task[Any]] = {}
        # Bounded: keys come from a few validated parameters, but a cap costs nothing.
        self._max_keys = 256

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
        """(age in seconds, answer): a fresh enough one, or the shared computation's."""
        now = self._clock()
        held = self._answers.get(key)
        if held is not None and now - held[0] < self.ttl:
            return now - held[0], held[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._compute(key, compute))
            self._pending[key] = task
        # shield: one caller going away (a closed connection) must not cancel the others' answer.
        return 0.0, await asyncio.shield(task)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        try:
            answer = await compute()
        finally:
            self._pending.pop(key, None)
        if self.ttl > 0:
            if len(self._answers) >= self._max_keys:
                self._answers.clear()
            self._answers[key] = (self._clock(), answer)
        return answer
