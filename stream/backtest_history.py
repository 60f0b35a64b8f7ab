"""Histories for the backtest: files the importer reads, or the generator, as machine changes.

Every record passes the worker's own gates (the importer's ``validated``), so the backtest
replays what a worker would fold; activity of an uncounted type (ESN_ACTIVITY_TYPES) is left
out, as the fold leaves it out. Files are read whole and sorted into event-time order; the
generator's history streams (it is nearly in order already: a bounded buffer sorts it).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from stream import jsonutil
from stream.adapters.base import Output, Skip
from stream.adapters.runner import ImportSummary, input_files, run_import, validated
from stream.events import InvalidEvent, epoch_ms
from stream.flags.machine import DAY_MS, Change, ProfileChange, Seen, change_order

#: The contract's own JSON lines (what ``esn-pulse generate`` and ``import --out`` write).
CONTRACT: Final = "contract"
#: How far the generator's events may come out of order: local days in offsets -5h to +5:30h.
_GENERATED_DISORDER_MS: Final = 2 * DAY_MS


@dataclass
class HistoryCounts:
    """What was read: events and profiles replayed, records left out and why."""

    events: int = 0
    profiles: int = 0
    uncounted_type: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    #: Files that broke (path, where, what), as the importer reports them.
    broken: list[str] = field(default_factory=list)


class _Collect:
    """An import sink that keeps the changes instead of sending them."""

    def __init__(self, counting: frozenset[str] | None, counts: HistoryCounts) -> None:
        self.changes: list[Change] = []
        self.counting = counting
        self.counts = counts

    async def send(self, output: Output, payload: bytes) -> None:
        change = to_change(output.kind, output.record, self.counting, self.counts)
        if change is not None:
            self.changes.append(change)

    async def flush(self) -> None:
        return None


def to_change(
    kind: str, record: dict[str, Any], counting: frozenset[str] | None, counts: HistoryCounts
) -> Change | None:
    """The machine change of one validated record (memberships and uncounted types: None)."""
    if kind == "activity":
        if counting is not None and record["type"] not in counting:
            counts.uncounted_type += 1
            return None
        counts.events += 1
        return Seen(epoch_ms(datetime.fromisoformat(record["time"])), record["actor"])
    if record.get("kind", "profile") != "profile":
        return None
    counts.profiles += 1
    return ProfileChange(
        epoch_ms(datetime.fromisoformat(record["updated"])),
        record["user_id"],
        record["status"] == "enabled",
        epoch_ms(datetime.fromisoformat(record["created"])),
    )


def from_files(
    sources: Iterable[Path], fmt: str, adapter: Any, counting: frozenset[str] | None
) -> tuple[list[Change], HistoryCounts]:
    """Read ``sources`` (files, or directories read at their top) and sort their changes."""
    counts = HistoryCounts()
    changes: list[Change] = []
    for source in sources:
        if fmt == CONTRACT:
            changes += _contract_changes(source, counting, counts)
            continue
        sink = _Collect(counting, counts)
        files = input_files(source, adapter.file_patterns)
        summary: ImportSummary = asyncio.run(run_import(adapter, files, sink))
        counts.skipped.update(summary.skipped)
        counts.broken += [f"{b.path} at {b.where}: {b.detail}" for b in summary.broken]
        changes += sink.changes
    changes.sort(key=change_order)
    return changes, counts


def _contract_changes(
    path: Path, counting: frozenset[str] | None, counts: HistoryCounts
) -> Iterator[Change]:
    """A JSON-lines file of v1 activity events and directory records, mixed or apart."""
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = jsonutil.loads(line)
                if not isinstance(record, dict):
                    raise Skip("not_object", "a record is a JSON object")
                kind = "directory" if "kind" in record else "activity"
                validated(Output(kind, record))
            except (Skip, InvalidEvent, ValueError, KeyError, TypeError) as exc:
                counts.skipped[getattr(exc, "reason", "not_json")] += 1
                continue
            change = to_change(kind, record, counting, counts)
            if change is not None:
                yield change


def generated(
    users: int, days: int, seed: int, start: date, counting: frozenset[str] | None
) -> tuple[Iterator[Change], HistoryCounts]:
    """The generator's organisation and history as changes in event-time order, streaming."""
    from stream.generator import directory_records, generate_events

    counts = HistoryCounts()
    profiles = sorted(
        (
            change
            for record in directory_records(users, start, days, seed)
            if (change := to_change("directory", record, counting, counts)) is not None
        ),
        key=change_order,
    )

    def seen() -> Iterator[Change]:
        buffer: list[tuple[int, str]] = []
        for event in generate_events(users, days, start, seed):
            change = to_change("activity", event, counting, counts)
            if change is None:
                continue
            heapq.heappush(buffer, (change.at_ms, change.user_id))
            # Release what no later event can precede (the generator's disorder is bounded).
            while buffer[0][0] < change.at_ms - _GENERATED_DISORDER_MS:
                at_ms, user = heapq.heappop(buffer)
                yield Seen(at_ms, user)
        while buffer:
            at_ms, user = heapq.heappop(buffer)
            yield Seen(at_ms, user)

    return heapq.merge(profiles, seen(), key=change_order), counts
