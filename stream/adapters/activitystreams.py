"""W3C Activity Streams 2.0 activities (https://www.w3.org/TR/activitystreams-vocabulary/).

JSON Lines of activities, or a Collection / OrderedCollection document (``items`` /
``orderedItems``). ``actor``, ``object`` and ``target`` may be ids or objects; ``published`` is
the time. Activity types map to ours; an unknown type is kept (lower-cased), the worker counts it
as "other". A ``target`` or ``context`` of type Group is the community; a Mention tag names the
target user.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import Output, Skip, SourceRecord, id_of, iso_time, type_name
from stream.adapters.files import JSON_FILES
from stream.adapters.jsonlines import json_object, json_records

TYPE_MAP: Final = {
    "Create": "post", "Update": "edit", "Like": "like", "Dislike": "like", "Follow": "follow",
    "Join": "join", "Leave": "leave", "Announce": "share", "View": "view", "Read": "view",
    "Add": "upload", "Mention": "mention", "Invite": "mention",
}  # fmt: skip
OBJECT_MAP: Final = {
    "Note": "post", "Article": "blog", "Page": "wiki_page", "Document": "file", "Image": "file",
    "Video": "file", "Audio": "file", "Question": "forum_topic", "Group": "community",
    "Person": "profile",
}  # fmt: skip


class ActivityStreamsAdapter:
    """Activity Streams 2.0 -> esn.activity.v1."""

    name = "activitystreams"
    file_patterns = JSON_FILES

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return json_records(path, ("orderedItems", "items"))

    def map(self, record: SourceRecord) -> list[Output]:
        return [Output("activity", activity(json_object(record, "an activity")))]


def activity(doc: dict[str, Any]) -> dict[str, Any]:
    """One AS2 activity as a v1 event."""
    raw_type = doc.get("type")
    if isinstance(raw_type, list):
        raw_type = next((t for t in raw_type if isinstance(t, str)), None)
    if not isinstance(raw_type, str) or not raw_type:
        raise Skip("missing_type", "no activity type")
    actor = id_of(doc.get("actor"))
    if actor is None:
        raise Skip("missing_actor", "no actor id")
    when = iso_time(doc.get("published") or doc.get("updated"), "published")
    event_type = TYPE_MAP.get(raw_type) or type_name(raw_type)
    event_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    event: dict[str, Any] = {
        "id": event_id or _derived_id(actor, raw_type, when, doc.get("object")),
        "type": event_type,
        "actor": actor,
        "time": when,
        "source": "activitystreams",
    }
    obj = doc.get("object")
    object_id = id_of(obj)
    if object_id is not None:
        object_type = obj.get("type") if isinstance(obj, dict) else None
        event["object"] = {
            "type": OBJECT_MAP.get(object_type, "other")
            if isinstance(object_type, str)
            else "other",
            "id": object_id[:256],
        }
        if event_type == "follow" and isinstance(obj, dict) and obj.get("type") == "Person":
            event["target_user"] = object_id
    for place in (doc.get("target"), doc.get("context")):
        if isinstance(place, dict) and place.get("type") == "Group" and id_of(place):
            event["community"] = id_of(place)
            break
    for tag in doc.get("tag") or []:
        if isinstance(tag, dict) and tag.get("type") == "Mention" and id_of(tag.get("href") or tag):
            event.setdefault("target_user", tag.get("href") or id_of(tag))
    return event


def _derived_id(actor: str, kind: str, when: str, obj: Any) -> str:
    """A stable id for an activity without one, so a re-import is deduplicable downstream."""
    seed = f"{actor}|{kind}|{when}|{id_of(obj) or ''}"
    return "as2-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
