"""The gate on hostile records: each an InvalidEvent with a bounded reason, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from stream import jsonutil
from stream.batch import fold_fetch
from stream.decode import decode_activity
from stream.directory import decode_directory
from stream.events import INVALID_REASONS, MAX_RECORD_BYTES, InvalidEvent
from stream.timebounds import TimeBounds, parse_duration_ms, parse_instant_ms

NOW_MS = parse_instant_ms("2026-12-01T12:00:00Z")
BOUNDS = TimeBounds.at(NOW_MS)
BASE = {"id": "e1", "type": "login", "actor": "u1", "time": "2026-11-30T09:00:00Z"}


def encode(doc: Any) -> bytes:
    return jsonutil.dumps(doc)


def reason_of(value: bytes | None, key: bytes | None = b"u1") -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_activity(value, key, BOUNDS)
    assert caught.value.reason in INVALID_REASONS
    return caught.value.reason


class TestTimes:
    @pytest.mark.parametrize(
        "when",
        [
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "1999-12-31T23:59:59Z",
            "2031-01-01T00:00:00Z",
            "2026-12-01T12:05:01Z",
            1700000000,
            1700000000.5,
            "1700000000",
            "2026-11-30",
            "2026-11-30T09:00:00",
            "2026-13-01T00:00:00Z",
            "\uff12\uff10\uff12\uff16-11-30T09:00:00Z",
        ],
    )
    def test_times_outside_the_window_or_not_rfc3339_are_bad_time(self, when: Any) -> None:
        """Before the floor, past now plus the skew, numbers, naive or non-ASCII digits."""
        assert "bad_time" == reason_of(encode({**BASE, "time": when}))

    def test_the_window_edges_are_inclusive(self) -> None:
        """The floor itself and now plus exactly the skew are believed."""
        floor = decode_activity(encode({**BASE, "time": "2000-01-01T00:00:00Z"}), b"u1", BOUNDS)
        edge = decode_activity(encode({**BASE, "time": "2026-12-01T12:05:00Z"}), b"u1", BOUNDS)
        assert (BOUNDS.earliest_ms, BOUNDS.latest_ms) == (floor.time_ms, edge.time_ms)

    def test_bad_durations_and_instants_are_refused_by_name(self) -> None:
        """Settings parse or say what is wrong."""
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration_ms("banana")
        with pytest.raises(ValueError, match="no UTC offset"):
            parse_instant_ms("2000-01-01T00:00:00")


class TestHostileValues:
    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (None, "not_json"),
            (b"", "not_json"),
            (b"\xff\xfe\x00garbage", "not_json"),
            (b"[" * 100_000 + b"]" * 100_000, "not_json"),
            (
                b'{"id":"e","type":"login","actor":"u1","time":"2026-11-30T09:00:00Z","n":NaN}',
                "not_json",
            ),
            (
                b'{"id":"e","type":"login","actor":"u1","time":"2026-11-30T09:00:00Z","n":1e999}',
                "not_json",
            ),
            (
                b'{"id":"\\ud800","type":"login","actor":"u1","time":"2026-11-30T09:00:00Z"}',
                "not_json",
            ),
            (b"[1, 2]", "not_object"),
            (b'"a string"', "not_object"),
            (b"42", "not_object"),
            (b"x" * (MAX_RECORD_BYTES + 1), "too_large"),
        ],
    )
    def test_undecodable_values(self, value: bytes | None, reason: str) -> None:
        """Tombstones, invalid UTF-8, deep nesting, NaN, lone surrogates, huge values."""
        assert reason == reason_of(value)

    @pytest.mark.parametrize("field", ["id", "actor", "community", "target_user", "source"])
    def test_100kb_ids_are_bad_fields(self, field: str) -> None:
        """No id field takes 100 KB."""
        huge = "u" * 100_000
        key = huge.encode() if field == "actor" else b"u1"
        assert "bad_field" == reason_of(encode({**BASE, field: huge}), key)

    def test_a_100kb_object_id_is_a_bad_field(self) -> None:
        """Nor the object's id."""
        doc = {**BASE, "object": {"type": "post", "id": "p" * 100_000}}
        assert "bad_field" == reason_of(encode(doc))

    @pytest.mark.parametrize("actor", ["u\x00", "u\n1", "\x1b[31mu", "u\x7f"])
    def test_control_characters_in_the_actor_are_bad_fields(self, actor: str) -> None:
        """The actor travels in tab- and newline-separated lines: no control characters."""
        assert "bad_field" == reason_of(encode({**BASE, "actor": actor}), actor.encode())

    def test_a_key_that_is_not_utf8_mismatches(self) -> None:
        """The key is compared as text; invalid UTF-8 never equals the actor."""
        assert "key_mismatch" == reason_of(encode(BASE), b"\xffu1")

    def test_cloudevents_with_a_wrong_specversion(self) -> None:
        """Only CloudEvents 1.0."""
        envelope = {"specversion": "0.3", "type": "x.login", "source": "s", "id": "1", "data": BASE}
        assert "bad_cloudevent" == reason_of(encode(envelope))

    def test_markup_and_odd_unicode_in_ids_are_kept_verbatim(self) -> None:
        """Ids are opaque: markup and other normal forms are not rewritten (see the README)."""
        for actor in ("<script>alert(1)</script>", "e\u0301", "\u00e9", "a\u2028b"):
            activity = decode_activity(encode({**BASE, "actor": actor}), actor.encode(), BOUNDS)
            assert actor == activity.actor


class TestFoldGoesOn:
    def test_an_exception_on_one_record_is_an_internal_error_reject(self) -> None:
        """A bug met by one record dead-letters it with its class; its neighbours are folded."""

        class Record:
            def __init__(self, offset: int, key: Any, value: Any) -> None:
                self.topic, self.partition, self.offset = "t", 0, offset
                self.key, self.value = key, value

        good = encode(BASE)

        # A value whose __len__ raises stands in for any bug the gate could meet.
        class Exploding(bytes):
            def __len__(self) -> int:
                raise RuntimeError("boom")

        records = [
            Record(0, b"u1", good),
            Record(1, b"u1", Exploding(good)),
            Record(2, b"u1", good),
        ]
        folded = fold_fetch({("t", 0): records}, bounds=BOUNDS)
        (reject,) = folded.rejects
        assert ("internal_error", "RuntimeError", 1) == (
            reject.reason,
            reject.exception,
            reject.record.offset,
        )
        (delta,) = folded.deltas
        assert (2, 2) == (delta.events, delta.last_offset)


class TestDirectoryTimes:
    def test_directory_times_are_bounded_too(self) -> None:
        """A profile version in the future, or a creation before 1970, is bad_time."""
        base = {
            "user_id": "u1",
            "status": "enabled",
            "created": "2020-01-01T00:00:00Z",
            "updated": "2026-11-30T00:00:00Z",
        }
        assert decode_directory(encode(base), b"u1", BOUNDS).user_id == "u1"
        old = {**base, "created": "1990-05-01T00:00:00Z"}
        assert decode_directory(encode(old), b"u1", BOUNDS).user_id == "u1"
        for bad in (
            {"updated": "2031-01-01T00:00:00Z"},
            {"created": "1969-01-01T00:00:00Z"},
            {"updated": 1700000000},
        ):
            with pytest.raises(InvalidEvent) as caught:
                decode_directory(encode({**base, **bad}), b"u1", BOUNDS)
            assert "bad_time" == caught.value.reason
