"""Rebalances of the activity consumer: drain and hint on revoke, seek to the fences on assign."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from stream.retry import until_redis_answers
from stream.store.errors import REDIS_UNAVAILABLE

if TYPE_CHECKING:
    from stream.ingest import ActivityIngest

log = logging.getLogger(__name__)


class RefenceOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks each newly owned partition to its Redis fence; drains the in-flight batches first."""

    def __init__(self, ingest: ActivityIngest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The fetches sent are handled first, so the hint committed below includes them.
        await self.ingest.settle_applies()
        async with self.ingest.apply_lock:
            await self.ingest.commit_fences()
            for tp in revoked:
                self.ingest.fences.pop(tp.partition, None)
                self._forget_gauges(tp)
                self.ingest.flags.forget(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Position each partition just past its applied offset (Redis is the source of truth)."""
        ingest = self.ingest
        partitions = [tp.partition for tp in assigned]
        fences = await until_redis_answers(
            lambda: ingest.store.load_fences(ingest.topics.activity, partitions),
            ingest.settings.redis_retry_max_seconds,
            "Reading fences",
        )
        ingest.redis_ok = True
        ingest.metrics.redis_up.set(1)
        # The directory has no fence: what Redis lost of it (a restart from an older AOF, a
        # failover) comes back only by reading it again, before the activity that needs it.
        # The run id this re-read is as of: a later one means a restart the watch re-reads for.
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            ingest.redis_run_id = await ingest.store.run_id()
        try:
            await ingest.directory.reread_partitions(partitions)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("Directory re-read incomplete (%s); the next assignment reads again", exc)
        for tp in assigned:
            await ingest.seek(tp, fences[tp.partition])
        ingest.metrics.assigned_partitions.set(len(ingest.consumer.assignment()))
        ingest.joined.set()
        log.info("Assigned %s at fences %s", sorted(partitions), fences)

    def _forget_gauges(self, tp: TopicPartition) -> None:
        """Drop per-partition gauges of a partition this worker no longer owns."""
        labels = (tp.topic, str(tp.partition))
        for gauge in (self.ingest.metrics.consumer_lag, self.ingest.metrics.applied_offset):
            with contextlib.suppress(KeyError):  # never set for this partition
                gauge.remove(*labels)
