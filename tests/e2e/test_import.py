"""esn-pulse import of every format into the running stack, ending with who is active and who not.

One worker (event clock, one partition, so one clock for every format's fixtures) folds what each
format's import sends; the clock is then moved to 2026-07-01, and every fixture person must be in
the state their last activity and profile call for: active (seen in June), inactive (30 days
silent), never active (a profile, no activity, past the 14-day grace) or disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.kafka_admin import ensure_topics
from stream.queries import inactivity_state
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from tests.e2e.test_cli import esn
from tests.support import REPO, WorkerProcess, eventually, isolated, produce_raw, wait_fully_applied

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
# The export's time as the profiles' version: with the event clock a profile is applied when the
# clock reaches its version, and the file's modification time (the default) is today.
HR_MAP = (
    "user_id=Email,status=Employment Status,created=Hire Date,department=Department,"
    "updated==2026-06-01T00:00:00Z"
)
AS2 = "https://esn.example/users/"
LC = "8c3d7a40-{}-4f21-9b59-00000000000{}"

#: (format, source, extra options), directory sources first as an HR feed would come.
IMPORTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("scim", "scim/scim.json", ()),
    ("directory-csv", "directory/hr-export.csv", ("--map", HR_MAP)),
    ("directory-csv", "directory/memberships.csv", ()),
    ("activitystreams", "activitystreams", ()),
    ("csv", "csv/activity.csv", ("--map", "time=When,actor=Who,type=What")),
    ("connections", "connections", ()),
    ("m365-audit", "m365", ()),
    ("slack-audit", "slack/audit-logs-page.json", ()),
    ("slack-analytics", "slack/member-analytics-2026-04-15.json.gz", ()),
    ("slack-analytics", "slack/member-analytics-2026-06-10.json.gz", ()),
    ("graph-usage", "graph-usage", ()),
    ("stackexchange", "stackexchange", ()),
]
#: Per format: the people its fixtures speak of and the state each must end in.
EXPECTED: dict[str, dict[str, str]] = {
    "activitystreams": {AS2 + "frank": "active", AS2 + "bob": "inactive",
                        AS2 + "carol": "inactive", AS2 + "dave": "inactive"},
    "scim": {AS2 + "alice": "inactive", AS2 + "gina": "disabled"},
    "csv": {"carol": "active", "alice": "inactive", "bob": "inactive"},
    "connections": {LC.format("aaaa", 1): "active", LC.format("cccc", 3): "active",
                    LC.format("bbbb", 2): "inactive", LC.format("eeee", 5): "inactive"},
    "m365-audit": {"ann@contoso.com": "active", "cat@contoso.com": "active",
                   "ben@contoso.com": "inactive"},
    "directory-csv": {"dan@contoso.com": "disabled", "new@contoso.com": "never_active"},
    "slack-audit": {"sam@example.com": "active", "tom@example.com": "inactive",
                    "una@example.com": "never_active", "vic@example.com": "disabled"},
    "slack-analytics": {"xia@example.com": "active", "wes@example.com": "inactive"},
    "graph-usage": {"zoe@contoso.com": "active", "yan@contoso.com": "inactive",
                    "nia@contoso.com": "never_active", "quinn@contoso.com": "disabled"},
    "stackexchange": {"se-1": "active", "se-2": "inactive", "se-3": "inactive"},
}  # fmt: skip
CLOCK_TICK = {"id": "tick", "type": "login", "actor": "clock-tick", "time": "2026-07-01T00:00:00Z"}


@dataclass
class Imported:
    settings: Settings
    summaries: dict[str, list[dict[str, Any]]]
    states: dict[str, str]
    store_view: dict[str, Any]


def state_name(inactivity: Any) -> str:
    if inactivity is None:
        return "unknown"
    if not inactivity.enabled:
        return "disabled"
    if inactivity.never_active:
        return "never_active"
    return "inactive" if inactivity.flagged_count else "active"


@pytest.fixture(scope="module")
def imported(local_stack: Any, stack_settings: Settings) -> Iterator[Imported]:
    settings = isolated(stack_settings, "imp", clock="event", activity_partitions=1,
                        inactivity_thresholds="30d", never_active_grace="14d",
                        allowed_lateness="1h", sweep_interval_seconds=0.3)  # fmt: skip
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, REPO / ".esn-test" / "logs")
    summaries: dict[str, list[dict[str, Any]]] = {}
    expected = {user: state for people in EXPECTED.values() for user, state in people.items()}

    async def run() -> tuple[dict[str, str], dict[str, Any]]:
        await worker.started()
        for fmt, source, options in IMPORTS:
            done = await asyncio.to_thread(
                esn, settings, "import", "--format", fmt, str(FIXTURES / source), "--to-kafka",
                *options,
            )  # fmt: skip
            assert done.returncode == 0, f"{fmt} {source}: {done.stderr}"
            summaries.setdefault(fmt, []).append(json.loads(done.stdout))
        await produce_raw(settings, [(b"clock-tick", jsonutil.dumps(CLOCK_TICK))])
        store = RedisStore.from_settings(settings)
        states: dict[str, str] = {}
        try:
            await wait_fully_applied(store, settings, 120, worker.check_alive)

            async def settled() -> bool:
                for user in expected:
                    states[user] = state_name(await inactivity_state(store, settings, user))
                return states == expected

            # Each format's test reports its own people, so a miss here is not raised.
            with contextlib.suppress(AssertionError):
                await eventually(settled, 60, "every fixture person in their state")
            directory = DirectoryStore(store)
            view = {
                "engineering_owners": await directory.community_members(
                    "c0ffee00-0000-4000-8000-000000000001", "owner"),
                "engineering_members": await directory.community_members(
                    "c0ffee00-0000-4000-8000-000000000001", "member"),
                "sales_owners": await directory.community_members("Sales Community", "owner"),
                "zoe": await store.user_state("zoe@contoso.com"),
                "ann_profile": await directory.profile("ann@contoso.com"),
            }  # fmt: skip
            return states, view
        finally:
            async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
                await store.client.delete(key)
            await store.close()

    try:
        states, view = asyncio.run(run())
        yield Imported(settings, summaries, states, view)
    finally:
        worker.stop()


class TestEveryFormatIntoTheStack:
    @pytest.mark.parametrize("fmt", sorted(EXPECTED))
    def test_people_end_active_or_flagged(self, imported: Imported, fmt: str) -> None:
        """The format's import accounts for every record, and its people end in their state."""
        for summary in imported.summaries[fmt]:
            ignored, skipped = sum(summary["ignored"].values()), sum(summary["skipped"].values())
            assert summary["records_read"] == summary["records_mapped"] + ignored + skipped
            assert summary["activity_events"] + summary["directory_records"] > 0
        wanted = EXPECTED[fmt]
        assert {user: imported.states.get(user) for user in wanted} == wanted

    def test_directory_details_arrive(self, imported: Imported) -> None:
        """Connections memberships, HR departments and Graph's day-resolution counts."""
        view = imported.store_view
        assert LC.format("dddd", 4) in view["engineering_owners"], "added as owner"
        assert LC.format("bbbb", 2) in view["engineering_members"]
        assert LC.format("eeee", 5) not in view["engineering_members"], "left"
        assert view["sales_owners"] == {"ann@contoso.com"}
        assert view["ann_profile"].department == "Sales"
        assert view["zoe"].counts == {"post": 2, "view": 6}, "one report day's counts, once"


class TestImportCommand:
    def test_dry_run_and_bad_usage(self, settings: Settings, tmp_path: Path) -> None:
        """--dry-run validates and writes nothing; csv without --map is refused; --out writes."""
        scim = str(FIXTURES / "scim" / "scim.json")
        dry = esn(settings, "import", "--format", "scim", scim, "--dry-run")
        assert dry.returncode == 0 and json.loads(dry.stdout)["skipped"] == {"missing_user": 1}
        assert "3 records read: 2 mapped" in dry.stderr
        activity_csv = str(FIXTURES / "csv" / "activity.csv")
        refused = esn(settings, "import", "--format", "csv", activity_csv, "--dry-run")
        assert ExitCode.USAGE == refused.returncode and "--map" in refused.stderr
        out, skipped = tmp_path / "events.jsonl", tmp_path / "skipped.tsv"
        written = esn(settings, "import", "--format", "stackexchange",
                      str(FIXTURES / "stackexchange"), "--out", str(out),
                      "--skipped", str(skipped))  # fmt: skip
        assert written.returncode == 0, written.stderr
        assert len(out.read_text().splitlines()) == 8
        assert len(out.with_suffix(".directory.jsonl").read_text().splitlines()) == 3
        assert [line.split("\t")[0] for line in skipped.read_text().splitlines()] == [
            f"{FIXTURES}/stackexchange/{name}"
            for name in ("Users.xml:row 5", "Posts.xml:row 3", "Comments.xml:row 3")
        ]  # fmt: skip
