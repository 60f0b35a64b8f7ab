"""Slack Enterprise: Audit Logs API entries, and the daily member analytics files.

**Audit logs** (``GET https://api.slack.com/audit/v1/logs``) answer ``{"entries": [...]}``; each
entry has ``id``, ``date_create`` (epoch seconds), ``action``, ``actor`` (``{"type": "user",
"user": {"id", "name", "email", "team"}}``), ``entity`` (a ``type`` and an object of that name:
user, channel, file, workspace, app...) and ``context`` (``location``, ``ua``, ``ip_address``).
Member actions become activity; ``user_created``, ``user_deactivated`` and ``user_reactivated``
become directory profiles; workspace administration is ignored.

**Member analytics** (``admin.analytics.getFile`` with ``type=member``) is one gzipped NDJSON file
per UTC day: per member ``date``, ``user_id``, ``email_address``, ``is_active`` and counts
(``messages_posted_count``, ``reactions_added_count``, ``files_added_count``...). Each count
becomes that many events at the start of the day (day resolution); an active day with no counted
action is one "view"; an inactive day is ignored.

Users are their e-mail address by default (what a SCIM or HR directory keys on), or their Slack
member id with ``--slack-id id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import (
    Ignored,
    Output,
    Skip,
    SourceRecord,
    day_event,
    day_start,
    fields,
    required_text,
    type_name,
)
from stream.adapters.files import JSON_FILES
from stream.adapters.jsonlines import json_object, json_records

#: Audit actions a member performs, and our event type for each.
ACTIONS: Final = {
    "user_login": "login", "file_uploaded": "upload", "file_downloaded": "view",
    "file_shared": "share", "file_public_link_created": "share", "user_channel_join": "join",
    "user_channel_leave": "leave", "public_channel_created": "post",
    "private_channel_created": "post", "channel_created": "post", "message_tombstoned": "edit",
    "file_downloaded_blocked": "view",
}  # fmt: skip
ENTITY_OBJECTS: Final = {
    "channel": "community",
    "file": "file",
    "message": "post",
    "user": "profile",
}
#: Directory changes in the audit log: the profile status each leaves.
DIRECTORY_ACTIONS: Final = {
    "user_created": "enabled", "guest_created": "enabled", "user_reactivated": "enabled",
    "user_deactivated": "disabled", "guest_deactivated": "disabled",
}  # fmt: skip
#: Counts of the member analytics file, and the event type each count is made of.
COUNTS: Final = (
    ("messages_posted_count", "post"),
    ("reactions_added_count", "like"),
    ("files_added_count", "upload"),
)


class SlackAuditAdapter:
    """Slack Audit Logs API entries -> esn.activity.v1, and esn.directory.v1 profiles."""

    name = "slack-audit"
    file_patterns = JSON_FILES

    def __init__(self, id_field: str = "email") -> None:
        self.id_field = id_field

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return json_records(path, ("entries",))

    def map(self, record: SourceRecord) -> list[Output]:
        entry = json_object(record, "an audit log entry")
        action = required_text(entry, "action", "missing_type")
        when = epoch_time(entry.get("date_create"))
        entity = fields(entry.get("entity"))
        entity_type = str(entity.get("type") or "")
        subject = fields(entity.get(entity_type))
        if action in DIRECTORY_ACTIONS:
            user = self.user(subject)
            if user is None:
                raise Skip("missing_user", f"{action} names no user")
            # The audit log has no account creation time: for a created user it is this entry;
            # for a (re)activation the never-active grace restarts here.
            profile = {"kind": "profile", "user_id": user, "status": DIRECTORY_ACTIONS[action],
                       "created": when, "updated": when}  # fmt: skip
            return [Output("directory", profile)]
        actor = fields(entry.get("actor"))
        if actor.get("type") != "user":
            raise Ignored("not_a_member_action")
        user = self.user(fields(actor.get("user")))
        if user is None:
            raise Skip("missing_actor", "no actor user")
        event_type = ACTIONS.get(action)
        if event_type is None and not action.startswith(("user_", "file_", "message_")):
            raise Ignored("admin_action")
        event: dict[str, Any] = {
            "id": str(entry.get("id") or "")[:256] or f"slack-{user}-{action}-{when}",
            "type": event_type or type_name(action),
            "actor": user,
            "time": when,
            "source": "slack-audit",
        }
        subject_id = subject.get("id")
        if isinstance(subject_id, str) and subject_id and entity_type in ENTITY_OBJECTS:
            event["object"] = {"type": ENTITY_OBJECTS[entity_type], "id": subject_id}
            if entity_type == "channel":
                event["community"] = subject_id
        return [Output("activity", event)]

    def user(self, user: dict[str, Any]) -> str | None:
        """The user's id: e-mail by default, else the Slack member id."""
        value = user.get("email") if self.id_field == "email" else None
        value = value or user.get("id")
        return value.strip() if isinstance(value, str) and value.strip() else None


class SlackAnalyticsAdapter:
    """Slack member analytics (one NDJSON file per day) -> day-resolution esn.activity.v1."""

    name = "slack-analytics"
    file_patterns = JSON_FILES

    def __init__(self, id_field: str = "email") -> None:
        self.id_field = id_field

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return json_records(path, ("file_data",))

    def map(self, record: SourceRecord) -> list[Output]:
        row = json_object(record, "a member analytics row")
        email, member = row.get("email_address"), row.get("user_id")
        user = (email if self.id_field == "email" and email else None) or member
        if not isinstance(user, str) or not user.strip():
            raise Skip("missing_user", "no user_id or email_address")
        day = day_start(row.get("date"), "date")
        events: list[Output] = []
        for column, event_type in COUNTS:
            count = row.get(column) or 0
            if not isinstance(count, int) or count < 0:
                raise Skip("bad_field", f"{column} {count!r} is not a count")
            for number in range(count):
                events.append(day_event("slack-analytics", user.strip(), day, event_type, number))
        if not events and row.get("is_active") is True:
            events.append(day_event("slack-analytics", user.strip(), day, "view", 0))
        if not events:
            raise Ignored("inactive_day")
        return events


def epoch_time(value: Any) -> str:
    """Slack's epoch seconds as RFC 3339."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise Skip("missing_time", f"date_create {value!r} is not epoch seconds")
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # NaN, infinity, past year 9999
        raise Skip("bad_time", f"date_create {value!r} is not a time") from None
