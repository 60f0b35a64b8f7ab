"""A realistic synthetic organisation and its ESN activity, deterministic for a seed.

Heavy-tailed activity per user (a few power users, a long quiet tail), some users who never log in,
some who churn (half of them fading over weeks first, the others stopping at once), holidays (one
to three weeks away, once or twice a year, then back), part-timers on two or three fixed weekdays,
late joiners, a weekday rhythm and working hours, communities with owners, and the odd event type
a source sends that the contract does not know. The churn model is what the at-risk backtest
(:mod:`stream.flags.backtest`) is scored on: fading churners are what an early warning should
catch, holidays the false alarms it must not raise too often.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

#: Event type mix of a typical intranet: mostly reading, some reacting, little creating.
_TYPE_WEIGHTS: dict[str, float] = {
    "view": 40, "login": 12, "like": 12, "comment": 8, "post": 5, "edit": 4, "share": 4,
    "mention": 3, "follow": 3, "upload": 3, "join": 2, "leave": 0.5,
    "react": 0.4, "poll_vote": 0.1,  # unknown to contract v1: kept and counted as "other"
}  # fmt: skip
_TYPES = list(_TYPE_WEIGHTS)
_WEIGHTS = list(_TYPE_WEIGHTS.values())
_OBJECT_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "view": ("post", "blog", "wiki_page", "forum_topic", "file", "profile", "community"),
    "like": ("post", "comment", "blog"),
    "comment": ("post", "blog", "forum_topic"),
    "post": ("post", "blog", "forum_topic", "wiki_page"),
    "edit": ("wiki_page", "blog", "post"),
    "share": ("post", "file", "blog"),
    "mention": ("comment", "post"),
    "follow": ("profile", "community"),
    "upload": ("file",),
    "join": ("community",),
    "leave": ("community",),
    "react": ("post",),
}
_OFFSETS = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)))  # fmt: skip
_SOURCES = ("connections", "viva-engage", "slack", "intranet")
#: The seed of ``esn-pulse demo``'s organisation: its directory, history and live traffic.
DEMO_SEED = 7


@dataclass
class Person:
    """One employee of the synthetic organisation."""

    user_id: str
    created: date
    daily_rate: float
    churn_day: date | None
    never_active: bool
    tz: timezone
    department: str
    communities: list[str] = field(default_factory=list)
    #: A fading churner's activity declines from this day to nothing at ``churn_day``.
    fade_start: date | None = None
    #: Days away ([first, end) pairs): nothing happens then, and the person comes back after.
    holidays: tuple[tuple[date, date], ...] = ()
    #: A part-timer's working weekdays (0 Monday); None: every weekday.
    workdays: frozenset[int] | None = None

    def rate_on(self, day: date) -> float:
        """Expected events on ``day``: the daily rate shaped by the weekday, fading, holidays."""
        if self.never_active or day < self.created:
            return 0.0
        if self.churn_day is not None and day >= self.churn_day:
            return 0.0
        if any(first <= day < end for first, end in self.holidays):
            return 0.0
        rate = self.daily_rate * daily_rhythm(day)
        if self.workdays is not None and day.weekday() < 5:
            # Their week's volume on fewer days: same weekly total as a full-timer of that rate.
            rate = rate * 5 / len(self.workdays) if day.weekday() in self.workdays else 0.0
        if self.fade_start is not None and self.churn_day is not None and day >= self.fade_start:
            rate *= (self.churn_day - day).days / (self.churn_day - self.fade_start).days
        return rate


@dataclass
class Organisation:
    """People and communities (owner lists) of one generated organisation."""

    people: list[Person]
    community_owners: dict[str, list[str]]


def build_organisation(users: int, start: date, days: int, seed: int) -> Organisation:
    """Draw the people and communities; everything after depends only on the seed."""
    rng = random.Random(seed)
    departments = [f"dept-{i:02d}" for i in range(max(1, users // 40))]
    communities = [f"c{i:04d}" for i in range(max(1, users // 20))]
    people = []
    for index in range(users):
        # Pareto tail: median around one event a day, a few users with dozens.
        rate = min(60.0, 0.35 * rng.paretovariate(1.4))
        joined_late = rng.random() < 0.15
        created = start + timedelta(days=rng.randrange(days) if joined_late else 0)
        churns = rng.random() < 0.12
        churn_day = created + timedelta(days=rng.randrange(1, max(2, days))) if churns else None
        person = Person(
            user_id=f"u{index:06d}",
            created=created,
            daily_rate=rate,
            churn_day=churn_day,
            never_active=rng.random() < 0.07,
            tz=rng.choice(_OFFSETS),
            department=rng.choice(departments),
            communities=rng.sample(communities, k=min(len(communities), rng.randint(0, 4))),
        )
        people.append(person)
    owners = {
        c: [p.user_id for p in rng.sample(people, k=min(2, len(people)))] for c in communities
    }
    # Drawn from a generator of their own, so the people above stay those of earlier versions.
    _draw_rhythms(people, start, days, random.Random(f"rhythms-{seed}"))
    return Organisation(people, owners)


#: Shares of the churn model (the backtest's data set; docs/design/early-warning.md).
FADING_SHARE = 0.5  # of churners: activity declining over 3 to 10 weeks before the stop
HOLIDAY_TAKERS = 0.85  # people who go away at all; of them, once (55%) or twice (45%) a year
PART_TIME_SHARE = 0.1  # people working on two or three fixed weekdays


def _draw_rhythms(people: list[Person], start: date, days: int, rng: random.Random) -> None:
    """Give each person their fading, holidays and working weekdays."""
    for person in people:
        if person.churn_day is not None and rng.random() < FADING_SHARE:
            fade = timedelta(days=rng.randint(21, 70))
            person.fade_start = max(person.created, person.churn_day - fade)
            if person.fade_start >= person.churn_day:
                person.fade_start = None  # churned on the day after joining: nothing to fade
        if rng.random() < PART_TIME_SHARE:
            person.workdays = frozenset(rng.sample(range(5), k=rng.choice((2, 3))))
        if rng.random() < HOLIDAY_TAKERS:
            person.holidays = _holidays(rng, start, days, twice=rng.random() < 0.45)


def _holidays(
    rng: random.Random, start: date, days: int, twice: bool
) -> tuple[tuple[date, date], ...]:
    """One or two absences of 1 to 3 weeks a year, over the history (and one running into it)."""
    away: list[tuple[date, date]] = []
    # Year blocks from three weeks before the history, so one may already be under way on day 0.
    block_start = start - timedelta(days=21)
    while block_start < start + timedelta(days=days):
        for _ in range(2 if twice else 1):
            first = block_start + timedelta(days=rng.randrange(365))
            away.append((first, first + timedelta(days=rng.randint(7, 21))))
        block_start += timedelta(days=365)
    return tuple(sorted(away))


def generate_events(users: int, days: int, start: date, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Activity events of ``users`` people over ``days`` days, in time order, as v1 dicts."""
    org = build_organisation(users, start, days, seed)
    rng = random.Random(seed + 1)
    sequence = 0
    for day_index in range(days):
        day = start + timedelta(days=day_index)
        batch: list[tuple[float, dict[str, Any]]] = []
        for person in org.people:
            rate = person.rate_on(day)
            if rate <= 0:
                continue
            for _ in range(_poisson(rng, rate)):
                # Working hours around 10:00-16:00 local, with a spread.
                hour = min(23.99, max(0.0, rng.gauss(12.5, 3.0)))
                local = datetime(day.year, day.month, day.day, tzinfo=person.tz) + timedelta(
                    hours=hour
                )
                sequence += 1
                event = _draw_event(rng, f"g{seed}-{sequence:09d}", person, local, org)
                batch.append((local.astimezone(UTC).timestamp(), event))
        batch.sort(key=lambda item: item[0])
        for _, event in batch:
            yield event


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal above)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold = math.exp(-lam)
    count, product = 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def active_on(org: Organisation, day: date) -> list[Person]:
    """The people of ``org`` who may act on ``day``: joined, not churned, not away, not never
    active, and working that weekday (part-timers)."""
    return [p for p in org.people if p.rate_on(day) > 0]


def daily_rhythm(day: date) -> float:
    """The share of a weekday's activity a day has: weekends are quiet."""
    return 0.12 if day.weekday() >= 5 else 1.0


def live_rate(users: int, days: int, start: date, seed: int, day: date) -> float:
    """Events per second that give ``day`` the history's daily volume (its expected total)."""
    org = build_organisation(users, start, days, seed)
    return sum(p.rate_on(day) for p in org.people) / 86_400


def live_events(
    users: int,
    seed: int = 7,
    clock: Callable[[], datetime] | None = None,
    *,
    days: int = 1,
    start: date | None = None,
) -> Iterator[dict[str, Any]]:
    """An endless stream of events stamped with the clock's time, continuing the history.

    The people are the history's own organisation (same ``users``, ``start``, ``days`` and
    ``seed``; ``start`` defaults to a history ending on the clock's first day), so only those
    active on the event's day speak, weighted by their rate that day: churners, people away and
    the never active stay silent, as they do in the history. ``clock`` is called once per event.
    The stream ends on a day nobody is active.
    """
    now = clock or (lambda: datetime.now(UTC))
    first = now()
    start = start or first.date() - timedelta(days=days - 1)
    org = build_organisation(users, start, days, seed)
    rng = random.Random(seed + 2)
    sequence = 0
    roster_day: date | None = None
    active: list[Person] = []
    cumulative: list[float] = []
    at = first
    while True:
        day = at.astimezone(UTC).date()
        if day != roster_day:
            # Who is active changes with the day (joiners, churners); drawn once per day.
            roster_day, active = day, active_on(org, day)
            # Cumulative weights once: choices() would otherwise rebuild them per event, O(users).
            cumulative = list(itertools.accumulate(p.rate_on(day) for p in active))
        if not active:
            return
        person = rng.choices(active, cum_weights=cumulative)[0]
        sequence += 1
        event_id = f"live{seed}-{at.timestamp():.0f}-{sequence}"
        yield _draw_event(rng, event_id, person, at.astimezone(person.tz), org)
        at = now()


def _draw_event(
    rng: random.Random, event_id: str, person: Person, local: datetime, org: Organisation
) -> dict[str, Any]:
    """One event of ``person`` at ``local`` time with a drawn type, object and context."""
    event_type = rng.choices(_TYPES, _WEIGHTS)[0]
    event: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "actor": person.user_id,
        "time": local.isoformat(timespec="milliseconds"),
        "source": rng.choice(_SOURCES),
    }
    objects = _OBJECT_FOR_TYPE.get(event_type)
    if objects:
        object_type = rng.choice(objects)
        event["object"] = {"type": object_type, "id": f"{object_type}-{rng.randrange(5000)}"}
    if person.communities and rng.random() < 0.5:
        event["community"] = rng.choice(person.communities)
    # The liked item's author, the mentioned or followed person: likes and mentions received.
    if event_type in ("mention", "follow", "like") and rng.random() < 0.8:
        event["target_user"] = rng.choice(org.people).user_id
    return event


def directory_records(
    users: int, start: date, days: int, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """The organisation's directory (v1 dicts): one profile per person, then memberships.

    Owners are members too. A few churned people are disabled at their churn day, as an HR
    feed would report it.
    """
    org = build_organisation(users, start, days, seed)
    rng = random.Random(seed + 3)
    for person in org.people:
        created = datetime(
            person.created.year, person.created.month, person.created.day, tzinfo=UTC
        )
        profile = {
            "kind": "profile",
            "user_id": person.user_id,
            "status": "enabled",
            "created": created.isoformat(),
            "updated": created.isoformat(),
            "department": person.department,
            "display_name": f"Person {person.user_id[1:]}",
        }
        yield profile
        if person.churn_day is not None and rng.random() < 0.3:
            left = _midnight(person.churn_day) + timedelta(hours=9)
            yield {**profile, "status": "disabled", "updated": left.isoformat()}
    for community, owners in org.community_owners.items():
        for user_id in owners:
            yield _membership(user_id, community, "owner", start)
    for person in org.people:
        for community in person.communities:
            yield _membership(person.user_id, community, "member", start)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _membership(user_id: str, community: str, role: str, day: date) -> dict[str, Any]:
    at = _midnight(day).isoformat()
    return {
        "kind": "membership",
        "user_id": user_id,
        "community": community,
        "role": role,
        "op": "add",
        "updated": at,
    }
