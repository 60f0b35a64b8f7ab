"""The at-risk list (issue 16) on the real Redis: the query's order, the page's rhythm and filters,
and ``esn-pulse at-risk`` in its three formats, from states committed through release.lua."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from stream.analytics.at_risk import at_risk_page
from stream.directory import ProfileV1
from stream.flags.machine import UserInactivity
from stream.flags.state_codec import encode_state
from stream.queries import at_risk_users
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.release_store import ReleaseCommit, ReleaseStore
from tests.e2e.test_cli import esn

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
DAY = 86_400_000


def held(since_days: int, active_days: int, last_days: int) -> str:
    """An at-risk state raised ``since_days`` after T0, ``active_days`` bits, last seen then."""
    return encode_state(
        UserInactivity(
            T0_MS,
            T0_MS,
            True,
            T0_MS + last_days * DAY,
            at_risk_ms=T0_MS + since_days * DAY,
            active_days=(1 << active_days) - 1,
        )
    )


STATES = {
    "=formula.user": held(30, 28, 10),  # newest flag: first
    "steady.sales": held(20, 16, 5),
    "plain.user": encode_state(UserInactivity(T0_MS, T0_MS, True, T0_MS + DAY)),  # not at risk
}


async def seed(store: RedisStore) -> None:
    await ReleaseStore(store).commit(0, ReleaseCommit("", "d", "", "", states=STATES))
    profiles = [
        ProfileV1(user_id=u, status="enabled", created=T0.isoformat(),
                  updated=(T0 + timedelta(minutes=1)).isoformat(), department=d)
        for u, d in (("=formula.user", "@R&D"), ("steady.sales", "Sales"))
    ]  # fmt: skip
    await DirectoryStore(store).apply([(0, p) for p in profiles])


class TestAtRiskList:
    async def test_the_list_is_newest_flag_first_with_the_rhythm(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Only at-risk holders, newest flag first, with active days of 56 and the usual gap."""
        from stream.cli_params import configured_definitions

        await seed(store)
        flagged = await at_risk_users(store, configured_definitions(settings))
        assert ["=formula.user", "steady.sales"] == [f.user_id for f in flagged]
        page = await at_risk_page(store, flagged, 0, 1)
        assert (2, 1) == (page["total"], page["next_offset"])
        (first,) = page["users"]
        assert {"active_days": 28, "window_days": 56, "usual_gap_days": 2.0} == first["rhythm"]
        assert "2026-04-01T00:00:00.000+00:00" == first["at_risk_since"]
        assert "@R&D" == first["department"]
        sales = await at_risk_page(store, flagged, 0, 10, department="Sales")
        assert (1, ["steady.sales"]) == (sales["total"], [u["user_id"] for u in sales["users"]])
        assert 3.5 == sales["users"][0]["rhythm"]["usual_gap_days"]
        none = await at_risk_page(store, flagged, 0, 10, community="c-none")
        assert (0, None, []) == (none["total"], none["next_offset"], none["users"])

    async def test_the_command_shows_it_as_table_csv_and_the_api_json(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """The table aligns, the CSV neutralises formula cells, --json is the API's page."""
        await seed(store)
        table = esn(settings, "at-risk")
        assert 0 == table.returncode, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[:3] == ["user", "at", "risk"]
        assert lines[1].startswith("=formula.user  2026-04-01")
        assert lines[-1].startswith("2 users at risk at ")
        shown = esn(settings, "at-risk", "--format", "csv")
        rows = list(csv.reader(io.StringIO(shown.stdout)))
        assert ["'=formula.user", "2026-04-01T00:00:00.000+00:00", "28", "56", "2.0"] == rows[1][:5]
        assert "'@R&D" == rows[1][6]
        page = json.loads(esn(settings, "at-risk", "--json", "--department", "Sales").stdout)
        assert 1 == page["total"]
        assert "steady.sales" == page["users"][0]["user_id"]
        assert {"active_days": 16, "window_days": 56, "usual_gap_days": 3.5} == page["users"][0][
            "rhythm"
        ]
