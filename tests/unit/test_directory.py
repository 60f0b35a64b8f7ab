"""Directory contract v1: decoding, reasons, CSV rosters, the schema file."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import jsonutil
from stream.directory import (
    MembershipV1,
    ProfileV1,
    decode_directory,
    directory_json_schema,
    rows_from_csv,
    updated_ms,
)
from stream.events import InvalidEvent

PROFILE = {
    "user_id": "u1",
    "status": "enabled",
    "created": "2026-01-05T08:00:00Z",
    "updated": "2026-01-05T08:00:00Z",
}
MEMBERSHIP = {
    "kind": "membership",
    "user_id": "u1",
    "community": "c1",
    "role": "owner",
    "op": "add",
    "updated": "2026-01-06T00:00:00+01:00",
}


class TestDecode:
    def test_profile_is_the_default_kind(self) -> None:
        """A record without kind is a profile; optional fields stay empty."""
        record = decode_directory(jsonutil.dumps(PROFILE), b"u1")
        assert isinstance(record, ProfileV1)
        assert (None, 1767600000000) == (record.department, updated_ms(record))

    def test_membership(self) -> None:
        """Memberships carry community, role, op and their own version."""
        record = decode_directory(jsonutil.dumps(MEMBERSHIP), b"u1")
        assert isinstance(record, MembershipV1)
        assert ("c1", "owner", "add", 1767654000000) == (
            record.community,
            record.role,
            record.op,
            updated_ms(record),
        )

    @pytest.mark.parametrize(
        ("doc", "key", "reason"),
        [
            ({k: v for k, v in PROFILE.items() if k != "created"}, b"u1", "missing_field"),
            ({**PROFILE, "status": "gone"}, b"u1", "bad_field"),
            ({**PROFILE, "updated": "2026-01-05T08:00:00"}, b"u1", "bad_time"),
            ({**PROFILE, "department": "R&D\n2"}, b"u1", "bad_field"),
            ({**MEMBERSHIP, "role": "admin"}, b"u1", "bad_field"),
            ({**MEMBERSHIP, "kind": "group"}, b"u1", "bad_field"),
            (PROFILE, b"u2", "key_mismatch"),
            ([PROFILE], b"u1", "not_object"),
        ],
    )
    def test_reasons(self, doc: object, key: bytes, reason: str) -> None:
        """Each kind of bad directory record has its own bounded reason."""
        with pytest.raises(InvalidEvent) as caught:
            decode_directory(jsonutil.dumps(doc), key)
        assert reason == caught.value.reason

    def test_not_json(self) -> None:
        """Bytes that are not JSON are named as such."""
        with pytest.raises(InvalidEvent) as caught:
            decode_directory(b"user_id,status", b"u1")
        assert "not_json" == caught.value.reason


class TestCsv:
    def test_roster_with_bom_quotes_and_empty_cells(self) -> None:
        """A BOM is dropped, quoted newlines stay in the cell, empty cells are left out."""
        text = (
            "\ufeffuser_id,status,created,updated,department,display_name\r\n"
            'u1,enabled,2026-01-05T08:00:00Z,2026-01-05T08:00:00Z,Sales,"Ann\nLee"\r\n'
            "u2,disabled,2026-01-05T08:00:00Z,2026-02-01T08:00:00Z,,\r\n"
        )
        rows = list(rows_from_csv(text))
        assert ["profile", "profile"] == [row["kind"] for row in rows]
        assert "Ann\nLee" == rows[0]["display_name"]
        assert "department" not in rows[1]

    def test_membership_csv_is_recognised_by_its_header(self) -> None:
        """A header with a community column makes membership records."""
        text = "user_id,community,role,op,updated\nu1,c1,member,add,2026-01-05T08:00:00Z\n"
        (row,) = rows_from_csv(text)
        assert "membership" == row["kind"]


def test_schema_file_is_generated_from_the_models() -> None:
    """docs/schemas/directory.v1.schema.json is exactly what the models generate."""
    path = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "directory.v1.schema.json"
    assert jsonutil.dumps_pretty(directory_json_schema()) == path.read_bytes()
