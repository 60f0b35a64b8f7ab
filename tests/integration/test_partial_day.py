"""Today is a partial day in the API's trends and the report's data, by the engine's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream.analytics import views
from stream.analytics.days import day_of_ms, iso_day
from stream.flags.machine import definitions_from
from stream.report.build import collect
from stream.settings import Settings
from stream.store import RedisStore

pytestmark = pytest.mark.integration

#: The engine's now in these tests: 2026-05-10 15:00 UTC.
NOW_MS = int(datetime(2026, 5, 10, 15, tzinfo=UTC).timestamp() * 1000)
TODAY = day_of_ms(NOW_MS)


class TestTrendPoints:
    async def test_only_the_clocks_day_is_partial(self, store: RedisStore) -> None:
        """Days before the engine's day are whole; its day is partial."""
        answer = await views.trends(store, "dau", TODAY - 3, TODAY, NOW_MS)
        partial = {p["date"]: p["partial"] for p in answer["points"]}
        assert {iso_day(TODAY - i): i == 0 for i in range(4)} == partial

    async def test_a_past_period_has_no_partial_day(self, store: RedisStore) -> None:
        """A period that ended before today is all whole days."""
        answer = await views.trends(store, "events", TODAY - 40, TODAY - 10, NOW_MS)
        assert 31 == len(answer["points"])
        assert not any(p["partial"] for p in answer["points"])


class TestReportData:
    async def test_the_report_names_its_partial_day(
        self, store: RedisStore, settings: Settings
    ) -> None:
        """partial_day is the engine's day when the period holds it, else None."""
        definitions = definitions_from(settings)
        current = await collect(store, settings, definitions, TODAY - 6, TODAY, NOW_MS)
        assert iso_day(TODAY) == current["partial_day"]
        past = await collect(store, settings, definitions, TODAY - 20, TODAY - 7, NOW_MS)
        assert past["partial_day"] is None
