"""`esn-pulse inactive --format csv` with user ids, departments and communities that are formulas.

Profiles whose every field a spreadsheet would run (=, +, -, @, a tab) go through the real worker
until they are flagged never active; the CSV must hold each value, but none as a formula.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream import jsonutil
from stream.settings import Settings
from stream.topics import TopicNames
from tests.e2e.test_cli import esn
from tests.support import eventually, produce_raw

pytestmark = pytest.mark.e2e

#: Ids hold no control characters (the gate refuses them), so no tab or carriage return here.
HOSTILE = ["=cmd|'/C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", '=HYPERLINK("x")']
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


class TestFormulaCells:
    async def test_hostile_ids_are_text_in_the_csv(
        self, settings: Settings, worker_factory: Any
    ) -> None:
        """Each hostile user id, department and community is in the CSV with a leading quote."""
        event_clock = settings.model_copy(
            update={"clock": "event", "never_active_grace": "14d", "sweep_interval_seconds": 0.3}
        )
        start = datetime(2026, 4, 1, tzinfo=UTC)
        directory: list[dict[str, Any]] = []
        at = start.isoformat()
        for n, hostile in enumerate(HOSTILE):
            directory.append({"kind": "profile", "user_id": hostile, "status": "enabled",
                              "created": at, "updated": at,
                              "department": HOSTILE[-1 - n]})  # fmt: skip
            directory.append({"kind": "membership", "user_id": hostile, "community": hostile,
                              "role": "owner", "op": "add", "updated": at})  # fmt: skip
        topics = TopicNames.from_settings(settings)
        worker = await worker_factory(event_clock).started()
        await produce_raw(
            settings,
            [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
            topic=topics.directory,
        )
        # Ordinary users' activity moves each partition's event clock past the grace.
        events = [
            {"id": f"e{user}-{day}", "type": "login", "actor": f"ordinary{user}",
             "time": (start + timedelta(days=day)).isoformat()}
            for day in range(0, 40, 5)
            for user in range(60)
        ]  # fmt: skip
        await produce_raw(settings, [(e["actor"].encode(), jsonutil.dumps(e)) for e in events])

        async def all_flagged() -> bool:
            shown = await asyncio.to_thread(
                esn, event_clock, "inactive", "--never-active", "--format", "csv"
            )
            return shown.returncode == 0 and len(csv_rows(shown)) == len(HOSTILE)

        await eventually(all_flagged, 90, "the hostile profiles flagged", worker.check_alive)
        shown = esn(event_clock, "inactive", "--never-active", "--format", "csv")
        rows = csv_rows(shown)
        assert {"'" + h for h in HOSTILE} == {row["user_id"] for row in rows}
        assert {"'" + h for h in HOSTILE} == {row["department"] for row in rows}
        assert {"'" + h for h in HOSTILE} == {row["owner"] for row in rows}
        for row in rows:
            for cell in row.values():
                assert not cell.startswith(FORMULA_START), cell
