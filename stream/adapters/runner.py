"""``esn-pulse import``: stream a file or directory through an adapter into Kafka or a file.

Every mapped record passes the worker's own v1 gate before it is sent, so what the import accepts
the worker folds. Skips (unmappable or invalid records) are counted by reason with their location,
never silently dropped, and never stop the import. A checkpoint (records done per file) is written
every ``checkpoint_every`` records, after the Kafka producer flushed, so a resumed import loses
nothing; what was sent after the last checkpoint is sent again (at least once).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stream import jsonutil
from stream.adapters.base import Adapter, Output, Skip
from stream.decode import decode_activity
from stream.directory import decode_directory
from stream.events import InvalidEvent

#: Locations of skipped records kept for the summary (all of them go to --skipped FILE).
EXAMPLES = 20


class Sink(Protocol):
    """Where mapped records go."""

    async def send(self, output: Output, payload: bytes) -> None: ...
    async def flush(self) -> None: ...


@dataclass
class ImportSummary:
    """What an import did; every input record is read, emitted from, or skipped."""

    records_read: int = 0
    activity_events: int = 0
    directory_records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    resumed_past: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "resumed_past": self.resumed_past,
            "activity_events": self.activity_events,
            "directory_records": self.directory_records,
            "skipped": dict(self.skipped),
            "skipped_examples": [
                {"location": loc, "reason": reason, "detail": detail}
                for loc, reason, detail in self.examples
            ],
        }


def input_files(path: Path) -> list[Path]:
    """A file, or every file of a directory (sorted, hidden ones left out)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]


def validated(output: Output) -> bytes:
    """The record's JSON, accepted by the same gate as the worker's; raises Skip otherwise."""
    payload = jsonutil.dumps(output.record)
    try:
        if output.kind == "activity":
            decode_activity(payload, output.record["actor"].encode())
        else:
            decode_directory(payload, output.record["user_id"].encode())
    except InvalidEvent as exc:
        raise Skip(f"invalid_{exc.reason}", exc.detail) from None
    return payload


async def run_import(
    adapter: Adapter,
    files: Iterable[Path],
    sink: Sink | None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 10_000,
    on_skip: Callable[[str, str, str], None] | None = None,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import every file; ``sink`` None is a dry run (validate only)."""
    summary = ImportSummary()
    done: dict[str, int] = (
        json.loads(checkpoint.read_text())["files"] if (checkpoint and checkpoint.exists()) else {}
    )
    position = dict(done)
    since_checkpoint = 0
    for path in files:
        key = str(path.resolve())
        skip_first = done.get(key, 0)
        for index, record in enumerate(adapter.records(path), start=1):
            if index <= skip_first:
                summary.resumed_past += 1
                continue
            summary.records_read += 1
            try:
                outputs = adapter.map(record)
                payloads = [(output, validated(output)) for output in outputs]
            except Skip as skip:
                summary.skipped[skip.reason] += 1
                if len(summary.examples) < EXAMPLES:
                    summary.examples.append((record.location, skip.reason, skip.detail))
                if on_skip is not None:
                    on_skip(record.location, skip.reason, skip.detail)
            else:
                for output, payload in payloads:
                    if sink is not None:
                        await sink.send(output, payload)
                    if output.kind == "activity":
                        summary.activity_events += 1
                    else:
                        summary.directory_records += 1
            position[key] = index
            since_checkpoint += 1
            if checkpoint is not None and since_checkpoint >= checkpoint_every:
                await _save(checkpoint, position, sink)
                since_checkpoint = 0
            if progress is not None and summary.records_read % 10_000 == 0:
                progress(summary)
    if sink is not None:
        await sink.flush()
    if checkpoint is not None:
        await _save(checkpoint, position, sink)
    return summary


async def _save(checkpoint: Path, position: dict[str, int], sink: Sink | None) -> None:
    """Flush first: a checkpoint may only count records the broker (or file) has."""
    if sink is not None:
        await sink.flush()
    tmp = checkpoint.with_suffix(checkpoint.suffix + ".tmp")
    tmp.write_text(json.dumps({"files": position}, indent=1))
    tmp.replace(checkpoint)
