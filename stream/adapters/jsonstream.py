"""Incremental JSON: the records of a document of any size in flat memory (ijson, yajl2_c).

A document's records are the items of a top-level array, or of the first array under one of the
format's list keys ("items", "value", "entries"...) of a top-level object; any other top-level
value is one record. Each record is built from parse events under caps: one over them becomes an
:class:`Unusable` record (a counted skip) and reading goes on. What cannot be read on (cut short,
invalid JSON or UTF-8, one token too large to hold) raises :class:`Broken` with the byte offset,
line and column where it broke.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import ijson  # type: ignore[import-untyped]  # ijson ships no type hints

from stream.adapters.base import Broken, Unusable

#: A record larger than this (its text, about) is skipped as too_large: no export has one.
MAX_RECORD_BYTES: Final = 1 << 20
#: Deeper than this is skipped as too_deep: orjson's own limit, which the worker decodes with.
MAX_DEPTH: Final = 1024
#: yajl holds a whole string or number before it says anything; past this many bytes without a
#: parse event the file is refused, so one hostile token cannot take the memory.
MAX_TOKEN_BYTES: Final = 4 << 20
CHUNK: Final = 1 << 16
#: Several documents in a row are read as one stream. Numbers are not parsed by yajl as doubles
#: (it refuses integers past 64 bits and floats past a double's range as syntax errors): ijson
#: gives ints and Decimals, and the builder makes floats of the Decimals, as orjson would.
OPTIONS: Final = {"multiple_values": True}


@dataclass(frozen=True)
class Item:
    """A record of a document: the top-level value's number, its number in the records array
    (None when the value itself is the record), and the record (or Unusable)."""

    value: int
    item: int | None
    raw: Any


@dataclass(frozen=True)
class Origin:
    """Where the streamed bytes start in the file: a byte offset and its line (1-based)."""

    offset: int = 0
    line: int = 1


class _Builder:
    """One record built from parse events; past the caps it keeps only its depth.

    The loop is written out flat, with the state in locals: it runs once per parse event, and
    method calls there cost as much as the parsing.
    """

    __slots__ = ("depth", "done", "key", "refused", "result", "size", "stack")

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.key: str = ""
        self.size = 0
        self.depth = 0
        self.refused: Unusable | None = None
        self.result: Any = None
        self.done = False

    def add(self, event: str, value: Any) -> bool:
        """Take one event; True when the record is complete (then ``result`` holds it)."""
        self.run([(event, value)], 0)
        return self.done

    def run(self, events: list[tuple[str, Any]], index: int) -> int:
        """Take events from ``index`` until the record is complete (``done``) or the events
        end; the index of the first event not taken."""
        stack, key, size, depth = self.stack, self.key, self.size, self.depth
        refused = self.refused
        count = len(events)
        while index < count:
            event, value = events[index]
            index += 1
            if refused is not None:
                if event == "start_map" or event == "start_array":
                    depth += 1
                elif event == "end_map" or event == "end_array":
                    depth -= 1
                if depth == 0:
                    self.result, self.done = refused, True
                    break
                continue
            if event == "map_key":
                key = value
                size += len(value)
                continue
            if event == "end_map" or event == "end_array":
                depth -= 1
                done = stack.pop()
                if depth == 0:
                    self.result, self.done = done, True
                    break
                continue
            if event == "start_map" or event == "start_array":
                depth += 1
                item: Any = {} if event == "start_map" else []
                size += 8
            else:
                item = value
                kind = type(value)
                if kind is str:
                    size += len(value)
                else:
                    size += 8
                    if kind is Decimal:
                        item = value = float(value)  # 1e400 is inf, as orjson reads it
            if stack:
                parent = stack[-1]
                if type(parent) is dict:
                    parent[key] = item
                else:
                    parent.append(item)
            if depth > MAX_DEPTH or size > MAX_RECORD_BYTES:
                refused = _refusal(depth > MAX_DEPTH)
                stack = []  # what was built goes now: that is the point of the caps
                if depth == 0:
                    self.result, self.done = refused, True
                    break
                continue
            if item is not value:
                stack.append(item)
            elif depth == 0:
                self.result, self.done = value, True
                break
        self.stack, self.key, self.size, self.depth = stack, key, size, depth
        self.refused = refused
        return index


def _refusal(too_deep: bool) -> Unusable:
    if too_deep:
        return Unusable("too_deep", f"nested deeper than {MAX_DEPTH} levels")
    return Unusable("too_large", f"a record of more than {MAX_RECORD_BYTES:,} bytes")


class _Records:
    """Parse events in, records out, across chunks."""

    def __init__(self, list_keys: Iterable[str]) -> None:
        self.list_keys = frozenset(list_keys)
        self.depth = 0  # of the document, outside any record being built
        self.value = 0
        self.item = 0
        self.items_depth = 0  # depth of the array whose elements are records; 0: none
        self.top: _Builder | None = None  # a top-level object, until it turns out to be a page
        self.page_key = False  # the top object's last key is a list key
        self.record: _Builder | None = None

    def feed(self, events: list[tuple[str, Any]]) -> Iterator[Item]:
        index, count = 0, len(events)
        while index < count:
            record = self.record
            if record is None and self.items_depth and self.depth == self.items_depth:
                event = events[index][0]
                if event != "end_map" and event != "end_array":
                    record = self.record = _Builder()
            if record is not None:
                index = record.run(events, index)
                if record.done:
                    self.item += 1
                    self.record = None
                    yield Item(self.value, self.item, record.result)
                continue
            event, value = events[index]
            index += 1
            starts = event == "start_map" or event == "start_array"
            ends = event == "end_map" or event == "end_array"
            if self.depth == 0:
                self.value += 1
                self.item = 0
                if event == "start_array":
                    self.items_depth = 1
                elif event == "start_map":
                    self.top = _Builder()
                    self.top.add(event, value)
                else:
                    yield Item(self.value, None, value)
                    continue
                self.depth = 1
                continue
            if self.top is not None:
                if self.page_key and event == "start_array" and self.depth == 1:
                    # A page: its other fields are not records.
                    self.top, self.page_key = None, False
                    self.items_depth = 2
                    self.depth = 2
                    continue
                self.page_key = event == "map_key" and self.depth == 1 and value in self.list_keys
                self.depth += 1 if starts else -1 if ends else 0
                if self.top.add(event, value):
                    top, self.top = self.top, None
                    yield Item(self.value, None, top.result)
                continue
            # Past a page's records array, or closing the records array: only the depth matters.
            if ends and self.depth == self.items_depth:
                self.items_depth = 0
            self.depth += 1 if starts else -1 if ends else 0


def document_items(
    chunks: Iterable[bytes],
    list_keys: Iterable[str],
    replay: Callable[[], Iterator[bytes]],
    origin: Origin = Origin(),
) -> Iterator[Item]:
    """The records of the JSON values in ``chunks`` (one document, or several in a row).

    ``replay`` gives the same bytes again: only to find the exact place of a syntax error.
    """
    events: list[tuple[str, Any]] = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, **OPTIONS)
    records = _Records(list_keys)
    fed = since_event = 0
    for chunk in chunks:
        try:
            parser.send(chunk)
        except ijson.JSONError as exc:
            yield from records.feed(events)
            raise _located(exc, replay, origin, fed) from None
        if events:
            since_event = 0
            yield from records.feed(events)
            del events[:]
        else:
            since_event += len(chunk)
            if since_event > MAX_TOKEN_BYTES:
                raise Broken(
                    _where(origin, fed),
                    f"one JSON token of more than {MAX_TOKEN_BYTES:,} bytes (refused: it would "
                    "be held whole in memory)",
                )
        fed += len(chunk)
    try:
        parser.close()
    except ijson.JSONError as exc:
        yield from records.feed(events)
        raise Broken(_where(origin, fed), f"JSON cut short ({_first_line(exc)})") from None
    yield from records.feed(events)


def _located(exc: Exception, replay: Callable[[], Iterator[bytes]], origin: Origin,
             chunk_start: int) -> Broken:  # fmt: skip
    """The error at its exact byte: the same bytes fed again, the failing chunk byte by byte."""
    events: list[tuple[str, Any]] = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, **OPTIONS)
    offset, line, line_start = 0, origin.line, 0
    for chunk in replay():
        if offset + len(chunk) <= chunk_start:
            parser.send(chunk)
            del events[:]
            line, line_start = _lines(chunk, offset, line, line_start)
            offset += len(chunk)
            continue
        for index in range(len(chunk)):
            try:
                parser.send(chunk[index : index + 1])
            except ijson.JSONError:
                line, line_start = _lines(chunk[:index], offset, line, line_start)
                at = offset + index
                column = at - line_start + 1
                where = f"byte {origin.offset + at:,} (line {line:,}, column {column:,})"
                return Broken(where, f"not valid JSON ({_first_line(exc)})")
            del events[:]
        break
    return Broken(_where(origin, chunk_start), f"not valid JSON ({_first_line(exc)})")


def _lines(data: bytes, offset: int, line: int, line_start: int) -> tuple[int, int]:
    """The line number and line start offset after ``data``, read at ``offset``."""
    count = data.count(b"\n")
    if not count:
        return line, line_start
    return line + count, offset + data.rindex(b"\n") + 1


def _where(origin: Origin, fed: int) -> str:
    return f"byte {origin.offset + fed:,}"


def _first_line(exc: Exception) -> str:
    """yajl's message without its multi-line picture of the spot."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
