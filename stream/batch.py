"""Turn one fetch of raw Kafka records into fenced partition deltas and dead-letter rejects.

Pure: no I/O, so the worker, the benchmark's plain loop and the unit tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stream.decode import decode_activity
from stream.events import Activity, InvalidEvent
from stream.fold import PartitionDelta
from stream.privacy import Pseudonymize


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


@dataclass
class FoldedFetch:
    """The result of folding one fetch."""

    deltas: list[PartitionDelta] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: Event times (ms) of the valid events, for the lag histogram once they are applied.
    event_times_ms: dict[int, list[int]] = field(default_factory=dict)


def fold_partition(
    topic: str,
    partition: int,
    records: Sequence[RawRecord],
    rejects: list[Reject] | None = None,
    counting_types: frozenset[str] | None = None,
    pseudonymize: Pseudonymize | None = None,
) -> tuple[PartitionDelta, list[int]]:
    """Fold one partition's records (ascending offsets) into a delta covering all of them."""
    first = records[0].offset
    delta = PartitionDelta(
        topic, partition, first_offset=first, last_offset=first, counting_types=counting_types
    )
    times: list[int] = []
    for record in records:
        try:
            activity = decode_activity(record.value, record.key)
        except InvalidEvent as exc:
            if rejects is not None:
                rejects.append(Reject(record, exc.reason, exc.detail))
        else:
            if pseudonymize is not None:
                activity = pseudonymized(activity, pseudonymize)
            delta.add(activity)
            times.append(activity.time_ms)
    delta.skip_through(records[-1].offset)
    return delta, times


def fold_fetch(
    fetched: Mapping[tuple[str, int], Sequence[RawRecord]],
    counting_types: frozenset[str] | None = None,
    pseudonymize: Pseudonymize | None = None,
) -> FoldedFetch:
    """Fold every partition of a fetch; invalid records become rejects, valid ones deltas."""
    out = FoldedFetch()
    for (topic, partition), records in fetched.items():
        if not records:
            continue
        delta, times = fold_partition(
            topic, partition, records, out.rejects, counting_types, pseudonymize
        )
        out.deltas.append(delta)
        out.event_times_ms[partition] = times
    return out


def pseudonymized(activity: Activity, pseudonymize: Pseudonymize) -> Activity:
    """The activity with its actor and target replaced by their pseudonyms (after the key check)."""
    target = activity.target_user
    return activity._replace(
        actor=pseudonymize(activity.actor),
        target_user=pseudonymize(target) if target is not None else None,
    )


def records_after(records: Iterable[RawRecord], offset: int) -> list[RawRecord]:
    """The records past an applied offset: what is left to fold after a partial overlap."""
    return [r for r in records if r.offset > offset]
