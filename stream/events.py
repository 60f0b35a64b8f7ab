"""Activity event contract v1: the pydantic model, its JSON Schema, and the normalised Activity.

The pydantic model is the definition; :mod:`stream.decode` is the gate raw records pass through.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, NamedTuple

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

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

#: The engagement ladder (see docs/reference/analytics.md): every active user is at least "active";
#: these types make a user "participating" that day, and these "contributing" (who creates content
#: also participates: the tiers nest).
PARTICIPATING_TYPES: Final = frozenset({"like", "comment", "follow", "join", "mention", "share"})
CONTRIBUTING_TYPES: Final = frozenset({"post", "upload", "edit"})

#: Per-user counts are kept in this order (see store/fold.lua); append only, never reorder.
COUNTED_TYPES: Final = (*EVENT_TYPES, OTHER)

#: User ids are opaque, but control characters in one are always a producer bug.
ACTOR_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
TYPE_PATTERN: Final = r"^[a-z][a-z0-9_.\-]{0,63}$"

#: RFC 3339 date-time (section 5.6): a string, never a number, always with its UTC offset.
TIME_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)

INVALID_REASONS: Final = (
    "not_json",
    "not_object",
    "missing_field",
    "bad_field",
    "bad_time",
    "key_mismatch",
    "bad_cloudevent",
    "too_large",
    "internal_error",
)
#: A record's value above this is dead-lettered unread: an activity event is a few hundred bytes,
#: and parsing a multi-megabyte value would cost the whole partition's pace for nothing.
MAX_RECORD_BYTES: Final = 1024 * 1024

KNOWN_TYPES: Final = frozenset(EVENT_TYPES)
_TIME: Final = re.compile(TIME_PATTERN)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
KNOWN_OBJECT_TYPES: Final = frozenset(OBJECT_TYPES)
_ID = Field(min_length=1, max_length=256)


def rfc3339_text(value: Any) -> Any:
    """Let only RFC 3339 strings through to pydantic, which alone also takes epoch numbers."""
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError("must be an RFC 3339 date-time string with a UTC offset")
    return value


#: A date-time field of the contracts: RFC 3339 text with an offset, never a number.
Rfc3339Datetime = Annotated[
    AwareDatetime, BeforeValidator(rfc3339_text), Field(json_schema_extra={"pattern": TIME_PATTERN})
]


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
        pattern=TYPE_PATTERN,
        description="login, view, post, comment, like, mention, follow, join, leave, edit, "
        "upload, share; other lower-case names are accepted and counted as 'other'.",
    )
    actor: str = Field(
        min_length=1,
        max_length=256,
        pattern=ACTOR_PATTERN,
        description="User id of who acted; the Kafka key. No control characters.",
    )
    time: Rfc3339Datetime = Field(description="When it happened: RFC 3339 with a UTC offset.")
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
    #: "object_type:object_id" of the item acted on (raw object type), None without an object.
    object_key: str | None = None
    community: str | None = None
    #: The user acted upon: the author of a liked item, a mentioned or followed user.
    target_user: str | None = None

    @classmethod
    def from_event(cls, event: ActivityEventV1) -> Activity:
        """Normalise a validated event."""
        raw_type = event.type
        obj = event.object
        if obj is None:
            object_type, object_key = NO_OBJECT, None
        else:
            object_type = obj.type if obj.type in KNOWN_OBJECT_TYPES else OTHER
            object_key = f"{obj.type}:{obj.id}"
        return cls(
            id=event.id,
            actor=event.actor,
            time_ms=epoch_ms(event.time),
            type=raw_type if raw_type in KNOWN_TYPES else OTHER,
            object_type=object_type,
            raw_type=raw_type,
            object_key=object_key,
            community=event.community,
            target_user=event.target_user,
        )


def epoch_ms(moment: datetime) -> int:
    """Exact integer milliseconds since the epoch (no float rounding), floored."""
    # Integer parts of the timedelta: exact, and cheaper than timedelta floor division.
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


class InvalidEvent(ValueError):
    """A record that cannot be folded; ``reason`` is one of INVALID_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def activity_json_schema() -> dict[str, Any]:
    """The JSON Schema of contract v1, as kept in docs/schemas/."""
    schema = ActivityEventV1.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ESN Pulse activity event v1"
    return schema
