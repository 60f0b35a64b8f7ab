"""What every adapter shares: the source record, the mapped output, the skip with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceRecord:
    """One input record and where it was: "file:line" or "file:row"."""

    location: str
    raw: Any


@dataclass(frozen=True)
class Output:
    """One mapped record: kind "activity" (esn.activity.v1) or "directory" (esn.directory.v1)."""

    kind: str
    record: dict[str, Any]


class Skip(ValueError):
    """A record that cannot be mapped; ``reason`` is short and countable, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Adapter(Protocol):
    """A format: how to read its records and how to map one."""

    name: str

    def records(self, path: Path) -> Iterator[SourceRecord]:
        """The file's records, in order, streaming."""
        ...

    def map(self, record: SourceRecord) -> list[Output]:
        """The v1 records of one source record; raises Skip when it cannot be mapped."""
        ...


def iso_time(value: Any, field: str) -> str:
    """An RFC 3339 time with an offset; a naive time is taken as UTC (exports often omit it)."""
    if not isinstance(value, str) or not value.strip():
        raise Skip("missing_time", f"{field} is missing")
    text = value.strip().replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Skip("bad_time", f"{field} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def id_of(value: Any) -> str | None:
    """An id given as a string or as an object with "id" (Activity Streams allows both)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None
