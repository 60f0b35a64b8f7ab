"""The worker's gate: raw Kafka bytes become an :class:`Activity` or raise :class:`InvalidEvent`.

A hand-written fast path accepts the common, plainly valid record in about a third of pydantic's
time; anything it is not sure of goes to the pydantic model, which stays the definition of the
contract and names what is wrong. The fast path may only accept what pydantic accepts, with the
same result: a unit test holds the two to that over a corpus of valid and odd records.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from stream import jsonutil
from stream.events import (
    ACTOR_PATTERN,
    KNOWN_OBJECT_TYPES,
    KNOWN_TYPES,
    MAX_RECORD_BYTES,
    NO_OBJECT,
    OTHER,
    TYPE_PATTERN,
    Activity,
    ActivityEventV1,
    InvalidEvent,
    epoch_ms,
)
from stream.timebounds import TimeBounds

# Stricter than both fromisoformat and pydantic: what it matches, both read the same way.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})\Z"
)
_ACTOR: Final = re.compile(ACTOR_PATTERN)
_TYPE: Final = re.compile(TYPE_PATTERN)
_OPTIONAL_TEXT: Final = ("community", "target_user", "source")


def decode_activity(
    value: bytes | None, key: bytes | None, bounds: TimeBounds | None = None
) -> Activity:
    """Validate one raw record (plain v1 JSON or a CloudEvents 1.0 structured record).

    ``bounds`` is the window of believable event times; the worker passes one per fetch, and
    without it the default window at this moment applies.
    """
    doc = load_json_record(value)
    if bounds is None:
        bounds = TimeBounds.at()
    if type(doc) is dict:
        if "specversion" in doc:
            doc = unwrap_cloudevent(doc)
        fast = _fast_activity(doc)
        if fast is not None:
            check_key(key, fast.actor, "actor")
            bounds.check(fast.time_ms, doc["time"])
            return fast
    try:
        event = ActivityEventV1.model_validate(doc)
    except ValidationError as exc:
        raise _invalid_from(exc) from None
    check_key(key, event.actor, "actor")
    activity = Activity.from_event(event)
    bounds.check(activity.time_ms, doc["time"])
    return activity


def load_json_record(value: bytes | None) -> Any:
    """Parse a record's value, naming an empty or non-JSON one as ``not_json``."""
    if not value:
        raise InvalidEvent("not_json", "record has no value")
    if len(value) > MAX_RECORD_BYTES:
        raise InvalidEvent("too_large", f"value of {len(value)} bytes (at most {MAX_RECORD_BYTES})")
    try:
        return jsonutil.loads(value)
    except jsonutil.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None


def _fast_activity(doc: dict[str, Any]) -> Activity | None:
    """The Activity of a plainly valid record, or None to let pydantic decide."""
    event_id, event_type = doc.get("id"), doc.get("type")
    actor, when = doc.get("actor"), doc.get("time")
    if type(event_id) is not str or not 0 < len(event_id) <= 256:
        return None
    if type(actor) is not str or not 0 < len(actor) <= 256 or not _ACTOR.fullmatch(actor):
        return None
    if type(event_type) is not str:
        return None
    if event_type not in KNOWN_TYPES and not _TYPE.fullmatch(event_type):
        return None
    if type(when) is not str or not _RFC3339.match(when):
        return None
    for name in _OPTIONAL_TEXT:
        text = doc.get(name)
        if text is not None and (type(text) is not str or len(text) > 256):
            return None
    obj = doc.get("object")
    object_key = None
    if obj is None:
        object_type = NO_OBJECT
    elif type(obj) is dict:
        raw_object_type, object_id = obj.get("type"), obj.get("id")
        if type(raw_object_type) is not str or not 0 < len(raw_object_type) <= 64:
            return None
        if type(object_id) is not str or not 0 < len(object_id) <= 256:
            return None
        object_type = raw_object_type if raw_object_type in KNOWN_OBJECT_TYPES else OTHER
        object_key = f"{raw_object_type}:{object_id}"
    else:
        return None
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        return None  # e.g. month 13: pydantic words the error
    return Activity(
        id=event_id,
        actor=actor,
        time_ms=epoch_ms(moment),
        type=event_type if event_type in KNOWN_TYPES else OTHER,
        object_type=object_type,
        raw_type=event_type,
        object_key=object_key,
        community=doc.get("community"),
        target_user=doc.get("target_user"),
    )


def check_key(key: bytes | None, expected: str, what: str) -> None:
    """The Kafka key must be the record's user: a wrong key would route it to another partition."""
    actual = key.decode("utf-8", "replace") if key is not None else None
    if actual != expected:
        raise InvalidEvent("key_mismatch", f"record key {actual!r} is not the {what} {expected!r}")


def unwrap_cloudevent(envelope: dict[str, Any]) -> dict[str, Any]:
    """Map a CloudEvents 1.0 structured record onto the v1 fields (data wins over envelope)."""
    if envelope.get("specversion") != "1.0":
        raise InvalidEvent("bad_cloudevent", f"specversion {envelope.get('specversion')!r}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("bad_cloudevent", "data must be a JSON object (data_base64 is not read)")
    merged = dict(data)
    ce_type = envelope.get("type")
    if "type" not in merged and isinstance(ce_type, str):
        # e.g. "com.hcl.connections.activity.comment" -> "comment"
        merged["type"] = ce_type.rsplit(".", 1)[-1]
    for ce_field, v1_field in (("id", "id"), ("time", "time"), ("subject", "actor")):
        if v1_field not in merged and ce_field in envelope:
            merged[v1_field] = envelope[ce_field]
    if "source" not in merged and isinstance(envelope.get("source"), str):
        merged["source"] = envelope["source"]
    return merged


def _invalid_from(exc: ValidationError) -> InvalidEvent:
    """Turn pydantic's first error into one bounded reason and a readable detail."""
    first = exc.errors(include_url=False)[0]
    kind = first["type"]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    detail = f"{where}: {first['msg']}"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not first["loc"]:
        return InvalidEvent("not_object", detail)
    if kind == "missing":
        return InvalidEvent("missing_field", detail)
    if first["loc"][:1] == ("time",):
        return InvalidEvent("bad_time", detail)
    return InvalidEvent("bad_field", detail)
