"""Microsoft 365 unified audit log, Viva Engage (Yammer) records: RecordType 22, Workload "Yammer".

Read as the Office 365 Management Activity API serves them (a JSON array of records per content
blob, or JSON Lines), or as the Microsoft Purview portal exports a search (CSV whose ``AuditData``
column holds the record's JSON). Records of other workloads in the same export are ignored, not
skipped. The common schema gives ``CreationTime`` (UTC, written without an offset), ``UserId``
(the user's UPN), ``Operation`` and ``Id``; the Viva Engage schema adds ``GroupName``,
``MessageId``, ``FileId``/``FileName`` and ``TargetUserId``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import (
    Ignored,
    Output,
    Skip,
    SourceRecord,
    iso_time,
    required_text,
    type_name,
)
from stream.adapters.csvrows import csv_records
from stream.adapters.files import CSV_FILES, JSON_FILES
from stream.adapters.jsonlines import json_object, json_records

YAMMER_RECORD_TYPE: Final = 22
#: Viva Engage operations a member performs (Purview's "Viva Engage activities" table). Any other
#: operation is kept under its own name (the worker counts it as "other"), never dropped.
OPERATIONS: Final = {
    "MessageCreated": ("post", "post"), "MessageUpdated": ("edit", "post"),
    "MessageDeleted": ("edit", "post"), "FileCreated": ("upload", "file"),
    "FileVisited": ("view", "file"), "FileDownloaded": ("view", "file"),
    "FileShared": ("share", "file"), "FileUpdateDescription": ("edit", "file"),
    "FileUpdateName": ("edit", "file"), "GroupCreation": ("post", "community"),
}  # fmt: skip
#: Network administration: audited, but not engagement of the admin who did it.
ADMIN_OPERATIONS: Final = frozenset({
    "DataExport", "GroupDeletion", "NetworkConfigurationUpdated", "NetworkUserSuspended",
    "NetworkSecurityConfigurationUpdated", "ProcessProfileFields", "SoftDeleteSettingsUpdated",
    "SupervisorAdminToggled", "UserSuspension",
})  # fmt: skip


class M365AuditAdapter:
    """Unified audit log Viva Engage records -> esn.activity.v1."""

    name = "m365-audit"
    file_patterns = JSON_FILES + CSV_FILES

    def records(self, path: Path) -> Iterator[SourceRecord]:
        if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
            return csv_records(path)
        return json_records(path, ("value", "records"))

    def map(self, record: SourceRecord) -> list[Output]:
        doc = audit_data(record)
        if doc.get("RecordType") != YAMMER_RECORD_TYPE and doc.get("Workload") != "Yammer":
            raise Ignored("not_viva_engage")
        operation = required_text(doc, "Operation", "missing_type")
        if operation in ADMIN_OPERATIONS:
            raise Ignored("admin_operation")
        user = required_text(doc, "UserId" if doc.get("UserId") else "ActorUserId",
                             "missing_actor")  # fmt: skip
        event_type, object_type = OPERATIONS.get(operation, (type_name(operation), ""))
        event_id = str(doc.get("Id") or "")[:256]
        if not event_id:
            raise Skip("missing_field", "no Id")
        event: dict[str, Any] = {
            "id": event_id,
            "type": event_type,
            "actor": user,
            "time": iso_time(doc.get("CreationTime"), "CreationTime"),
            "source": "m365-audit",
        }
        object_id = doc.get("FileId") if object_type == "file" else doc.get("MessageId")
        if object_type == "community" and doc.get("GroupName"):
            object_id = doc["GroupName"]
        if object_type and object_id not in (None, ""):
            event["object"] = {"type": object_type, "id": str(object_id)}
        if isinstance(doc.get("GroupName"), str) and doc["GroupName"]:
            event["community"] = doc["GroupName"]
        target = doc.get("TargetUserId")
        if isinstance(target, str) and target:
            event["target_user"] = target
        return [Output("activity", event)]


def audit_data(record: SourceRecord) -> dict[str, Any]:
    """The audit record: the JSON object itself, or a Purview CSV row's AuditData."""
    raw = record.raw
    if isinstance(raw, dict) and isinstance(raw.get("AuditData"), str):
        try:
            raw = json.loads(raw["AuditData"])
        except (TypeError, json.JSONDecodeError):
            raise Skip("not_json", "the AuditData column is not JSON") from None
        if not isinstance(raw, dict):
            raise Skip("not_object", "AuditData is a JSON object")
        return raw
    return json_object(record, "an audit record")
