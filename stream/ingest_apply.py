"""The ingest's applies, two fetches deep: the next fetch's scripts are sent before the last
one's replies are in, and every reply is handled in fetch order.

Why two: Redis runs one script at a time, and while the worker decoded a fetch, sent it and
read the reply, Redis waited for it (py-spy and a trace of the bench: Redis busy about half of
the time at 95k events/s, the worker a third). With one apply queued behind the running one,
Redis starts the next script as soon as the last ends (docs/design/performance.md).

Why it stays exact: a batch sent ahead names as its expected fence the last offset of the batch
before it, still in flight. fold.lua writes nothing unless the partition's fence is at least the
expected one and below the batch's first offset, so a batch that runs before its predecessor has
landed (or after a predecessor Redis refused) changes nothing and answers "state lost" with the
fence it found. That fence is not below the one confirmed when the batch was sent, which tells it
from a real loss; the batch is then applied again from the fence known by then. A real loss, a
refused batch or another owner's progress is handled exactly as with one apply at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream.batch import FoldedFetch, RawRecord, fold_partition, records_after
from stream.fold import PartitionDelta
from stream.ingest_recovery import apply_one_by_one, reread_lost_partition
from stream.store import ApplyOutcome, ApplyResult

if TYPE_CHECKING:
    from stream.ingest import ActivityIngest

#: Fetches whose applies may be in flight at once: the one Redis runs and the one queued behind
#: it. More would only hold more fetched records in memory: Redis runs them one at a time.
APPLIES_IN_FLIGHT = 2


@dataclass
class SentApply:
    """One fetch's scripts, sent; its replies are handled once the fetch before it is done."""

    folded: FoldedFetch
    records: Mapping[tuple[str, int], Sequence[RawRecord]]
    replies: asyncio.Task[list[ApplyResult]]
    #: partition -> the fence confirmed when the batch was sent ahead of an unconfirmed one.
    sent_ahead_of: dict[int, int] = field(default_factory=dict)


async def send_fetch(
    ingest: ActivityIngest, folded: FoldedFetch, records: Mapping[tuple[str, int], Sequence[Any]]
) -> SentApply | None:
    """Under the apply lock: drop what a rebalance or a seek took away, dead-letter, send."""
    async with ingest.apply_lock:
        current = _current_partitions(ingest, folded)
        folded.deltas = [d for d in folded.deltas if d.partition in current]
        # A record at or below the fence was dead-lettered before the fence moved past it.
        folded.rejects = [
            r
            for r in folded.rejects
            if r.record.partition in current
            and r.record.offset > ingest.fences.get(r.record.partition, -1)
        ]
        # Dead-lettered before the batch can move the fence past them: a crash only repeats.
        await ingest.send_rejects(folded.rejects)
        if not folded.deltas:
            return None
        expected: dict[int, int] = {}
        sent_ahead_of: dict[int, int] = {}
        for delta in folded.deltas:
            partition = delta.partition
            confirmed = ingest.fences.get(partition)
            through = ingest.sent_through.get(partition, confirmed)
            if through is not None:
                expected[partition] = through
            if through != confirmed:
                sent_ahead_of[partition] = -1 if confirmed is None else confirmed
            ingest.sent_through[partition] = delta.last_offset
        replies = asyncio.ensure_future(ingest.apply_with_retry(folded.deltas, expected))
        return SentApply(folded, records, replies, sent_ahead_of)


async def handle_in_order(
    ingest: ActivityIngest, sent: SentApply, previous: asyncio.Future[Any] | None
) -> None:
    """Wait for the fetch before this one to be handled, then this one's replies."""
    if previous is not None:
        # Its own failure is raised where it is awaited; here only its order matters.
        await asyncio.wait([previous])
    results = await sent.replies
    async with ingest.apply_lock:
        await handle_replies(ingest, sent, results)


async def handle_replies(
    ingest: ActivityIngest, sent: SentApply, results: list[ApplyResult]
) -> None:
    """Move the fences by the replies, and apply again what did not land as sent."""
    folded, records = sent.folded, sent.records
    times = folded.event_times_ms
    # A seek or a rebalance since the send: the partition is read again from its fence, so this
    # batch's reply says nothing the next fetch will not (what it wrote, it wrote fenced).
    current = _current_partitions(ingest, folded)
    pending: list[tuple[PartitionDelta, ApplyResult]] = []
    for delta, result in zip(folded.deltas, results, strict=True):
        _landed(ingest, delta)
        if delta.partition in current:
            pending.append((delta, result))
    sent_ahead_of = sent.sent_ahead_of
    while pending:
        retry: list[PartitionDelta] = []
        for delta, result in pending:
            partition = delta.partition
            if result.outcome is ApplyOutcome.STATE_LOST:
                ahead_of = sent_ahead_of.get(partition)
                if ahead_of is not None and result.applied_before >= ahead_of:
                    # Ran before the batch it was sent behind had landed: nothing was written.
                    retry.append(delta)
                else:
                    await reread_lost_partition(ingest, delta, result.applied_before)
            elif result.outcome is ApplyOutcome.REFUSED:
                await apply_one_by_one(
                    ingest, delta, records[delta.topic, partition], folded.bounds
                )
            elif result.outcome is ApplyOutcome.APPLIED:
                ingest.count_applied(delta, times.get(partition, []))
                ingest.fences[partition] = delta.last_offset
            elif result.outcome is ApplyOutcome.ALREADY_APPLIED:
                ingest.metrics.batches.labels("replayed").inc()
                ingest.fences[partition] = max(
                    result.applied_before, ingest.fences.get(partition, -1)
                )
            else:
                # Another owner got further while this batch was in flight: keep only the rest.
                ingest.metrics.batches.labels("overlap").inc()
                ingest.fences[partition] = result.applied_before
                rest = records_after(records[delta.topic, partition], result.applied_before)
                if rest:
                    refolded, rest_times = fold_partition(
                        delta.topic,
                        partition,
                        rest,
                        None,
                        ingest.counting_types,
                        ingest.pseudonymize,
                        folded.bounds,
                    )
                    times[partition] = rest_times
                    retry.append(refolded)
        for delta, _ in pending:
            labels = (delta.topic, str(delta.partition))
            if delta.partition in ingest.fences:
                ingest.metrics.applied_offset.labels(*labels).set(ingest.fences[delta.partition])
        # Again from the fences now confirmed: nothing of these is ahead of anything any more.
        retry = [d for d in retry if d.partition in _current_partitions(ingest, folded)]
        sent_ahead_of = {}
        if retry:
            again = await ingest.apply_with_retry(retry)
            pending = list(zip(retry, again, strict=True))
        else:
            pending = []


def _landed(ingest: ActivityIngest, delta: PartitionDelta) -> None:
    """The batch's reply is in: a later send of its partition no longer waits on it."""
    if ingest.sent_through.get(delta.partition) == delta.last_offset:
        del ingest.sent_through[delta.partition]


def _current_partitions(ingest: ActivityIngest, folded: FoldedFetch) -> set[int]:
    """The fetch's partitions still owned and not sought since the fetch was folded."""
    owned = {tp.partition for tp in ingest.consumer.assignment()}
    return {p for p in owned if folded.generations.get(p, 0) == ingest.generations.get(p, 0)}
