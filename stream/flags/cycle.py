"""One sweep: bring each owned partition's flags up to its clock, publish them, refresh the gauges.

The ingest calls it every ``ESN_SWEEP_INTERVAL_SECONDS`` under its apply lock, in bounded steps,
so that folding keeps its pace while a backfill's worth of changes is released.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from aiokafka import TopicPartition

from stream.flags.machine import definitions_from, threshold_label
from stream.flags.publisher import FlagPublisher
from stream.flags.release import InactivitySweeper
from stream.metrics import PipelineMetrics
from stream.settings import Settings
from stream.store import FlagReads, RedisStore
from stream.timebounds import parse_duration_ms


class FlagCycle:
    """The sweeper and the publisher of one worker, and the gauges they feed."""

    def __init__(self, settings: Settings, store: RedisStore, metrics: PipelineMetrics) -> None:
        self.settings = settings
        self.store = store
        self.reads = FlagReads(store)
        self.metrics = metrics
        self.definitions = definitions_from(settings)
        self.lateness_ms = parse_duration_ms(settings.allowed_lateness)
        self.sweeper = InactivitySweeper(store, self.definitions)
        self.publisher = FlagPublisher(settings, store)

    async def start(self) -> None:
        """Connect the publisher."""
        await self.publisher.start()

    async def stop(self) -> None:
        """Flush and close the publisher."""
        await self.publisher.stop()

    def forget(self, partition: int) -> None:
        """Another worker owns the partition now."""
        self.publisher.forget(partition)

    async def sweep(
        self,
        owned: Callable[[], Collection[TopicPartition]],
        lock: asyncio.Lock,
        stopping: Callable[[], bool],
    ) -> None:
        """Release and publish every partition still ``owned()``, then refresh the gauges."""
        for tp in sorted(owned()):
            watermark = await self._watermark(tp.partition)
            if watermark is None:
                continue
            complete = False
            while not complete and not stopping():
                # Bounded steps, the lock released between them: folding keeps its pace even
                # while a backfill's worth of changes is being released.
                async with lock:
                    if tp not in owned():
                        break
                    complete = (await self.sweeper.release(tp.partition, watermark)).complete
            async with lock:
                if tp not in owned():
                    continue
                for record in await self.publisher.publish(tp.partition):
                    self.metrics.flags.labels(record["kind"]).inc()
                    if record["kind"] == "reactivated":
                        self.metrics.reactivations.inc()
        self.metrics.last_sweep_finished = time.time()
        await self._refresh_user_gauges()

    async def _watermark(self, partition: int) -> int | None:
        """The clock's now minus the allowed lateness (event clock: highest event time seen)."""
        if self.settings.clock == "event":
            highest = await self.reads.event_watermark(partition)
            if highest is None:
                return None
            return highest - self.lateness_ms
        return int(time.time() * 1000) - self.lateness_ms

    async def _refresh_user_gauges(self) -> None:
        counts = await self.reads.inactivity_counts()
        self.metrics.users_enabled.set(counts.get("enabled", 0))
        self.metrics.users_never_active.set(counts.get("never_active", 0))
        self.metrics.users_at_risk.set(counts.get("at_risk", 0))
        for threshold in self.definitions.thresholds_ms:
            label = threshold_label(threshold)
            self.metrics.users_inactive.labels(label).set(counts.get(f"inactive:{label}", 0))
        # esn_active_users is set by the analytics refresh with the tiers (the same unions):
        # computing the 30-day union every sweep blocked Redis for the fold.
