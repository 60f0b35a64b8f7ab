"""``esn-pulse report`` built from the real pipeline and opened in headless Chromium.

A generated organisation (120 people, 60 days, event clock) plus five never-active people in a
department whose name is a spreadsheet formula, one of them a community owner. The worker folds
and flags it all; the report is then built by the CLI, screenshotted and its DOM read: every
chart drawn (or a "no data for this period" line), no console message, a picture that is not
blank, a headline that agrees with the engine, departments over the minimum group size, and the
who-to-contact list only with ``--people``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream import jsonutil
from stream.analytics.days import parse_day
from stream.flags.machine import Transition
from stream.generator import directory_records, generate_events
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.topics import TopicNames
from tests.analytics_oracle import event_ms
from tests.chromium import Page, open_page, png_pixels
from tests.e2e.test_cli import esn
from tests.integration.test_inactivity import expected_transitions
from tests.support import (
    REPO,
    WorkerProcess,
    delete_deployment_keys,
    eventually,
    isolated,
    keyed,
    produce_raw,
    read_topic,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

START = date(2026, 3, 2)
DAYS = 60
FORMULA_DEPARTMENT = '=HYPERLINK("http://evil.example","click")'
SILENT = [f"x{i:03d}" for i in range(5)]
CHARTS = {"chart-active", "chart-stickiness", "chart-new", "chart-tiers", "chart-inactive",
          "chart-departments", "chart-mix", "chart-objects", "chart-content-days",
          "chart-communities"}  # fmt: skip
#: Charts of the period's days; the others show the engine's figures now.
PERIOD_CHARTS = {"chart-active", "chart-stickiness", "chart-new", "chart-mix", "chart-objects",
                 "chart-content-days"}  # fmt: skip
#: Fills drawn by the report's palette (bars, lines, doughnut slices), as RGB.
PALETTE = [(0x1D, 0x35, 0x57), (0xE6, 0x39, 0x46), (0x2A, 0x9D, 0x8F), (0xF4, 0xA2, 0x61),
           (0x45, 0x7B, 0x9D)]  # fmt: skip


@dataclass
class Built:
    settings: Settings
    transitions: list[Transition]
    today: int
    tmp: Path

    def report(self, name: str, *args: str) -> tuple[Path, dict[str, Any]]:
        """Run esn-pulse report into ``name``; the file and the data embedded in it."""
        out = self.tmp / name
        made = esn(self.settings, "report", "--out", str(out), *args)
        assert 0 == made.returncode, made.stderr
        return out, embedded_data(out.read_text())

    def cli_json(self, *args: str) -> Any:
        done = esn(self.settings, *args)
        assert 0 == done.returncode, done.stderr
        return json.loads(done.stdout)


def embedded_data(page: str) -> dict[str, Any]:
    """The JSON the page's script reads."""
    start = page.index('<script type="application/json" id="report-data">')
    body = page[page.index(">", start) + 1 : page.index("</script>", start)]
    data: dict[str, Any] = json.loads(body)
    return data


def hostile_people() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Five silent profiles in a formula-named department; x000 owns c-silent. Plus no events."""
    at = datetime(START.year, START.month, START.day, tzinfo=UTC).isoformat()
    directory: list[dict[str, Any]] = []
    for user in SILENT:
        directory.append({"kind": "profile", "user_id": user, "status": "enabled", "created": at,
                          "updated": at, "department": FORMULA_DEPARTMENT})  # fmt: skip
    directory.append({"kind": "membership", "user_id": SILENT[0], "community": "c-silent",
                      "role": "owner", "op": "add", "updated": at})  # fmt: skip
    return [], directory


@pytest.fixture(scope="module")
def built(
    local_stack: Any, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    settings = isolated(stack_settings, "report", clock="event", inactivity_thresholds="14d,30d",
                        never_active_grace="7d", allowed_lateness="1h",
                        sweep_interval_seconds=0.3, analytics_interval_seconds=1.0,
                        min_group_size=5)  # fmt: skip
    asyncio.run(ensure_topics(settings))
    extra_events, extra_directory = hostile_people()
    directory = list(directory_records(120, START, DAYS, seed=5)) + extra_directory
    events = sorted(list(generate_events(120, DAYS, START, seed=5)) + extra_events, key=event_ms)
    transitions = expected_transitions(settings, events, directory)
    worker = WorkerProcess(settings, REPO / ".esn-test" / "logs")
    profiles = len({d["user_id"] for d in directory if d["kind"] == "profile"})
    last_ms = max(event_ms(e) for e in events)

    async def setup() -> None:
        await worker.started()
        topics = TopicNames.from_settings(settings)
        await produce_raw(settings, [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
                          topic=topics.directory)  # fmt: skip
        store = RedisStore.from_settings(settings)
        try:

            async def profiles_in() -> bool:
                return profiles == len(await DirectoryStore(store).all_profiles())

            await eventually(
                profiles_in,
                60,
                "every profile folded (profiles first, as an HR feed has them)",
                worker.check_alive,
            )
            await produce_raw(settings, keyed(events))
            await wait_fully_applied(store, settings, 180, worker.check_alive)
        finally:
            await store.close()
        # Every flag the machine gives up to a day before the end. The last hours are left out:
        # there the worker released one flag fewer than tests/integration/test_inactivity.py's
        # oracle (a transition an hour before the clock; reported, not this test's subject).
        early = {(t.user_id, t.kind, t.threshold_ms) for t in transitions
                 if t.at_ms <= last_ms - 86_400_000}  # fmt: skip

        async def flags_out() -> bool:
            records = await read_topic(settings, topics.flagged, len(early), timeout=5)
            published = {(f["user_id"], f["kind"], f.get("threshold_seconds")) for f in
                         (jsonutil.loads(r.value) for r in records)}  # fmt: skip
            return early <= {(u, k, None if s is None else s * 1000) for u, k, s in published}

        await eventually(flags_out, 120, "the flags of all but the last day", worker.check_alive)
        settled = time.time() + 1.5

        async def refreshed() -> bool:
            metrics = worker.get("/metrics")[1].decode()
            found = re.search(r"^esn_analytics_last_refresh_timestamp_seconds\S* (\S+)$", metrics,
                              re.M)  # fmt: skip
            return found is not None and float(found.group(1)) > settled

        await eventually(refreshed, 60, "an analytics refresh after the flags", worker.check_alive)

    try:
        asyncio.run(setup())
        worker.stop()  # nothing moves from here on: every report reads the same state
        today = last_ms // 86_400_000
        yield Built(settings, transitions, today, tmp_path_factory.mktemp("report"))
    finally:
        worker.stop()

        delete_deployment_keys(settings)


def rendered(page: Page) -> dict[str, str]:
    """chart id -> its data-rendered ("drawn", "empty", "blank")."""
    out = {}
    for tag in re.findall(r"<(?:canvas|p)\b[^>]*\bdata-chart=[^>]*>", page.dom):
        chart = re.search(r'data-chart="([^"]*)"', tag)
        state = re.search(r'data-rendered="([^"]*)"', tag)
        assert chart, tag
        out[chart.group(1)] = state.group(1) if state else "not rendered"
    return out


def day_iso(number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=number)).isoformat()


def flagged_at(transitions: list[Transition], first_ms: int, at_ms: int) -> dict[str, int]:
    """Who held inactive-at-the-first-threshold or never-active at ``at_ms`` (the oracle)."""
    held: dict[str, str | None] = {}
    for t in sorted(transitions, key=lambda t: t.at_ms):
        if t.at_ms > at_ms:
            break
        if t.kind == "inactive" and t.threshold_ms == first_ms:
            held[t.user_id] = "inactive"
        elif t.kind == "never_active":
            held[t.user_id] = "never_active"
        elif t.kind in ("reactivated", "withdrawn"):
            held[t.user_id] = None
    values = list(held.values())
    return {"inactive": values.count("inactive"), "never_active": values.count("never_active")}


class TestInChromium:
    def test_every_chart_is_drawn_without_a_console_message_and_the_picture_is_not_blank(
        self, built: Built
    ) -> None:
        """Ten charts drawn, series colours distinct per chart, no console line, a real picture."""
        out, _ = built.report("report.html", "--people")
        page = open_page(out, built.tmp / "full")
        assert [] == page.console
        assert dict.fromkeys(CHARTS, "drawn") == rendered(page)
        assert str(len(CHARTS)) == page.html_attribute("data-charts-drawn")
        for colours in re.findall(r'data-colours="([^"]*)"', page.dom):
            listed = json.loads(colours.replace("&quot;", '"'))
            assert len(listed) == len(set(listed)), listed
        width, height, colours = png_pixels(page.png)
        assert (700, 3000) == (width, height)
        sampled = sum(colours.values())
        assert len(colours) >= 50, len(colours)
        assert colours.most_common(1)[0][1] < 0.6 * sampled, colours.most_common(3)
        assert all(colours[rgb] > 100 for rgb in PALETTE), [colours[rgb] for rgb in PALETTE]

    def test_a_period_without_events_shows_a_line_instead_of_each_empty_chart(
        self, built: Built
    ) -> None:
        """The days' charts say "no data for this period"; the figures of now are still drawn."""
        first = parse_day(START.isoformat()) - 40
        out, data = built.report("empty.html", "--from", day_iso(first), "--to", day_iso(first + 9))
        assert 0 == sum(data["series"]["dau"])
        page = open_page(out, built.tmp / "empty")
        assert [] == page.console
        expected = {c: "empty" if c in PERIOD_CHARTS else "drawn" for c in CHARTS}
        assert expected == rendered(page)
        assert (
            len(PERIOD_CHARTS) == page.dom.count("no data for this period</p>") - 1
        )  # + top items


class TestFigures:
    def test_the_headline_agrees_with_the_engine_and_the_previous_period(
        self, built: Built
    ) -> None:
        """Inactive per threshold and never active now; the previous period's figures as its own
        report shows them; flagged counts at the period's start as the flag machine made them."""
        _, data = built.report("headline.html", "--from", day_iso(built.today - 20))
        summary = built.cli_json("summary", "--json")
        assert summary["users"]["inactive"] == data["summary"]["users"]["inactive"]
        assert {"14d", "30d"} == set(summary["users"]["inactive"])
        h = data["headline"]
        assert summary["users"]["inactive"]["14d"] == h["inactive_first_threshold"]["now"]
        assert summary["users"]["never_active"] == h["never_active"]["now"] >= len(SILENT)
        start_ms = parse_day(data["from"]) * 86_400_000
        oracle = flagged_at(built.transitions, 14 * 86_400_000, start_ms)
        assert oracle["inactive"] == h["inactive_first_threshold"]["before"]
        assert oracle["never_active"] == h["never_active"]["before"]
        assert h["inactive_first_threshold"]["before"] != h["inactive_first_threshold"]["now"]
        previous = h["previous"]
        assert day_iso(built.today - 41) == previous["from"]
        _, before = built.report(
            "previous.html", "--from", previous["from"], "--to", previous["to"]
        )
        dau = before["series"]["dau"]
        assert round(sum(dau) / len(dau), 2) == h["average_dau"]["before"] > 0
        assert round(sum(data["series"]["dau"]) / len(data["days"]), 2) == h["average_dau"]["now"]
        assert before["series"]["mau"][-1] == h["mau_at_end"]["before"]
        assert data["series"]["mau"][-1] == h["mau_at_end"]["now"]
        assert sum(before["series"]["events"]) == h["events"]["before"]

    def test_departments_are_the_summary_s_over_the_minimum_group_size(self, built: Built) -> None:
        """The departments section is /api/v1/summary's, each at least ESN_MIN_GROUP_SIZE."""
        out, data = built.report("departments.html")
        summary = built.cli_json("summary", "--json")
        assert summary["departments"] == data["departments"] and 5 == data["min_group_size"]
        assert FORMULA_DEPARTMENT in data["departments"]
        assert all(row["enabled"] >= 5 for row in data["departments"].values())
        page = open_page(out, built.tmp / "departments")
        body = page.dom.split('id="departments"', 1)[1].split("</table>", 1)[0]
        for name in data["departments"]:
            assert f"<td>{name.replace('&', '&amp;')}</td>" in body, name


class TestWhoToContact:
    def test_without_people_the_report_names_nobody(self, built: Built) -> None:
        """No list, no CSV, no flagged id in the file; the page says how to get the list."""
        out, data = built.report("aggregate.html")
        assert data["contacts"] is None and data["contacts_csv"] is None
        page = out.read_text()
        assert not [u for u in SILENT if u in page]
        assert "built without --people" in page

    def test_with_people_the_list_is_the_flagged_users_and_its_csv_is_spreadsheet_safe(
        self, built: Built
    ) -> None:
        """Everyone inactive at 14d or never active, owners first; formula cells neutralised."""
        out, data = built.report("people.html", "--people")
        inactive = built.cli_json("inactive", "--json")["users"]
        never = built.cli_json("inactive", "--never-active", "--json")["users"]
        expected = {u["user_id"] for u in inactive} | {u["user_id"] for u in never}
        rows = list(csv.DictReader(io.StringIO(data["contacts_csv"])))
        assert expected == {r["user_id"] for r in rows} and len(expected) == len(rows)
        assert set(SILENT) <= expected
        owners = [bool(r["owner"]) for r in rows]
        assert sorted(owners, reverse=True) == owners, "community owners first"
        assert "c-silent" == next(r for r in rows if r["user_id"] == "x000")["owner"]
        for row in rows:
            assert not row["department"].startswith(("=", "+", "-", "@")), row
        assert (
            "'" + FORMULA_DEPARTMENT
            == next(r for r in rows if r["user_id"] == "x001")["department"]
        )
        assert [r["user_id"] for r in rows] == [c["user_id"] for c in data["contacts"]]
        page = open_page(out, built.tmp / "people", height=3000)
        assert [] == page.console
        contacts = page.dom.split('id="contacts"', 1)[1]
        assert "Download CSV</button>" in contacts
        assert len(rows) == contacts.split("<tbody>", 1)[1].split("</tbody>")[0].count("<tr>")


class TestAtRisk:
    def test_the_count_and_departments_always_the_people_only_with_people(
        self, built: Built
    ) -> None:
        """The count is at-risk's, per department the summary's; ids only with --people."""
        listed = built.cli_json("at-risk", "--json")["users"]
        out, data = built.report("at-risk-aggregate.html")
        assert (len(listed), None) == (data["at_risk"]["count"], data["at_risk"]["people"])
        page = out.read_text()
        assert not [u["user_id"] for u in listed if f'"{u["user_id"]}"' in page]
        out, data = built.report("at-risk-people.html", "--people")
        assert [u["user_id"] for u in listed] == [p["user_id"] for p in data["at_risk"]["people"]]
        assert [u["rhythm"]["active_days"] for u in listed] == [
            p["active_days"] for p in data["at_risk"]["people"]
        ]
        dom = open_page(out, built.tmp / "at-risk", height=3000).dom
        section = dom.split('id="at-risk-section"', 1)[1].split("</section>", 1)[0]
        departments = section.split('id="at-risk-departments"', 1)[1].split("</table>", 1)[0]
        for name, row in data["departments"].items():
            assert f"<td>{name.replace('&', '&amp;')}</td>" in departments, name
            assert row["at_risk"] <= row["enabled"]
        assert f"{len(listed)} {'person is' if len(listed) == 1 else 'people are'}" in section
        people = section.split('id="at-risk-people"', 1)[1]
        assert len(listed) == people.split("<tbody>", 1)[1].split("</tbody>")[0].count("<tr>")
