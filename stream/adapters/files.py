"""Opening source files: gzip or plain, BOM skipped, every byte read counted for the progress bar.

Adapters open their files through :func:`open_text` or :func:`open_binary`; the import runner binds
a :class:`ByteMeter` for the duration of an import, so progress is measured in bytes of input
(compressed bytes for ``.gz``) and works the same for every format without the adapters knowing.
"""

from __future__ import annotations

import codecs
import fnmatch
import gzip
import io
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class ByteMeter:
    """Bytes of input read so far, of ``total``."""

    total: int = 0
    done: int = 0


_METER: ContextVar[ByteMeter | None] = ContextVar("esn_import_meter", default=None)


def bind_meter(meter: ByteMeter | None) -> None:
    """Count the bytes read by the adapters of this context into ``meter``."""
    _METER.set(meter)


class _CountingReader(io.RawIOBase):
    """A raw file whose reads add to the bound meter."""

    def __init__(self, raw: IO[bytes], meter: ByteMeter | None) -> None:
        self.raw = raw
        self.meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        if self.meter is not None:
            self.meter.done += count
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_binary(path: Path, counted: bool = True) -> IO[bytes]:
    """The file's bytes, decompressed when it ends in .gz (Slack's analytics files are gzipped).

    ``counted`` False: a second read (to locate an error) that the progress meter leaves out.
    """
    meter = _METER.get() if counted else None
    reader = io.BufferedReader(_CountingReader(path.open("rb"), meter), 1 << 16)
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=reader, mode="rb")  # type: ignore[return-value]
    return reader


def open_text(path: Path, newline: str | None = None) -> IO[str]:
    """The file as UTF-8 text; a BOM (Excel and PowerShell write one) is dropped."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline=newline)


def source_name(path: Path) -> str:
    """A file's name without .gz, which says nothing of the format (adapters dispatch on it)."""
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def location_of(path: Path) -> str:
    """The file part of a record's location: its full path, so a user can open it."""
    return str(path.absolute())


def defines(patterns: tuple[str, ...], path: Path) -> bool:
    """Whether a file's name is one a format defines: a pattern as written (``Users.xml``), or
    an extension pattern in any case (``*.json`` matches ``EXPORT.JSON``)."""
    name = path.name
    return any(
        fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.lower(), pattern)
        for pattern in patterns
    )


def with_gzip(*patterns: str) -> tuple[str, ...]:
    """The patterns, and each gzipped (exports are often downloaded compressed)."""
    return patterns + tuple(f"{pattern}.gz" for pattern in patterns)


#: The file patterns of the formats that read JSON (a document, or JSON Lines).
JSON_FILES = with_gzip("*.json", "*.jsonl", "*.ndjson")
CSV_FILES = with_gzip("*.csv")


def utf8_error_at(path: Path) -> str:
    """Where the file's first byte that is not UTF-8 is: "byte N (line L, column C)"."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, line_start = 0, 1, 0
    with open_binary(path, counted=False) as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # The decoder had held back the start of a character from the chunk before.
                at = offset - (len(exc.object) - len(chunk)) + exc.start
                before = chunk[: max(0, at - offset)]
                if b"\n" in before:
                    line += before.count(b"\n")
                    line_start = offset + before.rindex(b"\n") + 1
                return f"byte {at:,} (line {line:,}, column {at - line_start + 1:,})"
            if b"\n" in chunk:
                line += chunk.count(b"\n")
                line_start = offset + chunk.rindex(b"\n") + 1
            offset += len(chunk)
    return f"byte {offset:,} (the end of the file: a character cut short)"
