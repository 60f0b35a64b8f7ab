"""Reading CSV sources in constant memory: rows as dicts, located by the line they end on.

A BOM, quoted newlines and extra columns are fine; header names are stripped of spaces (exports
pad them). Every CSV format (generic, directory, Graph usage reports, Purview audit) reads here.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from stream.adapters.base import SourceRecord
from stream.adapters.files import open_text, source_name

# Audit exports carry whole JSON documents in a cell; the default 128 KiB limit is too small.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def csv_records(path: Path) -> Iterator[SourceRecord]:
    """Each row as {column: text}; the location is the physical line where the row ends."""
    name = source_name(path)
    with open_text(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        columns = [column.strip() for column in header]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            # A short row (a truncated export) has empty cells, as csv.DictReader would give.
            values = {column: row[i] if i < len(row) else "" for i, column in enumerate(columns)}
            yield SourceRecord(f"{name}:line {reader.line_num}", values)


def cell(row: dict[str, str], column: str) -> str | None:
    """A cell's text, stripped; None when the column is missing or the cell is empty."""
    text = row.get(column)
    return text.strip() if isinstance(text, str) and text.strip() else None
