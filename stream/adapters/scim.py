"""SCIM 2.0 User resources (RFC 7643) as directory profiles.

JSON Lines of Users, or a ListResponse (``Resources``). The user id is ``userName`` by default (the
id activity usually carries: an e-mail or login), ``active`` gives the status, ``meta.created`` the
creation, ``meta.lastModified`` the version, and the enterprise extension the department.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import Output, Skip, SourceRecord, iso_time
from stream.adapters.files import JSON_FILES
from stream.adapters.jsonlines import json_object, json_records

ENTERPRISE: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class ScimAdapter:
    """SCIM 2.0 User -> esn.directory.v1 profile."""

    name = "scim"
    file_patterns = JSON_FILES

    def __init__(self, id_attribute: str = "userName") -> None:
        self.id_attribute = id_attribute

    def records(self, path: Path) -> Iterator[SourceRecord]:
        return json_records(path, ("Resources",))

    def map(self, record: SourceRecord) -> list[Output]:
        doc = json_object(record, "a SCIM resource")
        user_id = doc.get(self.id_attribute)
        if not isinstance(user_id, str) or not user_id:
            raise Skip("missing_user", f"no {self.id_attribute}")
        raw_meta = doc.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        created = iso_time(meta.get("created"), "meta.created")
        updated = meta.get("lastModified")
        profile: dict[str, Any] = {
            "kind": "profile",
            "user_id": user_id,
            "status": "enabled" if doc.get("active", True) is not False else "disabled",
            "created": created,
            "updated": iso_time(updated, "meta.lastModified") if updated else created,
        }
        enterprise = doc.get(ENTERPRISE)
        if isinstance(enterprise, dict) and isinstance(enterprise.get("department"), str):
            profile["department"] = enterprise["department"]
        name = doc.get("displayName")
        if isinstance(name, str) and name:
            profile["display_name"] = name
        return [Output("directory", profile)]
