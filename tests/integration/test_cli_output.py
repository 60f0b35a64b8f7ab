"""What ``esn-pulse inactive`` and ``summary`` print, through the real worker and ``esn-pulse api``:
the JSON is exactly the API's, the tables line up, counts are pluralised, days silent are right.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from stream import jsonutil
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.topics import TopicNames
from tests.api_support import ApiProcess
from tests.e2e.test_cli import esn
from tests.support import (
    REPO,
    WorkerProcess,
    delete_deployment_keys,
    eventually,
    isolated,
    keyed,
    produce_raw,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
#: The engine's clock at the end: the last ordinary event.
NOW = datetime(2026, 6, 1, tzinfo=UTC)
#: user -> (department, last activity or None, community roles)
PEOPLE: dict[str, tuple[str, datetime | None, dict[str, str]]] = {
    "alice.quiet@corp.example": ("Sales", datetime(2026, 4, 1, 9, tzinfo=UTC),
                                 {"c-sales": "owner", "c-all": "member"}),
    "bob": ("Sales", datetime(2026, 4, 20, tzinfo=UTC), {}),
    # U+009B is a terminal's one-character CSI; the directory's gate lets it through.
    "carol": ("Engineering\x9b31m", None, {"c-eng": "follower"}),
}  # fmt: skip


@dataclass
class Flagged:
    settings: Settings
    api: ApiProcess


def directory_records() -> list[dict[str, Any]]:
    at = START.isoformat()
    out: list[dict[str, Any]] = []
    for user, (department, _, roles) in PEOPLE.items():
        out.append({"kind": "profile", "user_id": user, "status": "enabled", "created": at,
                    "updated": at, "department": department})  # fmt: skip
        for community, role in roles.items():
            out.append({"kind": "membership", "user_id": user, "community": community,
                        "role": role, "op": "add", "updated": at})  # fmt: skip
    return out


def activity() -> list[dict[str, Any]]:
    events = [
        {"id": f"last-{user}", "type": "post", "actor": user, "time": last.isoformat()}
        for user, (_, last, _) in PEOPLE.items()
        if last is not None
    ]
    # Ordinary people keep the event clock moving up to NOW (one partition: one clock).
    day = START
    while day <= NOW:
        events.append({"id": f"o-{day:%j}", "type": "login", "actor": "ordinary",
                       "time": day.isoformat()})  # fmt: skip
        day += timedelta(days=5)
    events.append({"id": "o-now", "type": "login", "actor": "ordinary", "time": NOW.isoformat()})
    return sorted(events, key=lambda e: e["time"])


@pytest.fixture(scope="module")
def flagged(
    local_stack: Any, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flagged]:
    """Alice and bob flagged inactive at 30d, carol never active, an initiative for alice and
    bob; the worker stopped after."""
    settings = isolated(stack_settings, "out", clock="event", activity_partitions=1,
                        inactivity_thresholds="30d,90d", never_active_grace="14d",
                        sweep_interval_seconds=0.3, min_group_size=1)  # fmt: skip
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, REPO / ".esn-test" / "logs")
    api = ApiProcess(settings, REPO / ".esn-test" / "logs")

    async def run() -> None:
        await worker.started()
        directory = [(r["user_id"].encode(), jsonutil.dumps(r)) for r in directory_records()]
        await produce_raw(settings, directory, topic=TopicNames.from_settings(settings).directory)
        await produce_raw(settings, keyed(activity()))

        async def all_flagged() -> bool:
            inactive = await asyncio.to_thread(esn, settings, "inactive", "--json")
            never = await asyncio.to_thread(esn, settings, "inactive", "--never-active", "--json")
            if inactive.returncode or never.returncode:
                return False
            totals = (json.loads(inactive.stdout)["total"], json.loads(never.stdout)["total"])
            return (2, 1) == totals

        await eventually(all_flagged, 120, "alice and bob inactive, carol never active",
                         worker.check_alive)  # fmt: skip

    try:
        asyncio.run(run())
        worker.stop()  # nothing moves from here on: the CLI and the API read the same state
        users = tmp_path_factory.mktemp("initiative") / "users.csv"
        users.write_text("user_id\nalice.quiet@corp.example\nbob\n")
        added = esn(settings, "initiative", "add", "quiet-drive", "--start", "2026-04-15",
                    "--users", str(users))  # fmt: skip
        assert 0 == added.returncode, added.stderr
        api.start()
        yield Flagged(settings, api)
    finally:
        api.stop()
        worker.stop()

        delete_deployment_keys(settings)


def columns(lines: list[str], header: list[str]) -> list[int]:
    """Where each header word starts in the header line."""
    return [lines[0].index(name) for name in header]


class TestSameJsonAsTheApi:
    @pytest.mark.parametrize(
        ("args", "query"),
        [
            ((), ""),
            (("--threshold", "30d"), "threshold=30d"),
            (("--never-active",), "never_active=true"),
        ],
        ids=["default", "30d", "never-active"],
    )
    def test_inactive_json_is_the_apis_page(
        self, flagged: Flagged, args: tuple[str, ...], query: str
    ) -> None:
        """inactive --json holds exactly what GET /api/v1/inactive answers for every row."""
        total = json.loads(esn(flagged.settings, "inactive", "--json", *args).stdout)["total"]
        status, page = flagged.api.get_json(f"/api/v1/inactive?limit={total}&{query}")
        assert 200 == status
        shown = esn(flagged.settings, "inactive", "--json", *args)
        assert (0, "") == (shown.returncode, shown.stderr)
        assert page == json.loads(shown.stdout)
        same = esn(flagged.settings, "inactive", "--format", "json", *args)
        assert shown.stdout == same.stdout, "--format json is --json"

    def test_summary_json_is_the_apis_summary(self, flagged: Flagged) -> None:
        """summary --json is /api/v1/summary, figure for figure (the API's answer is cached:
        its age differs)."""
        status, answer = flagged.api.get_json("/api/v1/summary")
        assert 200 == status
        shown = esn(flagged.settings, "summary", "--json")
        assert (0, "") == (shown.returncode, shown.stderr)
        doc = json.loads(shown.stdout)
        assert 0.0 == doc.pop("cached_seconds")
        answer.pop("cached_seconds")
        assert answer == doc
        assert {"30d": 2, "90d": 0} == doc["users"]["inactive"]

    @pytest.mark.parametrize("user", sorted(PEOPLE))
    def test_user_json_is_the_apis_user(self, flagged: Flagged, user: str) -> None:
        """user --json is GET /api/v1/users/{id}: activity, flags, directory, communities."""
        status, answer = flagged.api.get_json(f"/api/v1/users/{quote(user, safe='')}")
        assert 200 == status
        shown = esn(flagged.settings, "user", user, "--json")
        assert (0, "") == (shown.returncode, shown.stderr)
        assert answer == json.loads(shown.stdout)

    def test_initiatives_json_is_the_apis(self, flagged: Flagged) -> None:
        """initiative list --json and initiative show are /api/v1/initiatives[/NAME]."""
        listed = esn(flagged.settings, "initiative", "list", "--json")
        assert (200, json.loads(listed.stdout)) == flagged.api.get_json("/api/v1/initiatives")
        shown = esn(flagged.settings, "initiative", "show", "quiet-drive")
        status, answer = flagged.api.get_json("/api/v1/initiatives/quiet-drive")
        assert (200, answer) == (status, json.loads(shown.stdout))
        assert 2 == answer["users"]


class TestTables:
    def test_initiative_list(self, flagged: Flagged) -> None:
        """A table of name, start and users, and '1 initiative'."""
        lines = esn(flagged.settings, "initiative", "list").stdout.splitlines()
        assert ["initiative", "start", "users"] == lines[0].split()
        assert ["quiet-drive", "2026-04-15T00:00:00.000+00:00", "2"] == lines[1].split()
        assert "1 initiative" == lines[-1]

    def test_user_lines(self, flagged: Flagged) -> None:
        """One aligned fact a line, state and roles in words, counts by type at the end."""
        shown = esn(flagged.settings, "user", "alice.quiet@corp.example")
        assert (0, "") == (shown.returncode, shown.stderr)
        facts = {line[:11].strip(): line[12:] for line in shown.stdout.splitlines()[:11]}
        assert "flagged" == facts["state"]
        assert "inactive:30d" == facts["flags"]
        assert "2026-04-01T09:00:00.000+00:00" == facts["last seen"]
        assert "owner: c-sales; member: c-all" == facts["communities"]
        assert ["post", "1"] == shown.stdout.splitlines()[11].split()
        never = esn(flagged.settings, "user", "carol").stdout.splitlines()
        assert "last seen   never" in never and "department  Engineering\\x9b31m" in never

    def test_inactive_is_an_aligned_table(self, flagged: Flagged) -> None:
        """User, last seen date, days silent, department, roles; columns line up; '2 users'."""
        shown = esn(flagged.settings, "inactive")
        assert (0, "") == (shown.returncode, shown.stderr)
        lines = shown.stdout.splitlines()
        header = ["user", "last seen", "days silent", "department", "community roles"]
        starts = columns(lines, header)
        assert ["2 users inactive for 30d at 2026-06-01"] == lines[3:]
        bob, alice = lines[1], lines[2]  # newest silence first
        assert bob.startswith("bob ") and alice.startswith("alice.quiet@corp.example ")
        for line in (bob, alice):
            assert all(line[start - 1] == " " for start in starts[1:]), line
        assert ["2026-04-01", "60"] == alice[starts[1] : starts[3]].split(), (
            "whole days since the last activity (60 days 15 hours), by the engine's clock"
        )
        assert ["2026-04-20", "42"] == bob[starts[1] : starts[3]].split()
        assert alice[starts[2] : starts[3]].rstrip().endswith("60"), "numbers right-aligned"
        assert "Sales" == alice[starts[3] : starts[4]].strip()
        assert "owner: c-sales; member: c-all" == alice[starts[4] :]
        assert bob.endswith(" -"), "no community role"

    def test_one_never_active_user(self, flagged: Flagged) -> None:
        """'never' as last seen, silent since the profile was created; '1 user'; the escape
        control character in the department is shown escaped, not sent to the terminal."""
        shown = esn(flagged.settings, "inactive", "--never-active")
        lines = shown.stdout.splitlines()
        assert "1 user never active at 2026-06-01" == lines[-1]
        carol = lines[1].split()
        assert ["carol", "never", str((NOW - START).days)] == carol[:3]
        assert "Engineering\\x9b31m" == carol[3]
        assert "\x9b" not in shown.stdout
        assert "follower: c-eng" == lines[1][columns(lines, ["community roles"])[0] :]

    def test_summary_is_readable(self, flagged: Flagged) -> None:
        """Sections with aligned figures, not JSON."""
        shown = esn(flagged.settings, "summary")
        assert (0, "") == (shown.returncode, shown.stderr)
        text = shown.stdout
        assert text.startswith("ESN Pulse at 2026-06-01T00:00:00.000+00:00 (event clock)\n")
        for section in ("\nUsers\n", "\nActivity (users per window)\n", "\nCommunities\n",
                        "\nDepartments "):  # fmt: skip
            assert section in text
        users = text.split("\nUsers\n")[1].split("\n\n")[0].splitlines()
        # enabled: the three profiles and "ordinary", whom the engine knows by activity alone.
        assert [("enabled", "4"), ("inactive 30d", "2"), ("inactive 90d", "0"),
                ("never active", "1")] == [
            tuple(line.strip().rsplit(None, 1)) for line in users
        ]  # fmt: skip
        assert len({len(line) for line in users}) == 1, "figures right-aligned"
        departments = text.split("\nDepartments ")[1].splitlines()[1:]
        assert departments[0].split()[:2] == ["department", "enabled"]
        assert departments[0].endswith("never active  at risk")
        assert ["Sales", "2", "0", "2", "0", "0"] == next(
            line.split() for line in departments if line.split()[0] == "Sales"
        )
        assert "\x9b" not in text
        with pytest.raises(ValueError):
            json.loads(text)
