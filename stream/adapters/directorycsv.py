"""A directory from CSV: profiles (HR or identity-provider exports), or community memberships.

Columns are the directory contract's own names by default (``user_id``, ``status``, ``created``,
``updated``, ``department``, ``display_name``; memberships: ``user_id``, ``community``, ``role``,
``op``, ``updated``), or mapped with ``--map user_id=Email,created=HireDate,status=Active``
(``field==constant`` for a fixed value). A file with a ``community`` field holds memberships.
Status may be written enabled/disabled, active/inactive, true/false, yes/no or 1/0. Without an
``updated`` column a record's version is the file's modification time (the export's time), so
the latest export wins over earlier ones whatever order they are imported in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import Output, Skip, SourceRecord, Unusable, iso_time
from stream.adapters.csvrows import cell, csv_records
from stream.adapters.files import CSV_FILES

PROFILE_FIELDS: Final = ("user_id", "status", "created", "updated", "department", "display_name")
MEMBERSHIP_FIELDS: Final = ("user_id", "community", "role", "op", "updated")
FIELDS: Final = tuple(dict.fromkeys(PROFILE_FIELDS + MEMBERSHIP_FIELDS))
ENABLED: Final = frozenset({"enabled", "active", "true", "yes", "1", "y"})
DISABLED: Final = frozenset(
    {"disabled", "inactive", "false", "no", "0", "n", "suspended", "terminated"}
)


class DirectoryCsvAdapter:
    """Directory CSV -> esn.directory.v1 profiles or memberships."""

    name = "directory-csv"
    file_patterns = CSV_FILES

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})

    def records(self, path: Path) -> Iterator[SourceRecord]:
        as_of = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
        for record in csv_records(path):
            if isinstance(record.raw, Unusable):
                yield record
            else:
                yield SourceRecord(record.location, (record.raw, as_of))

    def value(self, row: dict[str, str], field: str) -> str | None:
        source = self.mapping.get(field, field)
        if source.startswith("="):
            return source[1:] or None
        return cell(row, source)

    def map(self, record: SourceRecord) -> list[Output]:
        row, as_of = record.raw
        user = self.value(row, "user_id")
        if user is None:
            raise Skip("missing_user", f"empty {self.mapping.get('user_id', 'user_id')}")
        updated_text = self.value(row, "updated")
        updated = iso_time(updated_text, "updated") if updated_text else as_of
        if self.value(row, "community") is not None or "community" in self.mapping:
            return [Output("directory", self._membership(row, user, updated))]
        created = iso_time(self.value(row, "created"), self.mapping.get("created", "created"))
        status = (self.value(row, "status") or "enabled").lower()
        if status not in ENABLED | DISABLED:
            raise Skip("bad_field", f"status {status!r}")
        profile: dict[str, Any] = {
            "kind": "profile", "user_id": user,
            "status": "enabled" if status in ENABLED else "disabled",
            "created": created, "updated": updated,
        }  # fmt: skip
        for field in ("department", "display_name"):
            text = self.value(row, field)
            if text is not None:
                profile[field] = text
        return [Output("directory", profile)]

    def _membership(self, row: dict[str, str], user: str, updated: str) -> dict[str, Any]:
        community = self.value(row, "community")
        if community is None:
            raise Skip("missing_field", "empty community")
        return {
            "kind": "membership", "user_id": user, "community": community,
            "role": (self.value(row, "role") or "member").lower(),
            "op": (self.value(row, "op") or "add").lower(), "updated": updated,
        }  # fmt: skip
