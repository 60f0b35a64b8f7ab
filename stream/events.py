"""Activity event contract v1: the pydantic model, the JSON Schema it generates, and the decoder.

The decoder is the worker's only gate: raw Kafka bytes become an :class:`Activity`, or raise
:class:`InvalidEvent` with a reason from :data:`INVALID_REASONS` (bounded: it is a metric label).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from stream import jsonutil

SCHEMA_VERSION: Final = 1

EVENT_TYPES: Final = (
    "login",
    "view",
    "post",
    "comment",
    "like",
    "mention",
    "follow",
    "join",
    "leave",
    "edit",
    "upload",
    "share",
)
OBJECT_TYPES: Final = (
    "post",
    "comment",
    "blog",
    "forum_topic",
    "wiki_page",
    "file",
    "community",
    "profile",
)
#: Counted under this name when an event's type (or object type) is not in the lists above. Unknown
#: types are accepted so that a new source never loses data, but folding them under one name keeps
#: metric labels and per-user hashes bounded; the raw names are tallied in Redis (see store).
OTHER: Final = "other"
#: The object_type label and field of events that carry no object.
NO_OBJECT: Final = "none"

#: Per-user counts are kept in this order (see store/fold.lua); append only, never reorder.
COUNTED_TYPES: Final = (*EVENT_TYPES, OTHER)

INVALID_REASONS: Final = (
    "not_json",
    "not_object",
    "missing_field",
    "bad_field",
    "bad_time",
    "key_mismatch",
    "bad_cloudevent",
)

_KNOWN_TYPES: Final = frozenset(EVENT_TYPES)
_KNOWN_OBJECT_TYPES: Final = frozenset(OBJECT_TYPES)
_ID = Field(min_length=1, max_length=256)


class ObjectRef(BaseModel):
    """The thing acted on: a post, a wiki page, a community..."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(min_length=1, max_length=64, description="One of OBJECT_TYPES, or other.")
    id: str = _ID


class ActivityEventV1(BaseModel):
    """One user action on the enterprise social network (topic esn.activity.v1, key = actor)."""

    model_config = ConfigDict(
        extra="allow", frozen=True, json_schema_extra={"$id": "esn.activity.v1"}
    )

    id: str = Field(min_length=1, max_length=256, description="Unique event id.")
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_.\-]{0,63}$",
        description="login, view, post, comment, like, mention, follow, join, leave, edit, "
        "upload, share; other lower-case names are accepted and counted as 'other'.",
    )
    actor: str = Field(
        min_length=1, max_length=256, description="User id of who acted; the Kafka key."
    )
    time: AwareDatetime = Field(description="When it happened: RFC 3339 with a UTC offset.")
    object: ObjectRef | None = None
    community: str | None = Field(None, max_length=256)
    target_user: str | None = Field(None, max_length=256)
    source: str | None = Field(None, max_length=256, description="Which network or adapter.")


class Activity(NamedTuple):
    """The fields the fold needs, normalised: bounded type names and an epoch-millisecond time."""

    id: str
    actor: str
    time_ms: int
    type: str
    object_type: str
    raw_type: str

    @classmethod
    def from_event(cls, event: ActivityEventV1) -> Activity:
        """Normalise a validated event."""
        raw_type = event.type
        obj = event.object
        if obj is None:
            object_type = NO_OBJECT
        else:
            object_type = obj.type if obj.type in _KNOWN_OBJECT_TYPES else OTHER
        return cls(
            id=event.id,
            actor=event.actor,
            time_ms=int(event.time.timestamp() * 1000),
            type=raw_type if raw_type in _KNOWN_TYPES else OTHER,
            object_type=object_type,
            raw_type=raw_type,
        )


class InvalidEvent(ValueError):
    """A record that cannot be folded; ``reason`` is one of INVALID_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_activity(value: bytes | None, key: bytes | None) -> Activity:
    """Validate one raw record (plain v1 JSON or a CloudEvents 1.0 structured record)."""
    if not value:
        raise InvalidEvent("not_json", "record has no value")
    try:
        # The substring test is a cheap pre-filter: plain events skip the double parse.
        if b'"specversion"' in value:
            event = ActivityEventV1.model_validate(_unwrap_cloudevent(jsonutil.loads(value)))
        else:
            event = ActivityEventV1.model_validate_json(value)
    except ValidationError as exc:
        raise _invalid_from(exc) from None
    except jsonutil.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    actual_key = key.decode("utf-8", "replace") if key is not None else None
    if actual_key != event.actor:
        raise InvalidEvent(
            "key_mismatch", f"record key {actual_key!r} is not the actor {event.actor!r}"
        )
    return Activity.from_event(event)


def _unwrap_cloudevent(envelope: Any) -> dict[str, Any]:
    """Map a CloudEvents 1.0 structured record onto the v1 fields (data wins over envelope)."""
    if not isinstance(envelope, dict):
        raise InvalidEvent("not_object", "CloudEvent is not a JSON object")
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
    if kind == "json_invalid":
        return InvalidEvent("not_json", detail)
    if kind in ("model_type", "model_attributes_type", "dict_type") and not first["loc"]:
        return InvalidEvent("not_object", detail)
    if kind == "missing":
        return InvalidEvent("missing_field", detail)
    if first["loc"][:1] == ("time",):
        return InvalidEvent("bad_time", detail)
    return InvalidEvent("bad_field", detail)


def activity_json_schema() -> dict[str, Any]:
    """The JSON Schema of contract v1, as kept in docs/schemas/."""
    schema = ActivityEventV1.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ESN Pulse activity event v1"
    return schema
