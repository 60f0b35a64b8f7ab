"""Opening source files: gzip or plain, BOM skipped, every byte read counted for the progress bar.

Adapters open their files through :func:`open_text` or :func:`open_binary`; the import runner binds
a :class:`ByteMeter` for the duration of an import, so progress is measured in bytes of input
(compressed bytes for ``.gz``) and works the same for every format without the adapters knowing.
"""

from __future__ import annotations

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


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it ends in .gz (Slack's analytics files are gzipped)."""
    counted = io.BufferedReader(_CountingReader(path.open("rb"), _METER.get()), 1 << 16)
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=counted, mode="rb")  # type: ignore[return-value]
    return counted


def open_text(path: Path, newline: str | None = None) -> IO[str]:
    """The file as UTF-8 text; a BOM (Excel and PowerShell write one) is dropped."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline=newline)


def source_name(path: Path) -> str:
    """The name a file's records are located by: without .gz, which says nothing of the format."""
    return path.name[:-3] if path.name.endswith(".gz") else path.name
