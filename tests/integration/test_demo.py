"""The demo tells the truth: its live traffic leaves the inactive list alone, through the worker.

The demo's own history (directory and events, :func:`stream.demo_history.replay_history`) goes
through the real worker under the event clock, then an hour of the demo's live traffic, its
clock fast-forwarded: the events are stamped an hour apart from first to last but sent at once.
The history ends 70 minutes ago, so the last live event is still in the past for the worker.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.cli_demo import prometheus_links
from stream.demo_console import applied_records, inactivity_counts, wait_for_worker
from stream.demo_history import replay_history
from stream.generator import DEMO_SEED, live_events
from stream.produce import produce_events
from stream.prometheus_local import LocalPrometheus, local_config
from stream.settings import Settings
from stream.store import RedisStore
from tests.support import free_port

pytestmark = pytest.mark.integration

USERS = 500
DAYS = 90
#: Live events per second of event time: about 20 times the history's pace for 500 users, so
#: a live roster that is not the history's own shows within the hour.
RATE = 1.0


def fast_forward(first: datetime, rate: float) -> Iterator[datetime]:
    """Instants ``1/rate`` seconds apart from ``first``: the live traffic's clock, at once."""
    return (first + timedelta(seconds=i / rate) for i in itertools.count())


class TestDemoLiveTraffic:
    async def test_an_hour_of_live_traffic_keeps_the_inactive_count(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Inactive after an hour of live events is within 10% of inactive at the start."""
        event_clock = settings.model_copy(update={"clock": "event", "sweep_interval_seconds": 0.5})
        worker = await worker_factory(event_clock).started()
        history_end = datetime.now(UTC) - timedelta(minutes=70)
        first_day = history_end.date() - timedelta(days=DAYS - 1)
        assert await replay_history(event_clock, USERS, DAYS, first_day, history_end, worker.proc)
        at_start = await inactivity_counts(store, event_clock)
        history_records = await applied_records(store, event_clock)

        count = int(3600 * RATE)
        instants = fast_forward(history_end, RATE)
        live = live_events(USERS, DEMO_SEED, lambda: next(instants), days=DAYS, start=first_day)
        sent = (await produce_events(event_clock, itertools.islice(live, count))).sent
        assert count == sent
        at_end = await wait_for_worker(
            store, event_clock, history_records + sent, worker.check_alive
        )

        before, after = at_start["inactive:30d"], at_end["inactive:30d"]
        assert before >= 20, f"too few inactive people to measure: {at_start}"
        assert abs(after - before) <= 0.1 * before, f"inactive {before} -> {after}"
        assert at_start["never_active"] == at_end["never_active"]


class TestDemoLinks:
    def test_every_printed_prometheus_link_answers(self, tmp_path: Path) -> None:
        """The demo's graph, rules and alerts links answer 200 on the local Prometheus."""
        prometheus = LocalPrometheus(tmp_path / "prometheus", free_port())
        prometheus.start(local_config({"local": ["127.0.0.1:9"]}, scrape_interval="5s"))
        try:
            links = prometheus_links(prometheus)
            assert ["alerts", "graph", "rules"] == sorted(links)
            for page, url in links.items():
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert (200, url) == (response.status, response.geturl()), page
            version = prometheus.api("status/buildinfo")["version"]
            if version.startswith("2.42.0+ds"):  # Debian's: the classic UI only
                assert f"{prometheus.url}/classic/alerts" == links["alerts"]
        finally:
            prometheus.stop()
