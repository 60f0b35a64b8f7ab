"""Directory contract v1 (topic esn.directory.v1, key = user id): profiles and memberships.

Every record carries an ``updated`` time and the latest one wins, whatever order records arrive
in, so folding them is idempotent: replays and redeliveries change nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stream.decode import check_key, load_json_record
from stream.events import InvalidEvent, Rfc3339Datetime, epoch_ms
from stream.timebounds import TimeBounds

#: Free text that is stored in tab-separated records: no control characters.
_TEXT = r"^[^\x00-\x1f\x7f]*$"
_ID = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")


class ProfileV1(BaseModel):
    """A user's profile: whether the account is enabled, since when, and where it sits."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["profile"] = "profile"
    user_id: str = _ID
    status: Literal["enabled", "disabled"]
    created: Rfc3339Datetime = Field(description="When the profile was created (RFC 3339).")
    updated: Rfc3339Datetime = Field(description="Version of this record: the latest wins.")
    department: str | None = Field(None, max_length=256, pattern=_TEXT)
    display_name: str | None = Field(None, max_length=256, pattern=_TEXT)
    # Optional, for the nudge service only (the worker keeps none of them): where to write,
    # in which language, and whether the person declined nudges.
    email: str | None = Field(
        None, max_length=320, pattern=r"^[^\s@<>\x00-\x1f\x7f]+@[^\s@<>\x00-\x1f\x7f]+$"
    )
    language: str | None = Field(
        None, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )
    nudge_opt_out: bool | None = Field(None, description="True: this person is never nudged.")


class MembershipV1(BaseModel):
    """A user's role in a community being added or removed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["membership"]
    user_id: str = _ID
    community: str = _ID
    role: Literal["owner", "member", "follower"]
    op: Literal["add", "remove"]
    updated: Rfc3339Datetime = Field(description="Version of this record: the latest wins.")


DirectoryRecordV1 = Annotated[ProfileV1 | MembershipV1, Field(discriminator="kind")]
_ADAPTER: Final[TypeAdapter[ProfileV1 | MembershipV1]] = TypeAdapter(DirectoryRecordV1)


def decode_directory(
    value: bytes | None, key: bytes | None, bounds: TimeBounds | None = None
) -> ProfileV1 | MembershipV1:
    """Validate one raw directory record; the key must be its user id.

    ``updated`` must lie in the window of believable times, like an event's time; ``created``
    only after 1970 and not in the future (accounts older than the event floor are real).
    """
    doc = load_json_record(value)
    if not isinstance(doc, dict):
        raise InvalidEvent("not_object", "a directory record is a JSON object")
    doc.setdefault("kind", "profile")
    try:
        record = _ADAPTER.validate_python(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        if first["type"] == "missing":
            reason = "missing_field"
        elif first["loc"][-1:] in (("created",), ("updated",)):
            reason = "bad_time"
        else:
            reason = "bad_field"
        raise InvalidEvent(reason, f"{where}: {first['msg']}") from None
    check_key(key, record.user_id, "user id")
    if bounds is None:
        bounds = TimeBounds.at()
    bounds.check(epoch_ms(record.updated), record.updated.isoformat())
    if isinstance(record, ProfileV1):
        TimeBounds(0, bounds.latest_ms).check(epoch_ms(record.created), record.created.isoformat())
    return record


def pseudonymized_record(
    record: ProfileV1 | MembershipV1, pseudonymize: Callable[[str], str]
) -> ProfileV1 | MembershipV1:
    """The record under the user's pseudonym; a profile also loses its name and address."""
    update: dict[str, Any] = {"user_id": pseudonymize(record.user_id)}
    if isinstance(record, ProfileV1):
        update["display_name"] = None
        update["email"] = None
    return record.model_copy(update=update)


def updated_ms(record: ProfileV1 | MembershipV1) -> int:
    """The record's version in epoch milliseconds."""
    return epoch_ms(record.updated)


def rows_from_csv(text: str) -> Iterator[dict[str, Any]]:
    """Directory dicts from CSV with a header (profiles, or memberships if it has 'community').

    Empty cells are left out, so optional fields stay optional; a BOM is tolerated.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    membership = "community" in (reader.fieldnames or [])
    for row in reader:
        doc: dict[str, Any] = {k.strip(): v for k, v in row.items() if k and v not in (None, "")}
        doc.setdefault("kind", "membership" if membership else "profile")
        yield doc


def directory_json_schema() -> dict[str, Any]:
    """The JSON Schema of directory contract v1, as kept in docs/schemas/."""
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "esn.directory.v1"
    schema["title"] = "ESN Pulse directory record v1"
    return schema
