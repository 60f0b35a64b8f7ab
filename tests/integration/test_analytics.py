"""Issue 4's figures on the real stack, each against the oracle (tests/analytics_oracle.py).

One scenario serves the module: a generated organisation of 240 people over 90 days, plus 16
"returners" who go silent for six weeks and come back at staggered days, replayed with the event
clock so every figure is fixed by the data. The worker folds it, flags it, refreshes the
analytics; the tests read it through the HTTP API, the metrics and the topics.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing

from stream import jsonutil
from stream.analytics.initiatives import flagged_at, reactivated_by, week_ends
from stream.api.app import openapi_document
from stream.flags.machine import Transition
from stream.generator import directory_records, generate_events
from stream.kafka_admin import ensure_topics
from stream.privacy import merge_small_groups
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import FLAG_SEQ, TopicNames
from tests.analytics_oracle import (
    DAY,
    AnalyticsOracle,
    event_ms,
    expected_communities,
    latest_directory,
)
from tests.api_support import ApiProcess, make_token
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

START = date(2026, 6, 1)
DAYS = 90
INITIATIVE = "spring-training"
INITIATIVE_START = datetime(2026, 7, 16, tzinfo=UTC)  # day 45


def returners() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """16 people active on days 0-9, silent, back on day 50 + i: flagged, then reactivated.

    Also four leavers (active on days 0-5, one disabled on day 20) owning communities that the
    generated organisation would never orphan: c-legacy-0 sees no event at all (idle and
    orphaned), c-legacy-1 is where the returners post (orphaned only).
    """
    events, directory = [], []
    created = datetime(START.year, START.month, START.day, tzinfo=UTC)
    for i in range(16):
        user = f"r{i:03d}"
        directory.append(_profile(user, created, "dept-returners"))
        directory.append(_membership(user, "c-legacy-1", "member", created))
        for day in [*range(10), *range(50 + i, DAYS)]:
            at = created + timedelta(days=day, hours=10, minutes=i)
            event = {"id": f"{user}-{day}", "type": "login", "actor": user, "time": at.isoformat()}
            if day >= 80:
                event.update(type="post", community="c-legacy-1",
                             object={"type": "post", "id": f"legacy-{user}-{day}"})  # fmt: skip
            events.append(event)
    for i in range(4):
        user = f"l{i:03d}"
        directory.append(_profile(user, created, "dept-returners"))
        directory.append(_membership(user, f"c-legacy-{i}", "owner", created))
        for day in range(6):
            at = created + timedelta(days=day, hours=9)
            events.append(
                {"id": f"{user}-{day}", "type": "view", "actor": user, "time": at.isoformat()}
            )
    left = created + timedelta(days=20)
    directory.append({**_profile("l003", created, "dept-returners"), "status": "disabled",
                      "updated": left.isoformat()})  # fmt: skip
    return events, directory


def _profile(user: str, created: datetime, department: str) -> dict[str, Any]:
    return {"kind": "profile", "user_id": user, "status": "enabled", "created": created.isoformat(),
            "updated": created.isoformat(), "department": department}  # fmt: skip


def _membership(user: str, community: str, role: str, at: datetime) -> dict[str, Any]:
    return {"kind": "membership", "user_id": user, "community": community, "role": role,
            "op": "add", "updated": at.isoformat()}  # fmt: skip


@dataclass
class Scenario:
    settings: Settings
    worker: WorkerProcess
    events: list[dict[str, Any]]
    directory: list[dict[str, Any]]
    oracle: AnalyticsOracle
    transitions: list[Transition]
    initiative_users: list[str]
    tmp: Path
    server: ApiProcess
    token: str

    def get_json(self, path: str) -> tuple[int, Any]:
        """GET from esn-pulse api with a token holding both scopes."""
        return self.server.get_json(path, self.token)

    def api(self, path: str, **query: str) -> Any:
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        status, doc = self.get_json(url)
        assert status == 200, (url, doc)
        return doc


def _metrics(worker: WorkerProcess) -> str:
    return worker.get("/metrics")[1].decode()


def gauge_value(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not exposed")


@pytest.fixture(scope="module")
def scenario(
    local_stack: Any, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    settings = isolated(
        stack_settings,
        "analytics",
        clock="event",
        inactivity_thresholds="30d",
        never_active_grace="14d",
        allowed_lateness="1h",
        sweep_interval_seconds=0.3,
        analytics_interval_seconds=1.0,
        top_items_capacity=5000,
        min_group_size=45,
    )
    asyncio.run(ensure_topics(settings))
    extra_events, extra_directory = returners()
    directory = list(directory_records(240, START, DAYS, seed=11)) + extra_directory
    events = sorted(list(generate_events(240, DAYS, START, seed=11)) + extra_events, key=event_ms)
    oracle = AnalyticsOracle.of(events)
    transitions = expected_transitions(settings, events, directory)
    initiative_users = [f"r{i:03d}" for i in range(8)] + [f"u{i:06d}" for i in range(30)]
    tmp = tmp_path_factory.mktemp("analytics")
    worker = WorkerProcess(settings, REPO / ".esn-test" / "logs")

    async def setup() -> None:
        await worker.started()
        topics = TopicNames.from_settings(settings)
        await produce_raw(
            settings,
            [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
            topic=topics.directory,
        )
        await asyncio.sleep(2)  # profiles first, as an HR feed would have them
        await produce_raw(settings, keyed(events))
        store = RedisStore.from_settings(settings)
        try:
            await wait_fully_applied(store, settings, 180, worker.check_alive)
        finally:
            await store.close()
        flagged = await read_topic(settings, topics.flagged, expected=len(transitions), timeout=120)
        assert len(flagged) == len(transitions)
        settled = time.time() + 1.5

        async def refreshed() -> bool:
            return (
                gauge_value(_metrics(worker), "esn_analytics_last_refresh_timestamp_seconds")
                > settled
            )

        await eventually(refreshed, 60, "an analytics refresh after the flags", worker.check_alive)

    asyncio.run(setup())
    users_file = tmp / "initiative.csv"
    users_file.write_text("user_id\n" + "\n".join(initiative_users) + "\n")
    added = esn(settings, "initiative", "add", INITIATIVE, "--start", INITIATIVE_START.isoformat(),
                "--users", str(users_file))  # fmt: skip
    assert added.returncode == 0, added.stderr
    reader = make_token("analytics-tests", "aggregate", "people")
    # No cache: the figures are compared with the oracle and the worker's gauges as they are now.
    server = ApiProcess(
        settings, REPO / ".esn-test" / "logs", api_tokens=reader.entry, api_cache_seconds=0
    ).start()
    yield Scenario(
        settings,
        worker,
        events,
        directory,
        oracle,
        transitions,
        initiative_users,
        tmp,
        server,
        reader.secret,
    )
    server.stop()
    worker.stop()

    delete_deployment_keys(settings)


def day_iso(number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=number)).isoformat()


def series(scenario: Scenario, metric: str) -> dict[str, float]:
    o = scenario.oracle
    first = min(o.active)
    doc = scenario.api(
        "/api/v1/trends", metric=metric, **{"from": day_iso(first), "to": day_iso(o.today)}
    )
    return {p["date"]: p["value"] for p in doc["points"]}


class TestTrends:
    def test_daily_figures_are_exact(self, scenario: Scenario) -> None:
        """dau, new, returning, participating, contributing and events, every day."""
        o = scenario.oracle
        days = range(min(o.active), o.today + 1)
        events_per_day = {d: sum(o.content[d].values()) for d in days}
        expected = {
            "dau": {d: len(o.active.get(d, ())) for d in days},
            "new": {d: o.new_on(d) for d in days},
            "returning": {d: len(o.active.get(d, ())) - o.new_on(d) for d in days},
            "participating": {d: len(o.participating.get(d, ())) for d in days},
            "contributing": {d: len(o.contributing.get(d, ())) for d in days},
            "events": events_per_day,
        }
        for metric, values in expected.items():
            assert {day_iso(d): v for d, v in values.items()} == series(scenario, metric), metric

    def test_windows_are_within_the_hyperloglog_error(self, scenario: Scenario) -> None:
        """wau, mau28, mau within 3% (HLL: 0.81% standard error), stickiness consistent."""
        o = scenario.oracle
        for metric, width in (("wau", 7), ("mau28", 28), ("mau", 30)):
            got = series(scenario, metric)
            for d in range(min(o.active), o.today + 1):
                exact = len(o.window(o.active, d, width))
                assert abs(got[day_iso(d)] - exact) <= max(2, 0.03 * exact), (metric, d)
        sticky = series(scenario, "stickiness")
        mau = series(scenario, "mau")
        for d in range(min(o.active), o.today + 1):
            key = day_iso(d)
            assert sticky[key] == pytest.approx(len(o.active.get(d, ())) / mau[key], abs=1e-4)

    def test_tiers_and_headline_figures_are_exact(self, scenario: Scenario) -> None:
        """Registered/active/participating/contributing over 1, 7 and 30 days; stickiness."""
        o = scenario.oracle
        doc = scenario.api("/api/v1/summary")
        profiles, _ = latest_directory(scenario.directory)
        enabled = sum(1 for p in profiles.values() if p["status"] == "enabled")
        for window, days in (("1d", 1), ("7d", 7), ("30d", 30)):
            assert {
                "registered": enabled,
                "active": len(o.window(o.active, o.today, days)),
                "participating": len(o.window(o.participating, o.today, days)),
                "contributing": len(o.window(o.contributing, o.today, days)),
            } == doc["tiers"][window], window
        dau, mau = len(o.active[o.today]), len(o.window(o.active, o.today, 30))
        assert doc["stickiness"] == round(dau / mau, 4)
        assert doc["now"].startswith(day_iso(o.today))


class TestContent:
    def test_mix_by_type_and_object_and_by_day(self, scenario: Scenario) -> None:
        """Totals per (type, object type) over a range, and per-day counts by type."""
        o = scenario.oracle
        first, last = o.today - 20, o.today - 5
        doc = scenario.api("/api/v1/content", **{"from": day_iso(first), "to": day_iso(last)})
        total: Counter[tuple[str, str]] = Counter()
        for d in range(first, last + 1):
            total.update(o.content.get(d, Counter()))
        assert dict(total) == {
            (r["type"], r["object_type"]): r["events"] for r in doc["by_type_and_object"]
        }
        for row in doc["by_day"]:
            d = (date.fromisoformat(row["date"]) - date(1970, 1, 1)).days
            by_type: Counter[str] = Counter()
            for (kind, _), n in o.content.get(d, Counter()).items():
                by_type[kind] += n
            assert dict(by_type) == row["counts"]

    def test_top_items_per_day_and_week(self, scenario: Scenario) -> None:
        """The most-interacted-with items, ties broken by item id, for several days and weeks."""
        o = scenario.oracle
        for d in (o.today, o.today - 3, o.today - 40):
            doc = scenario.api("/api/v1/content/top", period="day", date=day_iso(d), limit="10")
            assert doc["exact"] is True
            assert o.top(range(d, d + 1), 10) == [
                (i["item"], i["interactions"]) for i in doc["items"]
            ]
            week = scenario.api("/api/v1/content/top", period="week", date=day_iso(d), limit="25")
            monday = d - (d + 3) % 7
            assert week["from"] == day_iso(monday)
            assert o.top(range(monday, monday + 7), 25) == [
                (i["item"], i["interactions"]) for i in week["items"]
            ]


class TestUsers:
    def test_likes_and_mentions_given_and_received(self, scenario: Scenario) -> None:
        """Per user, from the user view (never from metrics)."""
        o = scenario.oracle
        users = sorted(set(o.first) | set(o.received))
        checked = 0
        for user in users[::3]:
            doc = scenario.api(f"/api/v1/users/{user}")
            assert doc["likes"] == {
                "given": o.given[user]["like"],
                "received": o.received[user]["like"],
            }
            assert doc["mentions"] == {
                "given": o.given[user]["mention"],
                "received": o.received[user]["mention"],
            }
            assert doc["last_seen"] is None or event_ms({"time": doc["last_seen"]}) == o.last[user]
            checked += 1
        assert checked > 50
        assert sum(c["like"] for c in o.received.values()) > 100, "the scenario has likes received"


class TestCommunities:
    def test_every_community_matches_the_oracle(self, scenario: Scenario) -> None:
        """Members by role, active members, health, idle and orphaned, for every community."""
        expected = expected_communities(scenario.oracle, scenario.directory, 30 * DAY, 30 * DAY)
        doc = scenario.api("/api/v1/communities")
        skip = ("community", "last_activity")
        got = {
            c["community"]: {k: v for k, v in c.items() if k not in skip}
            for c in doc["communities"]
        }
        assert expected == got
        assert doc["counts"]["orphaned"] == sum(1 for c in expected.values() if c["orphaned"])
        assert doc["counts"]["idle"] == sum(1 for c in expected.values() if c["idle"])
        assert 0 < doc["counts"]["orphaned"] < len(expected), "the scenario has both kinds"
        only = scenario.api("/api/v1/communities", state="orphaned")["communities"]
        assert {c["community"] for c in only} == {c for c, e in expected.items() if e["orphaned"]}
        name = sorted(expected)[0]
        one = scenario.api(f"/api/v1/communities/{name}")
        assert one["people"] == expected[name]["people"]

    async def test_flags_are_published_once_per_change(self, scenario: Scenario) -> None:
        """The topic replays to the current state with no repeats; a change publishes one record."""
        settings = scenario.settings
        topic = TopicNames.from_settings(settings).communities_flagged
        expected = expected_communities(scenario.oracle, scenario.directory, 30 * DAY, 30 * DAY)
        records = await read_topic(settings, topic, expected=10**6, timeout=4)
        held = replay_flags(records)
        assert held == {
            c: {f for f in ("orphaned", "idle") if e[f]}
            for c, e in expected.items()
            if e["orphaned"] or e["idle"]
        }
        # A change: an idle, orphaned community's owner acts in it at the clock's now.
        idle_orphaned = sorted(c for c, e in expected.items() if e["idle"] and e["orphaned"]
                               and e["members_by_role"]["owner"])  # fmt: skip
        community = idle_orphaned[0]
        _, roles = latest_directory(scenario.directory)
        owner = sorted(roles[community]["owner"])[0]
        now = datetime.fromtimestamp(scenario.oracle.now / 1000, tz=UTC)
        event = {"id": "owner-returns", "type": "post", "actor": owner, "time": now.isoformat(),
                 "community": community,
                 "object": {"type": "post", "id": "hello-again"}}  # fmt: skip
        await produce_raw(settings, keyed([event]))
        more = await read_topic(settings, topic, expected=len(records) + 2, timeout=30)
        await asyncio.sleep(3)  # several refreshes: nothing may be published again
        final = await read_topic(settings, topic, expected=len(records) + 3, timeout=3)
        new = [jsonutil.loads(r.value) for r in final[len(records) :]]
        assert sorted((d["community"], d["kind"]) for d in new) == [
            (community, "idle_resolved"),
            (community, "orphaned_resolved"),
        ]
        assert len(more) == len(final)
        seqs = [int(dict(r.headers)[FLAG_SEQ]) for r in sorted(final, key=lambda r: r.offset)]
        assert list(range(1, len(seqs) + 1)) == seqs


def replay_flags(records: list[Any]) -> dict[str, set[str]]:
    held: dict[str, set[str]] = defaultdict(set)
    for record in sorted(records, key=lambda r: r.offset):
        doc = jsonutil.loads(record.value)
        flag = doc["flag"]
        if doc["kind"] == flag:
            assert flag not in held[doc["community"]], f"{flag} published twice in a row"
            held[doc["community"]].add(flag)
        else:
            assert flag in held[doc["community"]], f"{doc['kind']} without {flag}"
            held[doc["community"]].discard(flag)
    return {c: f for c, f in held.items() if f}


class TestInitiatives:
    def test_figures_match_the_published_flags_oracle(self, scenario: Scenario) -> None:
        """Inactive at start and reactivated per week, initiative against everyone else."""
        histories: dict[str, list[tuple[int, str]]] = defaultdict(list)
        codes = {"inactive": "i", "never_active": "n", "reactivated": "r", "withdrawn": "w"}
        for t in scenario.transitions:
            if t.kind == "at_risk" or t.only_at_risk:
                continue  # a warning, not a flag the initiatives count (no history entry)
            histories[t.user_id].append((t.at_ms, codes[t.kind]))
        profiles, _ = latest_directory(scenario.directory)
        start = int(INITIATIVE_START.timestamp() * 1000)
        ends = week_ends(start, scenario.oracle.now)
        targeted = set(scenario.initiative_users)
        others = {u for u, p in profiles.items() if p["status"] == "enabled"} - targeted

        def group(users: set[str]) -> tuple[int, list[int]]:
            flagged = [u for u in users if flagged_at(sorted(histories[u]), start)]
            return len(flagged), [
                sum(1 for u in flagged if reactivated_by(histories[u], start, e)) for e in ends
            ]

        doc = scenario.api(f"/api/v1/initiatives/{INITIATIVE}")
        for name, users in (("initiative", targeted), ("others", others)):
            flagged, weekly = group(users)
            assert flagged == doc[name]["inactive_at_start"], name
            assert weekly == [w["reactivated"] for w in doc[name]["weeks"]], name
        assert doc["initiative"]["inactive_at_start"] >= 8
        assert doc["initiative"]["weeks"][-1]["reactivated"] >= 8, "all returners in it came back"
        listed = scenario.api("/api/v1/initiatives")["initiatives"]
        assert [(i["name"], i["users"]) for i in listed] == [(INITIATIVE, len(targeted))]


class TestDepartmentsAndGauges:
    def test_departments_merge_small_groups(self, scenario: Scenario) -> None:
        """Departments under ESN_MIN_GROUP_SIZE (45 here) are reported as "other", or not at all."""
        profiles, _ = latest_directory(scenario.directory)
        enabled = {
            u: p.get("department") or "unassigned"
            for u, p in profiles.items()
            if p["status"] == "enabled"
        }
        names = merge_small_groups(Counter(enabled.values()), 45)
        expected: Counter[str] = Counter(names[d] for d in enabled.values() if d in names)
        doc = scenario.api("/api/v1/summary")
        assert {d: row["enabled"] for d, row in doc["departments"].items()} == dict(expected)
        assert "other" in doc["departments"] and "dept-returners" not in doc["departments"]
        assert all(row["enabled"] >= 45 for row in doc["departments"].values())

    def test_gauges_equal_the_api_and_carry_no_user_ids(self, scenario: Scenario) -> None:
        """Tier, stickiness, community and department gauges; no label value is a user id."""
        doc = scenario.api("/api/v1/summary")
        text = _metrics(scenario.worker)
        for window, row in doc["tiers"].items():
            for tier, users in row.items():
                assert (
                    gauge_value(text, "esn_tier_users", f'{{tier="{tier}",window="{window}"}}')
                    == users
                )
        assert gauge_value(text, "esn_stickiness_ratio") == pytest.approx(
            doc["stickiness"], abs=1e-3
        )
        for state in ("orphaned", "idle", "total"):
            assert (
                gauge_value(text, "esn_communities", f'{{state="{state}"}}')
                == doc["communities"][state]
            )
        assert (
            gauge_value(text, "esn_department_users", '{department="other",state="enabled"}')
            == doc["departments"]["other"]["enabled"]
        )
        users = set(scenario.oracle.first)
        for line in text.splitlines():
            if "{" in line and not line.startswith("#"):
                labels = line[line.index("{") + 1 : line.rindex("}")]
                values = {
                    part.split("=", 1)[1].strip('"') for part in labels.split(",") if "=" in part
                }
                assert not values & users, line


def _resolver() -> Any:
    document = openapi_document()
    resource = referencing.Resource.from_contents(
        document, default_specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource("urn:openapi", resource), document


class TestApi:
    def test_openapi_document_is_the_repos_and_every_answer_fits_it(
        self, scenario: Scenario
    ) -> None:
        """Served document == docs/api/openapi.json; each endpoint's 200 validates against it."""
        served = scenario.api("/api/v1/openapi.json")
        assert json.loads((REPO / "docs/api/openapi.json").read_text()) == served
        registry, document = _resolver()
        o = scenario.oracle
        calls = {
            "/api/v1/summary": "/api/v1/summary",
            "/api/v1/trends": f"/api/v1/trends?metric=mau&from={day_iso(o.today - 3)}",
            "/api/v1/users/{user_id}": "/api/v1/users/r001",
            "/api/v1/inactive": "/api/v1/inactive?limit=5",
            "/api/v1/at-risk": "/api/v1/at-risk?limit=5",
            "/api/v1/nudges/log": "/api/v1/nudges/log",
            "/api/v1/nudges/effect": "/api/v1/nudges/effect",
            "/api/v1/communities": "/api/v1/communities",
            "/api/v1/communities/{community_id}": "/api/v1/communities/c-legacy-1",
            "/api/v1/content": "/api/v1/content",
            "/api/v1/content/top": "/api/v1/content/top?period=week",
            "/api/v1/initiatives": "/api/v1/initiatives",
            "/api/v1/initiatives/{name}": f"/api/v1/initiatives/{INITIATIVE}",
        }
        assert set(calls) == set(document["paths"])
        for path, url in calls.items():
            status, body = scenario.get_json(url)
            assert status == 200, (url, body)
            ref = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ]["$ref"]
            schema = {"$ref": "urn:openapi" + ref}
            jsonschema.Draft202012Validator(schema, registry=registry).validate(body)

    @pytest.mark.parametrize(
        ("url", "status", "param"),
        [
            ("/api/v1/trends", 400, "metric"),
            ("/api/v1/trends?metric=dau&from=yesterday", 400, "from"),
            ("/api/v1/trends?metric=dau&from=2026-08-01&to=2026-07-01", 400, "from"),
            ("/api/v1/trends?metric=dau&from=2020-01-01&to=2026-07-01", 400, "from"),
            ("/api/v1/trends?metric=karma", 400, "metric"),
            ("/api/v1/trends?metric=dau&to=2026-13-01", 400, "to"),
            ("/api/v1/inactive?limit=0", 400, "limit"),
            ("/api/v1/inactive?limit=ten", 400, "limit"),
            ("/api/v1/inactive?threshold=45d", 400, "threshold"),
            ("/api/v1/inactive?never_active=maybe", 400, "never_active"),
            ("/api/v1/communities?state=sleepy", 400, "state"),
            ("/api/v1/content/top?period=month", 400, "period"),
            ("/api/v1/content/top?limit=1000", 400, "limit"),
            ("/api/v1/content?from=2026-02-30", 400, "from"),
            ("/api/v1/trends?metric=dau&to=0001-01-01", 400, "to"),
            ("/api/v1/content?to=0001-01-01", 400, "to"),
            ("/api/v1/content/top?date=9999-12-31&period=week", 400, "date"),
            ("/api/v1/inactive?limit=1001", 400, "limit"),
            ("/api/v1/users/nobody-at-all", 404, None),
            ("/api/v1/communities/no-such-community", 404, None),
            ("/api/v1/initiatives/no-such-initiative", 404, None),
        ],
    )
    def test_bad_requests_name_the_parameter(
        self, scenario: Scenario, url: str, status: int, param: str | None
    ) -> None:
        """4xx with {"error": {status, param, message}}, valid against the Error schema."""
        got, body = scenario.get_json(url)
        assert status == got, body
        assert body["error"]["status"] == status
        assert body["error"].get("param") == param
        assert body["error"]["message"]
        registry, _ = _resolver()
        schema = {"$ref": "urn:openapi#/components/schemas/Error"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(body)

    def test_inactive_pages_add_up_to_the_whole_list(self, scenario: Scenario) -> None:
        """Pages of 7 by offset: together the full list in order, next_offset null at the end."""
        whole = scenario.api("/api/v1/inactive", limit="1000")
        assert whole["total"] == len(whole["users"]) > 7 and whole["next_offset"] is None
        paged: list[Any] = []
        offset: int | None = 0
        while offset is not None:
            page = scenario.api("/api/v1/inactive", limit="7", offset=str(offset))
            assert (whole["total"], offset, 7) == (page["total"], page["offset"], page["limit"])
            assert len(page["users"]) <= 7
            paged += page["users"]
            offset = page["next_offset"]
        assert whole["users"] == paged
        past = scenario.api("/api/v1/inactive", offset=str(whole["total"] + 5))
        assert ([], None) == (past["users"], past["next_offset"])

    def test_summary_is_reused_within_the_cache_time(self, scenario: Scenario) -> None:
        """A second /summary within ESN_API_CACHE_SECONDS is the first one, a little older."""
        cached = ApiProcess(
            scenario.settings, REPO / ".esn-test" / "logs", api_cache_seconds=600
        ).start()
        try:
            status, first = cached.get_json("/api/v1/summary")
            assert 200 == status and 0 == first["cached_seconds"]
            status, second = cached.get_json("/api/v1/summary")
            assert 200 == status and second["cached_seconds"] > 0
            assert {**first, "cached_seconds": 0} == {**second, "cached_seconds": 0}
        finally:
            cached.stop()

    def test_the_worker_serves_no_api_nor_faust_pages(self, scenario: Scenario) -> None:
        """/api/v1, /router/ and /table/ are gone from the worker; its probes stay."""
        for path in ("/api/v1/summary", "/api/v1/openapi.json", "/router/", "/table/", "/graph/"):
            assert 404 == scenario.worker.get(path)[0], path
        assert 200 == scenario.worker.get("/health")[0]
        assert 200 == scenario.worker.get("/metrics")[0]


class TestReport:
    def test_report_draws_every_chart_in_headless_chromium(self, scenario: Scenario) -> None:
        """esn-pulse report: one offline file; Chromium runs it and every canvas has pixels."""
        out = scenario.tmp / "report.html"
        o = scenario.oracle
        made = esn(scenario.settings, "report", "--from", day_iso(o.today - 60), "--out", str(out))
        assert made.returncode == 0, made.stderr
        html = out.read_text()
        assert "<script src" not in html and "https://" not in html.split("<script>")[0]
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        assert chromium, (
            "Debian's chromium is installed by make install (deploy/install-system-deps.sh)"
        )
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={scenario.tmp / 'chromium'}", "--virtual-time-budget=10000",
             "--dump-dom", out.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        html_tag = dom.stdout.index("<html")
        head = dom.stdout[html_tag : dom.stdout.index(">", html_tag) + 1]
        assert 'data-charts-total="' in head, dom.stderr[-2000:]
        total = int(head.split('data-charts-total="')[1].split('"')[0])
        drawn = int(head.split('data-charts-drawn="')[1].split('"')[0])
        assert total >= 10 and drawn == total, head
        assert INITIATIVE in dom.stdout
