"""Any CSV of activity, with a column mapping given on the command line or in a YAML file.

The mapping names, for each v1 field, the column it comes from, or a constant written ``=value``:
``actor=User,time=Date,type=Action`` or ``type==login``. Fields: id, type, actor, time (required:
actor, time, and type as a column or a constant), object_type, object_id, community, target_user.
Without an id column, the id is derived from the file and row, so a re-import gives the same ids.
A BOM, quoted newlines and extra columns are fine; a naive time is taken as UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from stream.adapters.base import Output, Skip, SourceRecord, iso_time, type_name
from stream.adapters.csvrows import csv_records
from stream.adapters.files import CSV_FILES

FIELDS: Final = ("id", "type", "actor", "time", "object_type", "object_id", "community",
                 "target_user")  # fmt: skip


def parse_mapping(
    spec: str,
    known: tuple[str, ...] = FIELDS,
    required: tuple[str, ...] = ("actor", "time", "type"),
) -> dict[str, str]:
    """ "actor=User,type==login" or a path to a YAML file of the same pairs."""
    path = Path(spec)
    if path.suffix in (".yml", ".yaml") and path.is_file():
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{spec}: a mapping of field: column")
        pairs = {str(k): str(v) for k, v in loaded.items()}
    else:
        pairs = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            field, sep, source = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r}: expected field=column or field==constant")
            pairs[field.strip()] = source
    unknown = set(pairs) - set(known)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; known: {', '.join(known)}")
    missing = set(required) - set(pairs)
    if missing:
        raise ValueError(f"the mapping needs {sorted(missing)}")
    return pairs


class CsvAdapter:
    """Generic CSV -> esn.activity.v1."""

    name = "csv"
    file_patterns = CSV_FILES

    def __init__(self, mapping: Mapping[str, str], source: str = "csv") -> None:
        self.mapping = dict(mapping)
        self.source = source

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return csv_records(path)

    def value(self, row: dict[str, Any], field: str) -> str | None:
        source = self.mapping.get(field)
        if source is None:
            return None
        if source.startswith("="):
            return source[1:]
        if source not in row:
            raise Skip("missing_column", f"no column {source!r} for {field}")
        text = row[source]
        return text.strip() if isinstance(text, str) and text.strip() else None

    def map(self, record: SourceRecord) -> list[Output]:
        row = record.raw
        actor = self.value(row, "actor")
        if not actor:
            raise Skip("missing_actor", "empty actor")
        raw_type = self.value(row, "type")
        if not raw_type:
            raise Skip("missing_type", "empty type")
        event: dict[str, Any] = {
            "id": self.value(row, "id") or _row_id(record.location),
            "type": type_name(raw_type),
            "actor": actor,
            "time": iso_time(self.value(row, "time"), self.mapping["time"]),
            "source": self.source,
        }
        object_id = self.value(row, "object_id")
        if object_id:
            event["object"] = {"type": self.value(row, "object_type") or "other", "id": object_id}
        for field in ("community", "target_user"):
            text = self.value(row, field)
            if text:
                event[field] = text
        return [Output("activity", event)]


def _row_id(location: str) -> str:
    # Of the file's name and row, not its full path: the same export imported from another
    # folder gives the same ids (as it did when locations held only the name).
    name_and_row = Path(location).name.replace(".gz:", ":", 1)
    return "csv-" + hashlib.sha256(name_and_row.encode()).hexdigest()[:24]
