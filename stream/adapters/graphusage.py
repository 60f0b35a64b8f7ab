"""Microsoft Graph usage report ``getYammerActivityUserDetail`` (Viva Engage activity per user).

CSV as Graph serves it (``Report Refresh Date``, ``User Principal Name``, ``Display Name``,
``User State``, ``State Change Date``, ``Last Activity Date``, ``Posted Count``, ``Read Count``,
``Liked Count``, ``Assigned Products``, ``Report Period``), or its JSON form (``value`` of
camelCase fields). A report is a snapshot: successive daily snapshots, read oldest first, become

- day-resolution activity: one "view" on each new ``Last Activity Date`` of a user; when the
  snapshot covers exactly that day (``Report Period`` 1, requested with ``date=``), its counts
  instead, as that many "post", "like" and "view" events;
- directory profiles: a user's state (``Active``, else disabled) and ``State Change Date`` (the
  creation, for want of one) whenever they change.

What was already sent is remembered per user, across the files of an import and, through the
checkpoint, across imports, so a snapshot repeats nothing the previous one said.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from stream.adapters.base import (
    Ignored,
    Output,
    Skip,
    SourceRecord,
    Unusable,
    day_event,
    day_start,
)
from stream.adapters.csvrows import cell, csv_records
from stream.adapters.files import CSV_FILES, JSON_FILES
from stream.adapters.jsonlines import json_records

#: The report's JSON field for each CSV column.
COLUMNS: Final = {
    "reportRefreshDate": "Report Refresh Date", "userPrincipalName": "User Principal Name",
    "userState": "User State", "stateChangeDate": "State Change Date",
    "lastActivityDate": "Last Activity Date", "postedCount": "Posted Count",
    "readCount": "Read Count", "likedCount": "Liked Count", "reportPeriod": "Report Period",
}  # fmt: skip
COUNTS: Final = (("Posted Count", "post"), ("Liked Count", "like"), ("Read Count", "view"))


class GraphUsageAdapter:
    """getYammerActivityUserDetail snapshots -> day-resolution activity and directory profiles."""

    name = "graph-usage"
    file_patterns = CSV_FILES + JSON_FILES

    def __init__(self) -> None:
        #: user -> the last activity day already sent, and the profile (status, created) sent.
        self.sent_day: dict[str, str] = {}
        self.sent_profile: dict[str, str] = {}

    def records(self, path: Path) -> Iterator[SourceRecord]:
        if path.suffix.lower() == ".json":
            for record in json_records(path, ("value",)):
                if isinstance(record.raw, Unusable):
                    yield record
                    continue
                raw = record.raw if isinstance(record.raw, dict) else {}
                row = {COLUMNS.get(k, k): "" if v is None else str(v) for k, v in raw.items()}
                yield SourceRecord(record.location, row)
            return
        yield from csv_records(path)

    def map(self, record: SourceRecord) -> list[Output]:
        row: dict[str, str] = record.raw
        user = cell(row, "User Principal Name")
        if user is None:
            raise Skip("missing_user", "no User Principal Name")
        refreshed = day_start(cell(row, "Report Refresh Date"), "Report Refresh Date")
        outputs: list[Output] = []
        status = "enabled" if (cell(row, "User State") or "Active") == "Active" else "disabled"
        changed = cell(row, "State Change Date")
        created = day_start(changed, "State Change Date") if changed else refreshed
        profile_key = f"{status}|{created}"
        if self.sent_profile.get(user) != profile_key:
            self.sent_profile[user] = profile_key
            outputs.append(Output("directory", {
                "kind": "profile", "user_id": user, "status": status, "created": created,
                "updated": refreshed,
            }))  # fmt: skip
        last = cell(row, "Last Activity Date")
        if last is not None:
            day = day_start(last, "Last Activity Date")
            if self.sent_day.get(user, "") < day:
                self.sent_day[user] = day
                outputs.extend(self._activity(row, user, day, day == refreshed))
        if not outputs:
            raise Ignored("nothing_new")  # the snapshot repeats what an earlier one said
        return outputs

    def _activity(self, row: dict[str, str], user: str, day: str, same_day: bool) -> list[Output]:
        counts: list[tuple[str, int]] = []
        if same_day and cell(row, "Report Period") == "1":
            for column, event_type in COUNTS:
                text = cell(row, column) or "0"
                if not text.isdigit():
                    raise Skip("bad_field", f"{column} {text!r} is not a count")
                counts.append((event_type, int(text)))
        if not any(count for _, count in counts):
            counts = [("view", 1)]
        return [
            day_event("graph-usage", user, day, event_type, number)
            for event_type, count in counts
            for number in range(count)
        ]

    def state(self) -> dict[str, Any]:
        """What was sent, for the checkpoint."""
        return {"sent_day": self.sent_day, "sent_profile": self.sent_profile}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume with what an earlier import sent."""
        self.sent_day = dict(state.get("sent_day", {}))
        self.sent_profile = dict(state.get("sent_profile", {}))
