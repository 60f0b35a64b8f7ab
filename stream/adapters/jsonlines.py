"""Reading JSON sources in constant memory: JSON Lines, or JSON documents of any size.

A BOM is skipped, blank lines are ignored, a line that is not JSON is a record skipped with its
location (``not_json``, ``not_utf8``, ``too_deep``). A file whose first line is not a whole JSON
object is a document (an Activity Streams collection, a SCIM ListResponse, a Management API blob,
a pretty-printed page) and is streamed, as is any line longer than a record may be (a page saved
minified on one line): memory stays flat whatever the size. A document that is cut short or not
valid JSON, and a last line cut short, raise :class:`Broken`; what came before was read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stream import jsonutil
from stream.adapters.base import Skip, SourceRecord, Unusable
from stream.adapters.files import location_of, open_binary
from stream.adapters.jsonstream import CHUNK, MAX_RECORD_BYTES, Origin, document_items

BOM = b"\xef\xbb\xbf"
#: A line longer than this is streamed, not parsed whole (a record may not be larger anyway).
LINE_LIMIT = MAX_RECORD_BYTES


def json_object(record: SourceRecord, what: str) -> dict[str, Any]:
    """The record's JSON object; a record that is not an object is skipped."""
    if isinstance(record.raw, Unusable):
        raise Skip(record.raw.reason, record.raw.detail)
    if not isinstance(record.raw, dict):
        raise Skip("not_object", f"{what} is a JSON object")
    return record.raw


@dataclass
class _Line:
    number: int
    offset: int  # of its first byte in the (decompressed) file
    text: bytes
    whole: bool  # False: longer than LINE_LIMIT, the rest is still to be read

    @property
    def newline(self) -> bool:
        return self.text.endswith(b"\n")


class _Lines:
    """A binary file's lines, numbered, with their offsets; no line is read whole past the limit."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.number = 0
        self.offset = 0

    def next(self) -> _Line | None:
        while True:
            text = self.handle.readline(LINE_LIMIT + 1)
            if not text:
                return None
            self.number += 1
            line = _Line(self.number, self.offset, text,
                         len(text) <= LINE_LIMIT or text.endswith(b"\n"))  # fmt: skip
            self.offset += len(text)
            if line.number == 1 and text.startswith(BOM):
                line.text, line.offset = text[len(BOM) :], len(BOM)
            if not line.whole or line.text.strip():
                return line

    def rest_of_line(self, line: _Line) -> Iterator[bytes]:
        """The bytes of a long line after what was read of it, in chunks; sets ``line.text``
        to its last chunk (so ``line.newline`` tells whether the line was ended)."""
        chunk = line.text
        while not chunk.endswith(b"\n"):
            chunk = self.handle.readline(CHUNK)
            if not chunk:
                return
            self.offset += len(chunk)
            line.text = chunk
            yield chunk


def json_records(path: Path, list_keys: tuple[str, ...]) -> Iterator[SourceRecord]:
    """Records of a JSON Lines file, or the items of a document's first list under list_keys.

    One pass: a file whose first non-blank line is a whole JSON object is JSON Lines (a line that
    is a whole page gives its items); anything else (an array, a pretty-printed document) is a
    document.
    """
    name = location_of(path)
    with open_binary(path) as handle:
        lines = _Lines(handle)
        head = lines.next()
        if head is None:
            return
        pending: list[_Line] = []
        if head.whole and head.text.lstrip().startswith(b"{"):
            parsed = _parse(head.text)
            if isinstance(parsed, Unusable):
                # A broken first line of JSON Lines, or the opening of a pretty-printed document:
                # the next line decides.
                second = lines.next()
                if second is None or not second.whole or not isinstance(_parse(second.text), dict):
                    yield from _document(path, name, list_keys, Origin(head.offset, head.number))
                    return
                pending.append(second)
            pending.insert(0, head)
        elif head.whole:
            yield from _document(path, name, list_keys, Origin(head.offset, head.number))
            return
        else:
            pending.append(head)
        for line in itertools.chain(pending, iter(lines.next, None)):
            yield from _line_records(path, name, lines, line, list_keys)


def _document(path: Path, name: str, list_keys: tuple[str, ...],
              origin: Origin) -> Iterator[SourceRecord]:  # fmt: skip
    """The records of a file that is one document (or several in a row), streamed from where
    it starts (read again from there: what the sniffing read is a line or two)."""
    chunks = _replay(path, origin.offset, counted=True)
    replay = lambda: _replay(path, origin.offset)  # noqa: E731
    for number, item in enumerate(document_items(chunks, list_keys, replay, origin), start=1):
        yield SourceRecord(f"{name}:item {number}", item.raw)


def _line_records(path: Path, name: str, lines: _Lines, line: _Line,
                  list_keys: tuple[str, ...]) -> Iterator[SourceRecord]:  # fmt: skip
    """One line's records: the line itself, or a page's items (an API answer saved minified, or
    JSON Lines of pages); a line too long to parse whole is streamed."""
    location = f"{name}:{line.number}"
    parsed = _parse(line.text) if line.whole else None
    # Streamed: a line too long to parse whole, a page with a record too deep for orjson (its
    # other records are good), and a last line that is not JSON (cut short, or says why).
    streamed = not line.whole or (isinstance(parsed, Unusable) and (
        parsed.reason == "too_deep" or not line.newline))  # fmt: skip
    if streamed:
        origin = Origin(line.offset, line.number)
        chunks = itertools.chain([line.text], lines.rest_of_line(line))
        # Such a line is a document of its own (a page saved minified): broken, it breaks the
        # file, as a document would, rather than losing the rest of the page as one skip.
        items = document_items(chunks, list_keys, lambda: _replay(path, line.offset), origin)
        for item in items:
            where = location if item.item is None else f"{location} item {item.item}"
            yield SourceRecord(where, item.raw)
        return
    page = _page_items(parsed, list_keys)
    if page is None:
        yield SourceRecord(location, parsed)
        return
    for index, item in enumerate(page, start=1):
        yield SourceRecord(f"{location} item {index}", item)


def _page_items(doc: Any, list_keys: tuple[str, ...]) -> list[Any] | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in list_keys:
            if isinstance(doc.get(key), list):
                return list(doc[key])
    return None


def _parse(line: bytes) -> Any:
    """A line's JSON value, or the Unusable it is."""
    try:
        return jsonutil.loads(line)
    except jsonutil.JSONDecodeError as exc:
        message = str(exc)
        if "depth limit" in message:
            return Unusable("too_deep", message)
        if "UTF-8" in message:
            return Unusable("not_utf8", message)
        return Unusable("not_json", f"the line is not JSON ({message})")


def _replay(path: Path, offset: int, counted: bool = False) -> Iterator[bytes]:
    """The file's bytes from ``offset``; counted by the progress meter only when asked."""
    with open_binary(path, counted=counted) as handle:
        while offset > 0:
            skipped = len(handle.read(min(offset, CHUNK)))
            if not skipped:
                return
            offset -= skipped
        yield from iter(lambda: handle.read(CHUNK), b"")
