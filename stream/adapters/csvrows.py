"""Reading CSV sources in constant memory: rows as dicts, located by the line they end on.

A BOM, quoted newlines and extra columns are fine; header names are stripped of spaces (exports
pad them). Every CSV format (generic, directory, Graph usage reports, Purview audit) reads here.
A row with bad quoting, or larger than a record may be, is a skip (``bad_csv``, ``too_large``);
a quoted field still open at the end of the file, a runaway field and bytes that are not UTF-8
break the file (:class:`Broken`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import Broken, SourceRecord, Unusable
from stream.adapters.files import location_of, open_text, utf8_error_at
from stream.adapters.jsonstream import MAX_RECORD_BYTES

#: Audit exports carry whole JSON documents in a cell, so the default 128 KiB is too small; a
#: field larger than this is a quote that never closed, swallowing the file: refused, not held.
FIELD_LIMIT: Final = 16 << 20
csv.field_size_limit(FIELD_LIMIT)


def csv_records(path: Path) -> Iterator[SourceRecord]:
    """Each row as {column: text}; the location is the physical line where the row ends."""
    name = location_of(path)
    with open_text(path, newline="") as handle:
        # strict: a quote left open at the end of the file is an error, not a last field that
        # silently holds the rest of the file.
        reader = csv.reader(handle, strict=True)
        try:
            columns = [column.strip() for column in _rows(reader, name, None)]
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise Broken(utf8_error_at(path), "not UTF-8 text (save the export as UTF-8)") from None
        while True:
            try:
                row = _rows(reader, name, columns)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise Broken(utf8_error_at(path), "not UTF-8 text (save it as UTF-8)") from None
            if isinstance(row, SourceRecord):
                yield row
                continue
            if not any(cell.strip() for cell in row):
                continue
            if sum(len(cell) for cell in row) > MAX_RECORD_BYTES:
                detail = f"a row of more than {MAX_RECORD_BYTES:,} characters"
                yield SourceRecord(f"{name}:line {reader.line_num}", Unusable("too_large", detail))
                continue
            # A short row (a truncated export) has empty cells, as csv.DictReader would give.
            values = {column: row[i] if i < len(row) else "" for i, column in enumerate(columns)}
            yield SourceRecord(f"{name}:line {reader.line_num}", values)


def _rows(reader: Any, name: str, columns: list[str] | None) -> Any:
    """The next row, or the skip of a row with bad quoting; Broken at a quote open at the end
    of the file or a runaway field; StopIteration at the end."""
    started = reader.line_num + 1
    try:
        return next(reader)
    except csv.Error as exc:
        message = str(exc)
        if "unexpected end of data" in message:
            raise Broken(f"line {reader.line_num:,}", f"the file ends inside a quoted field "
                         f"opened on line {started:,} (cut short?)") from None  # fmt: skip
        if "field larger than field limit" in message:
            raise Broken(
                f"line {reader.line_num:,}",
                f"a field of more than {FIELD_LIMIT:,} "
                f"characters from line {started:,} (a quote not closed?)",
            ) from None
        if columns is None:
            raise Broken("line 1", f"the header is not CSV ({message})") from None
        return SourceRecord(f"{name}:line {reader.line_num}", Unusable("bad_csv", message))


def cell(row: dict[str, str], column: str) -> str | None:
    """A cell's text, stripped; None when the column is missing or the cell is empty."""
    text = row.get(column)
    return text.strip() if isinstance(text, str) and text.strip() else None
