"""What /ready reports: is Kafka answering, is Redis, and is the ingest making progress."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

_KAFKA_PROBE_TIMEOUT_S = 10.0


class Readiness:
    """The ingest's view of its dependencies and of its own progress."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.kafka_ok = True
        self.assigned = False
        #: When the last batch was applied, or the ingest was found idle with nothing waiting.
        self.last_progress = clock()

    def progressed(self) -> None:
        """A batch was applied (or found applied), or nothing waits: not stalled."""
        self.last_progress = self.clock()

    async def probe_kafka(self, metadata: Callable[[], Awaitable[Any]]) -> bool:
        """Ask for cluster metadata; log a line when the answer changes, not on every failure."""
        try:
            await asyncio.wait_for(metadata(), _KAFKA_PROBE_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.kafka_ok:
                log.warning("Kafka unreachable (%s); the worker waits for it", type(exc).__name__)
            self.kafka_ok = False
        else:
            if not self.kafka_ok:
                log.warning("Kafka answers again")
            self.kafka_ok = True
        return self.kafka_ok

    def reasons(self, redis_answers: bool, records_waiting: int) -> list[str]:
        """Why this worker should get no traffic now (empty: ready)."""
        reasons = []
        if not self.kafka_ok:
            reasons.append("Kafka unreachable")
        if not redis_answers:
            reasons.append("Redis unreachable")
        if not self.assigned:
            reasons.append("no partitions assigned yet")
        stalled = self.clock() - self.last_progress
        if stalled > self.stall_seconds and records_waiting > 0:
            reasons.append(f"no batch applied for {stalled:.0f} s while records wait")
        return reasons
