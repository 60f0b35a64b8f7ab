"""The decoder's fast path may only accept what the pydantic model accepts, with the same result."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stream import jsonutil
from stream.decode import _invalid_from, decode_activity, unwrap_cloudevent
from stream.events import Activity, ActivityEventV1, InvalidEvent
from stream.generator import generate_events


def reference(value: bytes, key: bytes | None) -> Activity | str:
    """The pydantic-only decoder: the contract's definition, slow and sure."""
    try:
        doc = jsonutil.loads(value)
        if isinstance(doc, dict) and "specversion" in doc:
            doc = unwrap_cloudevent(doc)
        try:
            event = ActivityEventV1.model_validate(doc)
        except ValidationError as exc:
            raise _invalid_from(exc) from None
        if (key.decode("utf-8", "replace") if key is not None else None) != event.actor:
            return "key_mismatch"
        return Activity.from_event(event)
    except jsonutil.JSONDecodeError:
        return "not_json"
    except InvalidEvent as exc:
        return exc.reason


def decoded(value: bytes, key: bytes | None) -> Activity | str:
    try:
        return decode_activity(value, key)
    except InvalidEvent as exc:
        return exc.reason


BASE: dict[str, Any] = {"id": "e", "type": "like", "actor": "u1", "time": "2026-03-04T10:00:00Z"}
ODD_VALUES: dict[str, list[Any]] = {
    "time": [
        "2026-03-04T10:00:00.123456Z",
        "2026-03-04T10:00:00.1234567Z",
        "2026-03-04T10:00:00.5+05:30",
        "2026-03-04 10:00:00Z",
        "2026-03-04t10:00:00z",
        "2026-03-04T10:00:00+0100",
        "2026-03-04T10:00:60Z",
        "2026-13-04T10:00:00Z",
        "2026-03-04T10:00:00",
        "2026-03-04",
        "2026-03-04T10:00:00-00:00",
        1772618400,
        None,
    ],
    "actor": ["u\n", "u\t1", "ü-ñ", "x" * 256, "x" * 257, "", 12, None, "a b"],
    "type": ["Like", "poll_vote", "a" * 64, "a" * 65, "9x", "", None, 3],
    "id": ["", "x" * 257, 5, None],
    "object": [{"type": "blog", "id": "b"}, {"type": "kanban", "id": "k"}, {"type": "blog"},
               {"id": "b"}, {"type": "", "id": "b"}, "blog", [], None,
               {"type": "x" * 65, "id": "i"}],
    "community": [None, "c", 5, "c" * 257],
    "source": [None, "slack", {"a": 1}],
    "target_user": [None, "u2", ["u2"]],
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in ODD_VALUES.items() for v in values]
)
def test_odd_values_agree_with_the_model(field: str, value: Any) -> None:
    """Each odd value is accepted or rejected exactly as pydantic would, with the same result."""
    doc = {**BASE, field: value}
    raw = jsonutil.dumps(doc)
    key = value.encode() if field == "actor" and isinstance(value, str) else b"u1"
    assert reference(raw, key) == decoded(raw, key)


def test_generated_events_agree_with_the_model() -> None:
    """A realistic day of generated events decodes identically both ways."""
    for event in generate_events(users=200, days=3, start=date(2026, 3, 1), seed=2):
        raw = jsonutil.dumps(event)
        key = event["actor"].encode()
        assert reference(raw, key) == decoded(raw, key)


TEXT = st.text(min_size=0, max_size=12)
VALUES = st.one_of(
    st.none(), st.integers(-(2**62), 2**62), TEXT, st.booleans(), st.lists(TEXT, max_size=2)
)


@settings(max_examples=400, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["id", "type", "actor", "time", "object", "community", "source"]),
        VALUES,
        max_size=3,
    ),
    drop=st.sets(st.sampled_from(["id", "type", "actor", "time"]), max_size=2),
)
def test_random_records_agree_with_the_model(overrides: dict[str, Any], drop: set[str]) -> None:
    """Whatever the shape, the fast path never accepts what pydantic rejects, nor differs."""
    doc = {k: v for k, v in {**BASE, **overrides}.items() if k not in drop}
    raw = jsonutil.dumps(doc)
    actor = doc.get("actor")
    key = actor.encode() if isinstance(actor, str) else b"u1"
    assert reference(raw, key) == decoded(raw, key)
