"""Reading JSON sources in constant memory: JSON Lines, or one JSON document per file.

A BOM is skipped, blank lines are ignored, a line that is not JSON becomes a record the adapter
skips with its location. A whole-file document (an Activity Streams collection, a SCIM
ListResponse, a Slack audit page) is read at once: such files are page-sized by their APIs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stream.adapters.base import Skip, SourceRecord
from stream.adapters.files import open_text, source_name

NOT_JSON = object()
DOCUMENT = object()


def json_object(record: SourceRecord, what: str) -> dict[str, Any]:
    """The record's JSON object; a line that was not JSON, or not an object, is skipped."""
    if record.raw is NOT_JSON:
        raise Skip("not_json", "the line is not JSON")
    if not isinstance(record.raw, dict):
        raise Skip("not_object", f"{what} is a JSON object")
    return record.raw


def json_records(path: Path, list_keys: tuple[str, ...]) -> Iterator[SourceRecord]:
    """Records of a JSON Lines file, or the items of a document's first list under list_keys.

    One pass: a file whose first non-blank line is a whole JSON object is JSON Lines (a line that
    is a whole page gives its items); anything else (an array, a pretty-printed document) is one
    document.
    """
    name = source_name(path)
    with open_text(path) as handle:
        lines = _numbered_lines(handle)
        head = next(lines, None)
        if head is None:
            return
        parsed = _parse(head[1]) if head[1].lstrip().startswith("{") else NOT_JSON
        second = None
        if parsed is NOT_JSON and head[1].lstrip().startswith("{"):
            # A broken first line of JSON Lines, or the opening of a pretty-printed document:
            # the next line decides.
            second = next(lines, None)
            if second is not None and isinstance(_parse(second[1]), dict):
                lines = itertools.chain([second], lines)
                second = None
            else:
                parsed = DOCUMENT
        elif parsed is NOT_JSON:
            parsed = DOCUMENT
        if parsed is DOCUMENT:
            rest = (second[1] if second else "") + handle.read()
            doc = json.loads(head[1] + rest)
            items = doc if isinstance(doc, list) else _items(doc, list_keys)
            for index, item in enumerate(items, start=1):
                yield SourceRecord(f"{name}:item {index}", item)
            return
        yield from _line_records(f"{name}:{head[0]}", parsed, list_keys)
        for number, line in lines:
            yield from _line_records(f"{name}:{number}", _parse(line), list_keys)


def _line_records(location: str, parsed: Any, list_keys: tuple[str, ...]) -> Iterator[SourceRecord]:
    """One line's record; a line that is a whole page (an API answer saved minified, or JSON
    Lines of pages) gives its items."""
    page = _page_items(parsed, list_keys)
    if page is None:
        yield SourceRecord(location, parsed)
        return
    for index, item in enumerate(page, start=1):
        yield SourceRecord(f"{location} item {index}", item)


def _page_items(doc: Any, list_keys: tuple[str, ...]) -> list[Any] | None:
    if isinstance(doc, dict):
        for key in list_keys:
            if isinstance(doc.get(key), list):
                return list(doc[key])
    return None


def _numbered_lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return NOT_JSON


def _items(doc: Any, list_keys: tuple[str, ...]) -> list[Any]:
    if isinstance(doc, dict):
        page = _page_items(doc, list_keys)
        return [doc] if page is None else page
    return []
