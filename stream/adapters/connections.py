"""HCL Connections activity stream entries (Activity Streams 1.0 JSON of its OpenSocial API).

``GET /connections/opensocial/basic/rest/activitystreams/@public/@all/@all`` (or a community's
stream, ``urn:lsid:lconn.ibm.com:communities.community:<id>``) answers ``{"list": [entry, ...]}``;
save the pages as they come, or as JSON Lines of entries. An entry has ``verb``, ``published``,
``actor``, ``object`` and ``target`` (each with ``id`` and ``objectType``), a ``generator`` (the
application: blogs, forums, wikis, files, communities, profiles...) and Connections' own
``connections`` extension. Ids are URNs (``urn:lsid:lconn.ibm.com:profiles.person:<userid>``);
users are their Connections user id, communities their uuid.

Community membership changes in the stream become directory membership records too: ``join``
(a member joined), ``leave`` (left), ``add`` or ``invite`` of a person to a community (member
added; ``connections.role`` "owner" makes it an owner), ``remove`` of a person (removed)
and ``create`` of a community (its creator is its owner).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import (
    Ignored,
    Output,
    Skip,
    SourceRecord,
    fields,
    iso_time,
    required_text,
    type_name,
)
from stream.adapters.files import JSON_FILES
from stream.adapters.jsonlines import json_object, json_records

VERBS: Final = {
    "post": "post", "create": "post", "update": "edit", "tag": "edit", "like": "like",
    "recommend": "like", "follow": "follow", "join": "join", "leave": "leave", "share": "share",
    "mention": "mention", "access": "view", "visit": "view", "read": "view", "save": "view",
    "add": "upload", "upload": "upload", "reply": "comment", "comment": "comment",
}  # fmt: skip
OBJECT_TYPES: Final = {
    "note": "post", "article": "blog", "blog": "blog", "comment": "comment", "reply": "comment",
    "forum": "forum_topic", "forumTopic": "forum_topic", "topic": "forum_topic",
    "wikiPage": "wiki_page", "wiki": "wiki_page", "page": "wiki_page", "file": "file",
    "document": "file", "image": "file", "community": "community", "group": "community",
    "person": "profile", "status": "post", "bookmark": "post", "activity": "post",
}  # fmt: skip
#: Verbs that move no engagement of the actor (moderation and system housekeeping).
QUIET_VERBS: Final = frozenset({"delete", "flag", "approve", "reject", "restore", "unfollow"})
PERSON: Final = "profiles.person:"
COMMUNITY: Final = "communities.community:"


class ConnectionsAdapter:
    """Connections AS1.0 entries -> esn.activity.v1, and esn.directory.v1 memberships."""

    name = "connections"
    file_patterns = JSON_FILES

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return json_records(path, ("list", "items", "entry"))

    def map(self, record: SourceRecord) -> list[Output]:
        entry = json_object(record, "an activity stream entry")
        verb = required_text(entry, "verb", "missing_type")
        actor = user_id(entry.get("actor"))
        if actor is None:
            raise Skip("missing_actor", "no actor id")
        when = iso_time(entry.get("published") or entry.get("updated"), "published")
        if verb in QUIET_VERBS:
            raise Ignored(f"verb_{verb}")
        obj, target = fields(entry.get("object")), fields(entry.get("target"))
        community = community_id(target) or community_id(obj)
        event_type = VERBS.get(verb) or type_name(verb)
        object_type = str(obj.get("objectType") or "")
        if verb == "post" and (object_type in ("comment", "reply") or obj.get("inReplyTo")):
            event_type = "comment"
        event: dict[str, Any] = {
            "id": _entry_id(entry, actor, verb, when),
            "type": event_type,
            "actor": actor,
            "time": when,
            "source": "connections",
        }
        generator = entry.get("generator")
        if isinstance(generator, dict) and isinstance(generator.get("id"), str):
            event["application"] = generator["id"]
        person = user_id(obj) if object_type == "person" else None
        if isinstance(obj.get("id"), str) and obj["id"]:
            # A person is named by the user id alone, as the actor is, so that the worker's
            # pseudonym of the profile is the person's pseudonym (not a hash of the URN).
            object_id = person or obj["id"]
            event["object"] = {"type": OBJECT_TYPES.get(object_type, "other"), "id": object_id}
        if community:
            event["community"] = community
        if person is not None and verb in ("add", "invite", "remove"):
            event["type"] = f"{verb}_member"  # an owner managing members: kept, counted as other
        if person is not None and event_type in ("follow", "mention"):
            event["target_user"] = person
        outputs = [Output("activity", event)]
        membership = _membership(verb, actor, person, object_type, community, entry, when)
        if membership is not None:
            outputs.append(Output("directory", membership))
        return outputs


def user_id(value: Any) -> str | None:
    """The Connections user id of a person object (the part after ``profiles.person:``)."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    raw = value["id"].strip()
    return (raw.rsplit(PERSON, 1)[-1] if PERSON in raw else raw) or None


def community_id(value: dict[str, Any]) -> str | None:
    """The community uuid of a community object, else None."""
    raw = value.get("id")
    if not isinstance(raw, str):
        return None
    if COMMUNITY in raw:
        return raw.rsplit(COMMUNITY, 1)[-1] or None
    return raw if value.get("objectType") in ("community", "group") and raw else None


def _membership(
    verb: str,
    actor: str,
    person: str | None,
    object_type: str,
    community: str | None,
    entry: dict[str, Any],
    when: str,
) -> dict[str, Any] | None:
    """The directory change a community entry makes, if any."""
    if community is None:
        return None
    extension = fields(entry.get("connections"))
    role = "owner" if str(extension.get("role", "")).lower() == "owner" else "member"
    if verb == "join":
        user, op = actor, "add"
    elif verb == "leave":
        user, op = actor, "remove"
    elif verb == "create" and object_type in ("community", "group"):
        user, op, role = actor, "add", "owner"
    elif verb in ("add", "invite") and person is not None:
        user, op = person, "add"
    elif verb == "remove" and person is not None:
        user, op = person, "remove"
    else:
        return None
    return {"kind": "membership", "user_id": user, "community": community, "role": role,
            "op": op, "updated": when}  # fmt: skip


def _entry_id(entry: dict[str, Any], actor: str, verb: str, when: str) -> str:
    raw = entry.get("id")
    if isinstance(raw, str) and raw:
        return raw[:256]
    seed = f"{actor}|{verb}|{when}"
    return "lc-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
