"""The ingest's periodic work besides consuming: flag sweeps, the Kafka probe, the Redis restart
watch and the lag gauges, as a mode Service started and stopped with the ingest."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from mode import Service

from stream.store.errors import REDIS_UNAVAILABLE

if TYPE_CHECKING:
    from stream.ingest import ActivityIngest

log = logging.getLogger(__name__)


class IngestTasks(Service):
    """Timers over one :class:`~stream.ingest.ActivityIngest`'s partitions."""

    def __init__(self, ingest: ActivityIngest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingest = ingest

    @Service.task
    async def _sweep_loop(self) -> None:
        ingest = self.ingest
        while not self.should_stop:
            await self.sleep(ingest.settings.sweep_interval_seconds)
            # mode's sleep returns early when the service stops: a sweep started then would run
            # (a backfill's worth of releases) after on_stop closed the consumer and producer.
            if self.should_stop or ingest.should_stop:
                break
            if ingest.joined.is_set():
                try:
                    await ingest.flags.sweep(
                        ingest.consumer.assignment,
                        ingest.apply_lock,
                        lambda: self.should_stop or ingest.should_stop,
                    )
                except (*REDIS_UNAVAILABLE, KafkaError) as exc:
                    # Nothing is lost: the buffer and the outbox wait for the next sweep.
                    log.warning("Sweep incomplete (%s); retrying at the next one", exc)

    @Service.timer(5.0)
    async def _probe_kafka(self) -> None:
        ingest = self.ingest
        up = await ingest.readiness.probe_kafka(ingest.consumer.topics)
        ingest.metrics.kafka_up.set(1 if up else 0)

    @Service.timer(5.0)
    async def _watch_redis_restarts(self) -> None:
        """A Redis restart or failover may have lost the last writes: re-read the directory.

        Activity needs no such watch (its fences are checked on every apply), but the directory
        has no fence, and a partition whose activity was idle meanwhile would not notice.
        """
        ingest = self.ingest
        try:
            run_id = await ingest.store.run_id()
        except REDIS_UNAVAILABLE:
            return  # unreachable: /ready says so; the next answer is compared
        known, ingest.redis_run_id = ingest.redis_run_id, run_id
        if known is None or known == run_id or not ingest.joined.is_set():
            return
        async with ingest.apply_lock:
            owned = sorted(tp.partition for tp in ingest.consumer.assignment())
            log.warning("Redis restarted or failed over: re-reading directory partitions %s", owned)
            ingest.metrics.state_losses.inc()
            ingest.store.forget_registrations()
            try:
                await ingest.directory.reread_partitions(owned)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("Directory re-read incomplete (%s); retrying", exc)
                ingest.redis_run_id = known  # compared again at the next tick

    @Service.timer(5.0)
    async def _refresh_lag(self) -> None:
        ingest = self.ingest
        for tp in ingest.consumer.assignment():
            end = ingest.consumer.highwater(tp)
            fence = ingest.fences.get(tp.partition)
            if end is None or fence is None:
                continue
            labels = (tp.topic, str(tp.partition))
            ingest.metrics.consumer_lag.labels(*labels).set(max(0, end - fence - 1))
