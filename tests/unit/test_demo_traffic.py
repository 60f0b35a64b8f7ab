"""The demo's live traffic continues its history (same people, same pace); the export line."""

from __future__ import annotations

import itertools
import shlex
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from stream.demo_console import second_shell
from stream.generator import (
    active_on,
    build_organisation,
    generate_events,
    live_events,
    live_rate,
)
from stream.settings import Settings

USERS, DAYS, SEED = 600, 60, 7
START = date(2026, 3, 2)  # a Monday
LAST = START + timedelta(days=DAYS - 1)


def live_at(day: date, count: int) -> list[dict[str, object]]:
    """``count`` live events on ``day`` from noon, a second apart."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    instants = (noon + timedelta(seconds=i) for i in itertools.count())
    stream = live_events(USERS, SEED, lambda: next(instants), days=DAYS, start=START)
    return list(itertools.islice(stream, count))


class TestLiveRoster:
    def test_only_people_active_in_the_history_speak_live(self) -> None:
        """Every live actor spoke in the history's last 30 days or joined within the never-active
        grace (14 days, not yet flagged): nobody flagged inactive or never active speaks."""
        org = build_organisation(USERS, START, DAYS, SEED)
        joined = {p.user_id for p in org.people if p.created > LAST - timedelta(days=14)}
        recent = joined | {
            e["actor"]
            for e in generate_events(USERS, DAYS, START, SEED)
            if datetime.fromisoformat(e["time"]).date() > LAST - timedelta(days=30)
        }
        actors = {e["actor"] for e in live_at(LAST, 20_000)}
        assert set() == actors - recent
        assert len(actors) > 0.8 * len(recent)

    def test_churners_and_never_active_stay_silent(self) -> None:
        """No live event comes from a person churned by that day or never active."""
        org = build_organisation(USERS, START, DAYS, SEED)
        silent = {
            p.user_id
            for p in org.people
            if p.never_active or (p.churn_day is not None and p.churn_day <= LAST)
        }
        assert len(silent) > 50
        assert set() == {e["actor"] for e in live_at(LAST, 20_000)} & silent

    def test_the_roster_follows_the_clocks_day(self) -> None:
        """Someone who churns at midnight may speak before it and never after."""
        org = build_organisation(USERS, START, DAYS, SEED)
        after = LAST + timedelta(days=1)
        leaving = {p.user_id for p in active_on(org, LAST)} - {
            p.user_id for p in active_on(org, after)
        }
        assert leaving, "nobody churns at that midnight: pick another day"
        midnight = datetime(after.year, after.month, after.day, tzinfo=UTC)
        instants = (midnight + timedelta(seconds=i / 5 - 3600) for i in itertools.count())
        stream = live_events(USERS, SEED, lambda: next(instants), days=DAYS, start=START)
        events = list(itertools.islice(stream, 5 * 7200))
        late = {e["actor"] for e in events if datetime.fromisoformat(e["time"]) >= midnight}
        assert late and set() == late & leaving


class TestLivePace:
    def test_the_live_rate_gives_a_day_like_the_historys(self) -> None:
        """live_rate over a day is within 10% of the history's mean for that kind of day."""
        per_day = Counter(
            datetime.fromisoformat(e["time"]).astimezone(UTC).date()
            for e in generate_events(USERS, DAYS, START, SEED)
        )
        weekdays = [n for d, n in per_day.items() if d.weekday() < 5 and d > LAST - timedelta(28)]
        mean = sum(weekdays) / len(weekdays)
        monday = LAST - timedelta(days=LAST.weekday())
        assert abs(live_rate(USERS, DAYS, START, SEED, monday) * 86_400 - mean) < 0.1 * mean

    def test_weekends_are_quiet_live_too(self) -> None:
        """A Saturday's live rate is the history's weekend share of a weekday's."""
        saturday = START + timedelta(days=5 + 7 * 6)
        weekday = live_rate(USERS, DAYS, START, SEED, saturday - timedelta(days=1))
        assert 0.2 * weekday > live_rate(USERS, DAYS, START, SEED, saturday)


class TestSecondShell:
    def test_the_export_line_carries_what_this_shell_was_given(self, tmp_path: Path) -> None:
        """Environment settings exported and quoted, the clock always, secrets named only."""
        config = tmp_path / "esn-pulse.toml"
        config.write_text("")
        environ = {
            "ESN_TOPIC_PREFIX": "demo it.",
            "ESN_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0",
            "ESN_METRICS_USERNAME": "prom",
            "ESN_METRICS_PASSWORD": "s3cret",
            "ESN_CONFIG_FILE": str(config),
            "HOME": "/root",
        }
        settings = Settings(
            topic_prefix="demo it.",
            redis_url="redis://:hunter2@127.0.0.1:6379/0",
            metrics_username="prom",
            metrics_password=SecretStr("s3cret"),
            clock="event",
        )
        line, secrets = second_shell(settings, environ)
        words = shlex.split(line)
        assert "export" == words[0]
        assert {
            "ESN_CLOCK=event",
            "ESN_TOPIC_PREFIX=demo it.",
            "ESN_METRICS_USERNAME=prom",
            f"ESN_CONFIG_FILE={config.resolve()}",
        } == set(words[1:])
        assert ["ESN_METRICS_PASSWORD", "ESN_REDIS_URL"] == secrets
        assert "hunter2" not in line and "s3cret" not in line
