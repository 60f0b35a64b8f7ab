"""``esn-pulse import``: stream a file or directory through an adapter into Kafka or a file.

Every mapped record passes the worker's own v1 gate before it is sent, so what the import accepts
the worker folds. Skips (unmappable, invalid or oversized records) are counted by reason with
their location, never silently dropped, and never stop the import. A file that cannot be read on
(cut short, not well-formed, corrupt) is a broken file: the records before the break were sent,
the checkpoint points just past them, and the import stops there (``keep_going``: goes on with
the next file). A checkpoint (records done per file) is written every ``checkpoint_every``
records, after the Kafka producer flushed, so a resumed import loses nothing; what was sent after
the last checkpoint is sent again (at least once).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stream import jsonutil
from stream.adapters.base import Adapter, Ignored, Output, Skip, Unusable
from stream.adapters.breaks import BrokenFile, RecordReader
from stream.adapters.files import ByteMeter, bind_meter, defines
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
    """What an import did: every record read was mapped (to one or more outputs), ignored (no
    engagement in it, by reason) or skipped (unmappable, by reason and location)."""

    records_read: int = 0
    records_mapped: int = 0
    activity_events: int = 0
    directory_records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    resumed_past: int = 0
    broken: list[BrokenFile] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "resumed_past": self.resumed_past,
            "records_mapped": self.records_mapped,
            "activity_events": self.activity_events,
            "directory_records": self.directory_records,
            "skipped": dict(self.skipped),
            "ignored": dict(self.ignored),
            "skipped_examples": [
                {"location": loc, "reason": reason, "detail": detail}
                for loc, reason, detail in self.examples
            ],
            "broken_files": [broken.as_json() for broken in self.broken],
        }


def input_files(path: Path, patterns: tuple[str, ...] = ("*",)) -> list[Path]:
    """A file as given, or the files at the top of a directory whose names match ``patterns``
    (sorted, hidden ones left out), as full paths.

    Subfolders are not read: a folder of several exports (sites, tenants) would mix records
    whose ids collide.
    """
    if not path.is_dir():
        return [path.absolute()]
    return [entry.absolute() for entry in _entries(path) if entry.is_file() and
            defines(patterns, entry)]  # fmt: skip


def left_out(path: Path, patterns: tuple[str, ...]) -> list[Path]:
    """What :func:`input_files` does not read at the top of a directory: subfolders, and files
    whose names the format does not define."""
    if not path.is_dir():
        return []
    return [entry for entry in _entries(path) if not (entry.is_file() and defines(patterns, entry))]


def _entries(directory: Path) -> list[Path]:
    return sorted(entry for entry in directory.iterdir() if not entry.name.startswith("."))


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
    progress: Callable[[ImportSummary, bool], None] | None = None,
    meter: ByteMeter | None = None,
    keep_going: bool = False,
) -> ImportSummary:
    """Import every file; ``sink`` None is a dry run (validate only).

    ``progress(summary, final)`` is called after every record (it decides itself how often to
    show anything); ``meter`` counts the bytes the adapters read. A broken file ends the import
    (``summary.broken`` says where), or with ``keep_going`` only that file.
    """
    bind_meter(meter)
    try:
        return await _import_files(
            adapter, files, sink, checkpoint, checkpoint_every, on_skip, progress, keep_going
        )
    finally:
        bind_meter(None)


async def _import_files(
    adapter: Adapter,
    files: Iterable[Path],
    sink: Sink | None,
    checkpoint: Path | None,
    checkpoint_every: int,
    on_skip: Callable[[str, str, str], None] | None,
    progress: Callable[[ImportSummary, bool], None] | None,
    keep_going: bool,
) -> ImportSummary:
    summary = ImportSummary()
    saved = json.loads(checkpoint.read_text()) if (checkpoint and checkpoint.exists()) else {}
    done: dict[str, int] = saved.get("files", {})
    restore = getattr(adapter, "restore", None)
    if restore is not None and "adapter_state" in saved:
        restore(saved["adapter_state"])
    position = dict(done)
    since_checkpoint = 0
    order = getattr(adapter, "file_order", None)
    for path in sorted(files, key=order) if order is not None else files:
        key = str(path.resolve())
        skip_first = done.get(key, 0)
        reading = RecordReader(adapter, path)
        for index, record in enumerate(reading, start=1):
            if index <= skip_first:
                summary.resumed_past += 1
                continue
            summary.records_read += 1
            try:
                if isinstance(record.raw, Unusable):
                    raise Skip(record.raw.reason, record.raw.detail)
                payloads = _mapped(adapter, record)
            except Ignored as ignored:
                summary.ignored[ignored.reason] += 1
            except Skip as skip:
                summary.skipped[skip.reason] += 1
                if len(summary.examples) < EXAMPLES:
                    summary.examples.append((record.location, skip.reason, skip.detail))
                if on_skip is not None:
                    on_skip(record.location, skip.reason, skip.detail)
            else:
                summary.records_mapped += 1
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
                await _save(checkpoint, position, sink, adapter)
                since_checkpoint = 0
            if progress is not None:
                progress(summary, False)
        if reading.broken is not None:
            summary.broken.append(reading.broken)
            if on_skip is not None:
                on_skip(*reading.broken.skip_line())
            if not keep_going:
                break
    if sink is not None:
        await sink.flush()
    if checkpoint is not None:
        await _save(checkpoint, position, sink, adapter)
    if progress is not None:
        progress(summary, True)
    return summary


def _mapped(adapter: Adapter, record: Any) -> list[tuple[Output, bytes]]:
    """The record's outputs and their JSON; any failure of the adapter on one record (a value
    its code did not foresee) is that record's skip, never the import's end."""
    try:
        return [(output, validated(output)) for output in adapter.map(record)]
    except (Skip, Ignored):
        raise
    except Exception as exc:  # one hostile record must not stop a backfill
        raise Skip("internal_error", f"{type(exc).__name__}: {exc}"[:300]) from None


async def _save(
    checkpoint: Path, position: dict[str, int], sink: Sink | None, adapter: Adapter
) -> None:
    """Flush first: a checkpoint may only count records the broker (or file) has.

    An adapter that remembers what it sent (snapshot reports) keeps that memory here too.
    """
    if sink is not None:
        await sink.flush()
    saved: dict[str, Any] = {"files": position}
    state = getattr(adapter, "state", None)
    if state is not None:
        saved["adapter_state"] = state()
    tmp = checkpoint.with_suffix(checkpoint.suffix + ".tmp")
    tmp.write_text(json.dumps(saved, indent=1))
    tmp.replace(checkpoint)
