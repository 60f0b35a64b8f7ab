"""The Stack Exchange data dump (a real public community standing in for an ESN).

A site's dump is a directory of XML files, one ``<row .../>`` per record with the data in
attributes (https://meta.stackexchange.com/q/2677, the dump's own readme):

- ``Users.xml`` (``Id``, ``CreationDate``, ``LastAccessDate``, ``DisplayName``...): the directory
  (a profile created at ``CreationDate``), and a "login" at ``LastAccessDate``;
- ``Posts.xml`` (``Id``, ``PostTypeId`` 1 question / 2 answer, ``ParentId``, ``OwnerUserId``,
  ``CreationDate``, ``LastEditorUserId``, ``LastEditDate``): a question is a "post" opening a
  forum topic, an answer a "post" in its question's topic, the last edit an "edit";
- ``Comments.xml`` (``Id``, ``PostId``, ``UserId``, ``CreationDate``): a "comment" on the post;
- ``Badges.xml`` (``UserId``, ``Name``, ``Date``): awarded by the system, not acts of the
  user: ignored, counted.

Other files of a dump (Votes, Tags, PostLinks, PostHistory) are one ignored record each. Times
are UTC without an offset. The XML is parsed incrementally, so a dump of gigabytes reads in
constant memory; XML that is not well-formed or cut short breaks the file at its line and column.
A document type declaration (entities: a billion laughs, external files) breaks it unexpanded.
Users are ``se-<Id>``; the site's "Community" bot (Id -1) is ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from stream.adapters.base import Broken, Ignored, Output, Skip, SourceRecord, Unusable, iso_time
from stream.adapters.files import location_of, open_binary, source_name, with_gzip
from stream.adapters.jsonstream import MAX_RECORD_BYTES

FILES: Final = ("Users.xml", "Posts.xml", "Comments.xml", "Badges.xml")
#: Every file of a site's dump (the dump's readme); those not in FILES are one ignored record.
DUMP_FILES: Final = (*FILES, "Votes.xml", "Tags.xml", "PostLinks.xml", "PostHistory.xml")
QUESTION, ANSWER = "1", "2"


class StackExchangeAdapter:
    """Stack Exchange dump XML -> esn.directory.v1 profiles and esn.activity.v1."""

    name = "stackexchange"
    file_patterns = with_gzip(*DUMP_FILES)

    @staticmethod
    def file_order(path: Path) -> tuple[int, str]:
        """Users first (the directory before the activity), then posts, comments, the rest."""
        name = source_name(path)
        return (FILES.index(name) if name in FILES else len(FILES), name)

    def records(self, path: Path) -> Iterator[SourceRecord]:
        name = source_name(path)
        if name not in FILES:
            yield SourceRecord(location_of(path), None)
            return
        with open_binary(path) as handle:
            number = 0
            where = location_of(path)
            # defusedxml: a dump declares no entities; one that does (a billion laughs, an
            # external entity reading a local file or a URL) is refused before any expands.
            parser = iterparse(handle, events=("start", "end"), forbid_dtd=True)
            root: ElementTree.Element | None = None
            try:
                for event, element in parser:
                    if event == "start":
                        if root is None:
                            root = element
                        continue
                    if element.tag != "row":
                        continue
                    number += 1
                    row = dict(element.attrib)
                    location = f"{where}:row {number}"
                    if sum(len(value) for value in row.values()) > MAX_RECORD_BYTES:
                        detail = f"a row of more than {MAX_RECORD_BYTES:,} characters"
                        yield SourceRecord(location, Unusable("too_large", detail))
                    else:
                        yield SourceRecord(location, (name, row))
                    # Drop what was read: the tree would otherwise grow with the file.
                    element.clear()
                    if root is not None:
                        root.clear()
            except ElementTree.ParseError as exc:
                line, column = exc.position
                raise Broken(f"line {line:,}, column {column + 1:,}",
                             f"XML not well-formed ({_reason(exc)})") from None  # fmt: skip
            except DefusedXmlException as exc:
                what = f"a document type or entity declaration ({type(exc).__name__})"
                raise Broken("its prolog", f"{what}, refused unexpanded: a dump has none") from None

    def map(self, record: SourceRecord) -> list[Output]:
        if record.raw is None:
            raise Ignored("unused_file")
        name, row = record.raw
        if name == "Users.xml":
            return _user(row)
        if name == "Badges.xml":
            raise Ignored("badge")
        if name == "Posts.xml":
            return _post(row)
        return _comment(row)


def _reason(exc: ElementTree.ParseError) -> str:
    """expat's words without the position, which Broken gives."""
    return str(exc).split(": line ")[0]


def _user_id(row: dict[str, str], attribute: str) -> str:
    raw = row.get(attribute, "").strip()
    if not raw:
        raise Skip("missing_actor", f"no {attribute} (a deleted user)")
    if raw == "-1":
        raise Ignored("system_user")
    return f"se-{raw}"


def _user(row: dict[str, str]) -> list[Output]:
    user = _user_id(row, "Id")
    created = iso_time(row.get("CreationDate"), "CreationDate")
    profile: dict[str, Any] = {"kind": "profile", "user_id": user, "status": "enabled",
                               "created": created, "updated": created}  # fmt: skip
    outputs = [Output("directory", profile)]
    if row.get("LastAccessDate"):
        seen = iso_time(row["LastAccessDate"], "LastAccessDate")
        outputs.append(Output("activity", {
            "id": f"se-login-{row['Id']}-{seen}", "type": "login", "actor": user, "time": seen,
            "source": "stackexchange",
        }))  # fmt: skip
    return outputs


def _post(row: dict[str, str]) -> list[Output]:
    kind = row.get("PostTypeId")
    if kind not in (QUESTION, ANSWER):
        raise Ignored("other_post_type")  # tag wikis, moderator nominations...
    user = _user_id(row, "OwnerUserId")
    post_id = row.get("Id", "")
    topic = post_id if kind == QUESTION else row.get("ParentId", "")
    if not post_id or not topic:
        raise Skip("missing_field", "no Id or ParentId")
    outputs = [Output("activity", {
        "id": f"se-post-{post_id}", "type": "post", "actor": user,
        "time": iso_time(row.get("CreationDate"), "CreationDate"),
        "object": {"type": "forum_topic", "id": f"q{topic}"}, "source": "stackexchange",
    })]  # fmt: skip
    editor = row.get("LastEditorUserId", "").strip()
    if editor and editor != "-1" and row.get("LastEditDate"):
        outputs.append(Output("activity", {
            "id": f"se-edit-{post_id}", "type": "edit", "actor": f"se-{editor}",
            "time": iso_time(row["LastEditDate"], "LastEditDate"),
            "object": {"type": "forum_topic", "id": f"q{topic}"}, "source": "stackexchange",
        }))  # fmt: skip
    return outputs


def _comment(row: dict[str, str]) -> list[Output]:
    user = _user_id(row, "UserId")
    comment_id, post_id = row.get("Id", ""), row.get("PostId", "")
    if not comment_id or not post_id:
        raise Skip("missing_field", "no Id or PostId")
    return [Output("activity", {
        "id": f"se-comment-{comment_id}", "type": "comment", "actor": user,
        "time": iso_time(row.get("CreationDate"), "CreationDate"),
        "object": {"type": "post", "id": f"p{post_id}"}, "source": "stackexchange",
    })]  # fmt: skip
