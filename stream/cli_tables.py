"""Aligned text tables for ``esn-pulse`` output on a terminal: columns as wide as their content,
numbers to the right, and data from the directory (names, ids) with control characters escaped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeGuard

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """A cell's text: a tab, an escape sequence or a newline in a name cannot move the cursor."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(value))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 user``, ``2,048 users`` (``many`` for an irregular plural)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def number(value: int | float) -> str:
    """``12,345``; a fraction with up to four digits."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """Lines of a table whose columns line up; a column of numbers is right-aligned.

    The last column is not padded (it may be long: a list of communities).
    """
    cells = [[printable(c) for c in header]] + [
        [number(c) if _numeric(c) else printable(c) for c in row] for row in rows
    ]
    right = [all(_numeric(row[i]) for row in rows) and bool(rows) for i in range(len(header))]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = []
    for line in cells:
        parts = [
            text.rjust(width) if right[i] else text.ljust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        if not right[-1]:
            parts[-1] = line[-1]
        lines.append((indent + "  ".join(parts)).rstrip())
    return lines


def _numeric(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
