"""The generator's churn model: fading and sudden churners, holidays, part-timers, per seed."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

from stream.generator import build_organisation, generate_events

USERS, DAYS, SEED = 1500, 200, 11
START = date(2026, 1, 5)


def active_days() -> dict[str, Counter[date]]:
    """Events per person and local day (the day the generator draws them for)."""
    out: dict[str, Counter[date]] = defaultdict(Counter)
    for event in generate_events(USERS, DAYS, START, SEED):
        out[event["actor"]][datetime.fromisoformat(event["time"]).date()] += 1
    return out


ACTIVITY = active_days()
ORG = build_organisation(USERS, START, DAYS, SEED)


class TestChurnModel:
    def test_the_same_seed_draws_the_same_people(self) -> None:
        """Fading, holidays and workdays are part of the seed's organisation."""
        again = build_organisation(USERS, START, DAYS, SEED)
        assert ORG.people == again.people
        assert ORG.people != build_organisation(USERS, START, DAYS, SEED + 1).people

    def test_both_kinds_of_churners(self) -> None:
        """About half the churners fade first, the others stop at once; none acts after."""
        churners = [p for p in ORG.people if p.churn_day is not None]
        fading = [p for p in churners if p.fade_start is not None]
        assert 0.35 < len(fading) / len(churners) < 0.65
        for person in churners:
            assert person.churn_day is not None
            assert all(day < person.churn_day for day in ACTIVITY.get(person.user_id, {}))

    def test_faders_slow_down_before_they_stop(self) -> None:
        """Over all faders, the fade's last third holds far fewer events than its first."""
        first = last = 0
        for person in ORG.people:
            if person.fade_start is None or person.churn_day is None:
                continue
            third = (person.churn_day - person.fade_start) / 3
            for day, count in ACTIVITY.get(person.user_id, {}).items():
                if person.fade_start <= day < person.fade_start + third:
                    first += count
                elif day >= person.churn_day - third:
                    last += count
        assert first > 500 and last < 0.35 * first

    def test_nobody_acts_on_holiday_and_people_come_back(self) -> None:
        """No event inside a holiday; most regulars away act again within a week of the end."""
        came_back = away = 0
        for person in ORG.people:
            days = ACTIVITY.get(person.user_id, Counter())
            for first, end in person.holidays:
                assert not any(first <= day < end for day in days)
                regular = sum(1 for d in days if first - timedelta(28) <= d < first) >= 12
                stays = person.churn_day is None or person.churn_day > end + timedelta(7)
                if regular and stays and end + timedelta(7) < START + timedelta(DAYS):
                    away += 1
                    came_back += any(end <= d < end + timedelta(7) for d in days)
        assert away > 100 and came_back > 0.9 * away

    def test_part_timers_work_on_their_weekdays(self) -> None:
        """A part-timer's weekday activity falls on their two or three working weekdays only."""
        part_timers = [p for p in ORG.people if p.workdays is not None]
        assert 0.05 < len(part_timers) / USERS < 0.15
        for person in part_timers:
            assert person.workdays is not None and len(person.workdays) in (2, 3)
            weekdays = {d.weekday() for d in ACTIVITY.get(person.user_id, {}) if d.weekday() < 5}
            assert weekdays <= person.workdays

    def test_the_volume_is_the_expected_one(self) -> None:
        """The history's events are within 3% of the people's expected rates summed."""
        expected = sum(
            p.rate_on(START + timedelta(days=d)) for p in ORG.people for d in range(DAYS)
        )
        actual = sum(sum(days.values()) for days in ACTIVITY.values())
        assert abs(actual - expected) < 0.03 * expected
