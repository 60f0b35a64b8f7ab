"""Broken files: reading a file's records until it breaks, and saying where it broke.

A file breaks when it cannot be read on: cut short, not well-formed, corrupt compressed data,
bytes that are not UTF-8 where text is required, or unreadable from the disk. The adapters say
where when they can (line and column, byte offset); otherwise the break is located after the
last record read whole.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.adapters.base import Adapter, Broken, SourceRecord
from stream.adapters.files import location_of, utf8_error_at


@dataclass(frozen=True)
class BrokenFile:
    """A file that broke: where, what was found there, and how many of its records came before
    (those were read, and sent unless a dry run)."""

    path: str
    where: str
    detail: str
    records_before: int

    def as_json(self) -> dict[str, Any]:
        return {"file": self.path, "where": self.where, "detail": self.detail,
                "records_before": self.records_before}  # fmt: skip

    def skip_line(self) -> tuple[str, str, str]:
        """The (location, reason, detail) the --skipped file lists it with."""
        return f"{self.path}:{self.where}", "broken_file", self.detail


class RecordReader:
    """The file's records in order; when it breaks, the iteration ends and ``broken`` says how."""

    def __init__(self, adapter: Adapter, path: Path) -> None:
        self.path = path
        self.records: Iterator[SourceRecord] = iter(adapter.records(path))
        self.count = 0
        self.last: str | None = None
        self.broken: BrokenFile | None = None

    def __iter__(self) -> RecordReader:
        return self

    def __next__(self) -> SourceRecord:
        if self.broken is not None:
            raise StopIteration
        try:
            record = next(self.records)
        except StopIteration:
            raise
        except Exception as exc:  # every way a file can fail to read on is reported, not raised
            where, detail = self._located(exc)
            self.broken = BrokenFile(str(self.path), where, detail[:300], self.count)
            raise StopIteration from None
        self.count += 1
        self.last = record.location
        return record

    def _located(self, exc: Exception) -> tuple[str, str]:
        # The line already names the file by its full path: the last record by the file's name.
        last = (self.last or "").removeprefix(location_of(self.path) + ":")
        named = f"{self.path.name}:{last}" if last != self.last else last
        after = f"after record {self.count:,} ({named})" if self.last else "before its first record"
        if isinstance(exc, Broken):
            return exc.where, exc.detail
        if isinstance(exc, UnicodeDecodeError):
            return utf8_error_at(self.path), "not UTF-8 text (save it as UTF-8)"
        if isinstance(exc, EOFError):
            return after, f"compressed data cut short ({exc})"
        if isinstance(exc, zlib.error | gzip.BadGzipFile):
            return after, f"corrupt compressed data ({exc})"
        if isinstance(exc, OSError):
            return after, f"cannot be read: {exc.strerror or exc}"
        if isinstance(exc, csv.Error):
            return after, f"not CSV ({exc})"
        return after, f"cannot be read on ({type(exc).__name__}: {exc})"
