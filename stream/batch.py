"""Turn one fetch of raw Kafka records into fenced partition deltas and dead-letter rejects.

Pure: no I/O, so the worker, the benchmark's plain loop and the unit tests share it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stream.decode import decode_activity
from stream.events import Activity, InvalidEvent
from stream.fold import PartitionDelta
from stream.native import native_fold
from stream.privacy import Pseudonymize, person_object_id
from stream.timebounds import TimeBounds

#: How an object key of a person starts ("object_type:object_id" with the type ``profile``).
PROFILE_KEY = "profile:"

log = logging.getLogger(__name__)


class RawRecord(Protocol):
    """The parts of aiokafka's ConsumerRecord that folding reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class Reject:
    """A record that goes to the dead-letter topic unchanged, with why and where."""

    record: RawRecord
    reason: str
    detail: str
    #: The exception class of an ``internal_error`` (a bug of ours, not the record's fault).
    exception: str | None = None


@dataclass
class FoldedFetch:
    """The result of folding one fetch."""

    deltas: list[PartitionDelta] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: Event times (ms) of the valid events, for the lag histogram once they are applied.
    event_times_ms: dict[int, list[int]] = field(default_factory=dict)
    #: partition -> the consumer's seek generation the records were fetched under; a seek since
    #: (a rebalance, a fence that went back) makes them stale: they are fetched again.
    generations: dict[int, int] = field(default_factory=dict)
    #: The window of event times the gate used: a refold of the same records uses it again.
    bounds: TimeBounds | None = None


def fold_partition(
    topic: str,
    partition: int,
    records: Sequence[RawRecord],
    rejects: list[Reject] | None = None,
    counting_types: frozenset[str] | None = None,
    pseudonymize: Pseudonymize | None = None,
    bounds: TimeBounds | None = None,
    native: bool = True,
) -> tuple[PartitionDelta, list[int]]:
    """Fold one partition's records (ascending offsets) into a delta covering all of them.

    No record can stop the partition: one that fails the gate, or that makes the gate or the
    fold raise anything at all, becomes a reject and the records after it are folded.
    With the compiled core installed (and ``native``), it folds the plainly valid records and
    leaves the rest to the Python gate below; the fold is commutative, so the delta is the same.
    """
    first = records[0].offset
    delta = PartitionDelta(
        topic, partition, first_offset=first, last_offset=first, counting_types=counting_types
    )
    if bounds is None:
        bounds = TimeBounds.at()
    times: list[int] = []
    pending: Sequence[RawRecord] = records
    if native and native_fold is not None:
        try:
            batch, slow, times = native_fold(
                records, bounds.earliest_ms, bounds.latest_ms, pseudonymize, counting_types
            )
        except Exception:
            # A bug of the core (or of a pseudonymizer it called) must not stop the partition:
            # this batch is folded again from scratch by the Python path.
            log.exception("Compiled fold failed on %s[%d]; folding in Python", topic, partition)
            delta = PartitionDelta(
                topic,
                partition,
                first_offset=first,
                last_offset=first,
                counting_types=counting_types,
            )
            times = []
        else:
            delta.native = batch
            delta.events, delta.max_event_ms = batch.events, batch.max_event_ms
            delta.totals.update(batch.totals())
            pending = [records[index] for index in slow]
    for record in pending:
        try:
            activity = decode_activity(record.value, record.key, bounds)
            if pseudonymize is not None:
                activity = pseudonymized(activity, pseudonymize)
            else:
                activity = with_person_as_profile(activity)
            delta.add(activity)
        except InvalidEvent as exc:
            if rejects is not None:
                rejects.append(Reject(record, exc.reason, exc.detail))
        except Exception as exc:
            # A bug of ours met by one record: that record waits in the dead-letter topic for a
            # fix and a `dlq replay`, and the partition goes on. PartitionDelta.add computes
            # everything that can fail before its first change, so nothing half-folded remains.
            log.exception("Internal error folding %s[%d]@%d", topic, partition, record.offset)
            if rejects is not None:
                detail = f"{type(exc).__name__}: {exc}"
                rejects.append(Reject(record, "internal_error", detail, type(exc).__name__))
        else:
            times.append(activity.time_ms)
    delta.skip_through(records[-1].offset)
    return delta, times


def fold_fetch(
    fetched: Mapping[tuple[str, int], Sequence[RawRecord]],
    counting_types: frozenset[str] | None = None,
    pseudonymize: Pseudonymize | None = None,
    bounds: TimeBounds | None = None,
    native: bool = True,
) -> FoldedFetch:
    """Fold every partition of a fetch; invalid records become rejects, valid ones deltas."""
    if bounds is None:
        bounds = TimeBounds.at()
    out = FoldedFetch(bounds=bounds)
    for (topic, partition), records in fetched.items():
        if not records:
            continue
        delta, times = fold_partition(
            topic, partition, records, out.rejects, counting_types, pseudonymize, bounds, native
        )
        out.deltas.append(delta)
        out.event_times_ms[partition] = times
    return out


def with_person_as_profile(activity: Activity) -> Activity:
    """The activity with an object that is a person (see :func:`person_object_id`) keyed as the
    ``profile`` of that user id, so that every reader knows the top item names a person."""
    if activity.object_key is None:
        return activity
    person = person_object_id(activity.object_key, activity.target_user)
    if person is None:
        return activity
    return activity._replace(object_key=PROFILE_KEY + person, object_type="profile")


def pseudonymized(activity: Activity, pseudonymize: Pseudonymize) -> Activity:
    """The activity with its actor, target and any person it acts on (a ``profile`` object)
    replaced by their pseudonyms (after the key check)."""
    activity = with_person_as_profile(activity)
    target, object_key = activity.target_user, activity.object_key
    if object_key is not None and object_key.startswith(PROFILE_KEY):
        # A profile's id is a person's: the top-items list would otherwise name them.
        object_key = PROFILE_KEY + pseudonymize(object_key.removeprefix(PROFILE_KEY))
    return activity._replace(
        actor=pseudonymize(activity.actor),
        target_user=pseudonymize(target) if target is not None else None,
        object_key=object_key,
    )


def records_after(records: Iterable[RawRecord], offset: int) -> list[RawRecord]:
    """The records past an applied offset: what is left to fold after a partial overlap."""
    return [r for r in records if r.offset > offset]
