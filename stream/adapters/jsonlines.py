"""Reading JSON sources in constant memory: JSON Lines, or one JSON document per file.

A BOM is skipped, blank lines are ignored, a line that is not JSON becomes a record the adapter
skips with its location. A whole-file document (an Activity Streams collection, a SCIM
ListResponse) is read at once: such files are page-sized by their APIs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.adapters.base import Skip, SourceRecord

NOT_JSON = object()


def json_object(record: SourceRecord, what: str) -> dict[str, Any]:
    """The record's JSON object; a line that was not JSON, or not an object, is skipped."""
    if record.raw is NOT_JSON:
        raise Skip("not_json", "the line is not JSON")
    if not isinstance(record.raw, dict):
        raise Skip("not_object", f"{what} is a JSON object")
    return record.raw


def json_records(path: Path, list_keys: tuple[str, ...]) -> Iterator[SourceRecord]:
    """Records of a JSON Lines file, or the items of a document's first list under list_keys."""
    with path.open("r", encoding="utf-8-sig") as handle:
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        handle.seek(0)
        if first == "[" or (first == "{" and _single_document(path)):
            doc = json.load(handle)
            items = doc if isinstance(doc, list) else _items(doc, list_keys)
            for index, item in enumerate(items, start=1):
                yield SourceRecord(f"{path.name}:item {index}", item)
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw: Any = json.loads(line)
            except json.JSONDecodeError:
                raw = NOT_JSON
            yield SourceRecord(f"{path.name}:{number}", raw)


def _single_document(path: Path) -> bool:
    """A file whose first line is not a complete JSON value holds one (pretty-printed) document."""
    with path.open("r", encoding="utf-8-sig") as handle:
        line = handle.readline()
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return True
    return False


def _items(doc: Any, list_keys: tuple[str, ...]) -> list[Any]:
    if isinstance(doc, dict):
        for key in list_keys:
            if isinstance(doc.get(key), list):
                return list(doc[key])
        return [doc]
    return []
