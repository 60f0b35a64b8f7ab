"""The ingest's failure paths: a partition whose Redis state is behind what was applied is read
again from its fence, and a batch the fold script refuses is applied one record at a time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from stream.batch import RawRecord, Reject, fold_partition
from stream.fold import PartitionDelta
from stream.store import ApplyOutcome
from stream.timebounds import TimeBounds

if TYPE_CHECKING:
    from stream.ingest import ActivityIngest

log = logging.getLogger(__name__)


async def reread_lost_partition(ingest: ActivityIngest, delta: PartitionDelta, found: int) -> None:
    """Redis is behind what this worker applied: read the partition again from its fence."""
    applied = ingest.fences.get(delta.partition, -1)
    log.warning(
        "%s[%d]: the Redis fence is at %d but %d was applied (Redis restarted empty, from "
        "an older AOF, or failed over to a replica that was behind); re-reading from %s",
        delta.topic,
        delta.partition,
        found,
        applied,
        found + 1 if found >= 0 else "the beginning",
    )
    ingest.metrics.state_losses.inc()
    try:
        await ingest.directory.reread_partitions([delta.partition])
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("Directory re-read incomplete (%s); the next assignment reads again", exc)
    await ingest.seek(TopicPartition(delta.topic, delta.partition), found)


async def apply_one_by_one(
    ingest: ActivityIngest,
    delta: PartitionDelta,
    records: Sequence[RawRecord],
    bounds: TimeBounds | None,
) -> None:
    """The script refused a batch: find the records it refuses, dead-letter them, go on.

    Nothing was written by the refused call (the script checks all its input first), so
    applying the same records one at a time is exact; only the failure path pays for it.
    """
    log.error(
        "%s[%d]: the fold script refused offsets %d-%d; applying them one by one",
        delta.topic,
        delta.partition,
        delta.first_offset,
        delta.last_offset,
    )
    partition = delta.partition
    for record in records:
        if not delta.first_offset <= record.offset <= delta.last_offset:
            continue
        if record.offset <= ingest.fences.get(partition, -1):
            continue
        single, times_ms = fold_partition(
            delta.topic,
            partition,
            [record],
            None,
            ingest.counting_types,
            ingest.pseudonymize,
            bounds,
        )
        (result,) = await ingest.apply_with_retry([single])
        if result.outcome is ApplyOutcome.REFUSED:
            reject = Reject(record, "internal_error", result.error[:500], "RedisScriptError")
            await ingest.send_rejects([reject])
            empty = PartitionDelta(delta.topic, partition, record.offset, record.offset)
            (result,) = await ingest.apply_with_retry([empty])
        if result.outcome is ApplyOutcome.STATE_LOST:
            await reread_lost_partition(ingest, single, result.applied_before)
            return
        if result.outcome is ApplyOutcome.APPLIED:
            ingest.count_applied(single, times_ms)
            ingest.fences[partition] = record.offset
        else:  # another owner got this far: it applies the rest
            ingest.fences[partition] = max(result.applied_before, ingest.fences.get(partition, -1))
            return
