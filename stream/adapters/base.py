"""What every adapter shares: the source record, the mapped output, the skip with its reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

_NOT_IN_TYPE: Final = re.compile(r"[^a-z0-9_.\-]+")


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


@dataclass(frozen=True)
class Unusable:
    """A source record refused before mapping (not JSON, too large, too deeply nested): the reader
    saw it whole, so it is one counted skip and the records after it are read as usual."""

    reason: str
    detail: str


class Broken(Exception):
    """A file that cannot be read on (cut short, not well-formed, corrupt): ``where`` says where
    in the file ("line 12, column 5", "byte 4,096"), ``detail`` what was found there."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


class Ignored(Exception):
    """A record read and understood that carries no engagement (an admin setting, a system badge).

    Counted by reason in the summary, apart from skips: nothing is wrong with it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Adapter(Protocol):
    """A format: how to read its records and how to map one."""

    name: str
    #: The file names it reads in a directory (fnmatch patterns); other files there are left out.
    file_patterns: tuple[str, ...]

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


def type_name(raw: str) -> str:
    """A source's own action name as a v1 event type (kept, not dropped: the worker counts it
    under "other"): lower case, runs of other characters as "_", a letter first."""
    name = _NOT_IN_TYPE.sub("_", raw.lower()).strip("_") or "other"
    return (name if name[0].isalpha() else f"x{name}")[:64]


def day_start(value: Any, field: str) -> str:
    """A calendar day (``2026-03-02``, or a time on it) as that day's first instant in UTC."""
    if not isinstance(value, str) or len(value.strip()) < 10:
        raise Skip("missing_time", f"{field} is missing")
    try:
        day = datetime.strptime(value.strip()[:10], "%Y-%m-%d")
    except ValueError:
        raise Skip("bad_time", f"{field} {value!r} is not a date") from None
    return day.replace(tzinfo=UTC).isoformat()


def day_event(source: str, user: str, day: str, event_type: str, number: int) -> Output:
    """The ``number``-th event of a type a daily report counted for a user on ``day``.

    Its id is derived from those, so a re-import of the same report sends the same ids;
    ``resolution: day`` tells a reader the time is the day's, not the act's.
    """
    return Output("activity", {
        "id": f"{source}-{day[:10]}-{user}-{event_type}-{number}"[:256], "type": event_type,
        "actor": user, "time": day, "source": source, "resolution": "day",
    })  # fmt: skip


def required_text(doc: dict[str, Any], key: str, reason: str) -> str:
    """``doc[key]`` as non-empty text; a record without it is skipped for ``reason``."""
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Skip(reason, f"no {key}")
    return value.strip()


def fields(value: Any) -> dict[str, Any]:
    """A nested object of a record, or {} when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def id_of(value: Any) -> str | None:
    """An id given as a string or as an object with "id" (Activity Streams allows both)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None
