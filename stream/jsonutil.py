"""The one place JSON is encoded and decoded: a thin orjson wrapper."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes; datetimes as RFC 3339."""
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON with sorted keys, for files kept in the repository."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def loads(raw: bytes | str) -> Any:
    """Parse JSON bytes or text."""
    return orjson.loads(raw)
