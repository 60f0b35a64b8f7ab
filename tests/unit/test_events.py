"""The v1 contract decoder: what it accepts, how it normalises, and why it rejects."""

from __future__ import annotations

import pytest

from stream import jsonutil
from stream.decode import decode_activity
from stream.events import (
    INVALID_REASONS,
    NO_OBJECT,
    OTHER,
    Activity,
    InvalidEvent,
    activity_json_schema,
)

BASE = {"id": "e1", "type": "comment", "actor": "u1", "time": "2026-03-04T10:00:00.250+01:00"}


def encode(doc: object) -> bytes:
    return jsonutil.dumps(doc)


class TestAccepts:
    def test_plain_event_is_normalised_to_utc_milliseconds(self) -> None:
        """The offset is honoured: 10:00:00.250+01:00 is 09:00:00.250Z."""
        activity = decode_activity(encode(BASE), b"u1")
        assert Activity("e1", "u1", 1772614800250, "comment", NO_OBJECT, "comment") == activity

    def test_z_suffix_is_utc(self) -> None:
        """RFC 3339's Z is accepted as UTC."""
        activity = decode_activity(encode({**BASE, "time": "2026-03-04T09:00:00.250Z"}), b"u1")
        assert activity.time_ms == 1772614800250

    def test_unknown_type_is_kept_as_other_with_its_raw_name(self) -> None:
        """A type the contract does not know is counted, not rejected."""
        activity = decode_activity(encode({**BASE, "type": "poll_vote"}), b"u1")
        assert (activity.type, activity.raw_type) == (OTHER, "poll_vote")

    def test_object_type_known_and_unknown(self) -> None:
        """Known object types pass through; others fold into "other"."""
        blog = decode_activity(encode({**BASE, "object": {"type": "blog", "id": "b"}}), b"u1")
        odd = decode_activity(encode({**BASE, "object": {"type": "kanban", "id": "k"}}), b"u1")
        assert (blog.object_type, odd.object_type) == ("blog", OTHER)

    def test_extra_fields_are_ignored(self) -> None:
        """Producers may add fields; v1 readers must not break on them."""
        assert decode_activity(encode({**BASE, "tenant": "acme", "v": 2}), b"u1").id == "e1"

    def test_cloudevent_structured_record(self) -> None:
        """A CloudEvents 1.0 envelope maps id, time, subject and type suffix onto v1."""
        envelope = {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/connections",
            "type": "com.hcl.connections.like",
            "subject": "u9",
            "time": "2026-03-04T09:00:00Z",
            "data": {"object": {"type": "post", "id": "p1"}},
        }
        activity = decode_activity(encode(envelope), b"u9")
        assert (
            activity.id,
            activity.actor,
            activity.type,
            activity.object_type,
        ) == ("ce-1", "u9", "like", "post")

    def test_cloudevent_data_wins_over_envelope(self) -> None:
        """Fields inside data take precedence over the envelope's."""
        envelope = {"specversion": "1.0", "id": "ce-1", "type": "x.view", "data": BASE}
        activity = decode_activity(encode(envelope), b"u1")
        assert (activity.id, activity.type) == ("e1", "comment")


class TestRejects:
    @pytest.mark.parametrize(
        ("raw", "key", "reason"),
        [
            (b"", b"u1", "not_json"),
            (b"{oops", b"u1", "not_json"),
            (b"[1]", b"u1", "not_object"),
            (encode({k: v for k, v in BASE.items() if k != "time"}), b"u1", "missing_field"),
            (encode({**BASE, "time": "tomorrow"}), b"u1", "bad_time"),
            (encode({**BASE, "time": "2026-03-04T10:00:00"}), b"u1", "bad_time"),
            (encode({**BASE, "type": "Bad Type"}), b"u1", "bad_field"),
            (encode({**BASE, "actor": ""}), b"", "bad_field"),
            (encode(BASE), b"u2", "key_mismatch"),
            (encode(BASE), None, "key_mismatch"),
            (encode({"specversion": "0.3", "data": BASE}), b"u1", "bad_cloudevent"),
            (encode({"specversion": "1.0", "data_base64": "e30="}), b"u1", "bad_cloudevent"),
        ],
    )
    def test_reason(self, raw: bytes, key: bytes | None, reason: str) -> None:
        """Each kind of bad record gets its own bounded reason."""
        with pytest.raises(InvalidEvent) as caught:
            decode_activity(raw, key)
        assert reason == caught.value.reason
        assert reason in INVALID_REASONS
        assert caught.value.detail


def test_schema_file_is_generated_from_the_model() -> None:
    """docs/schemas/activity.v1.schema.json is exactly what the model generates."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "activity.v1.schema.json"
    assert jsonutil.dumps_pretty(activity_json_schema()) == path.read_bytes()
