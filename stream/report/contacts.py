"""Who to contact: the people flagged now, for a report built with ``--people`` (it names them).

Owners of communities come first (their silence orphans a community), then the longest silent.
The CSV export neutralises formula prefixes as ``esn-pulse inactive --format csv`` does.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from stream.analytics.days import iso_time
from stream.cli_inactive import ROLES, roles_text, spreadsheet_safe
from stream.flags.machine import Definitions
from stream.fold import MS_PER_DAY
from stream.queries import InactiveUser, inactive_users
from stream.settings import Settings
from stream.store import RedisStore

CSV_HEADER = ("user_id", "flags", "last_seen", "days_silent", "department", *ROLES)


async def contacts(
    store: RedisStore, settings: Settings, definitions: Definitions, now_ms: int
) -> list[InactiveUser]:
    """Users inactive at the first threshold or never active, owners first, longest silent next."""
    rows = {r.user_id: r for r in await inactive_users(store, settings, definitions)}
    for r in await inactive_users(store, settings, definitions, never_active=True):
        rows.setdefault(r.user_id, r)
    owners_first = sorted(rows.values(), key=lambda r: (_silent_since(r), r.user_id))
    return sorted(owners_first, key=lambda r: not r.roles.get("owner"))


def _silent_since(row: InactiveUser) -> int:
    return row.last_seen_ms if row.last_seen_ms is not None else row.created_ms


def days_silent(row: InactiveUser, now_ms: int) -> int:
    """Whole days since the last activity (or the profile's creation)."""
    return max(0, (now_ms - _silent_since(row)) // MS_PER_DAY)


def as_rows(rows: list[InactiveUser], now_ms: int) -> list[dict[str, Any]]:
    """The list as the page's table reads it."""
    return [
        {
            "user_id": r.user_id,
            "flags": r.flags,
            "last_seen": iso_time(r.last_seen_ms),
            "days_silent": days_silent(r, now_ms),
            "department": r.department,
            "roles": roles_text(r.roles),
        }
        for r in rows
    ]


def as_csv(rows: list[InactiveUser], now_ms: int) -> str:
    """The list as CSV, every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for r in rows:
        cells = [r.user_id, " ".join(r.flags), iso_time(r.last_seen_ms) or "",
                 str(days_silent(r, now_ms)), r.department or "",
                 *(" ".join(r.roles.get(role, [])) for role in ROLES)]  # fmt: skip
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()
