"""The benchmarks' shared input: generated activity records, what they hold, and topic cleanup.

bench.ingest and bench.scaling produce the same records (same generator, seed and start day), so
their throughputs are figures of one workload.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from stream import jsonutil
from stream.clients import new_admin
from stream.generator import generate_events
from stream.settings import Settings

#: The generator's first day and seed: every bench run draws the same people and events.
START_DAY = date(2026, 1, 5)
SEED = 42

#: A Kafka record as the benches produce it: (actor key, JSON value).
Record = tuple[bytes, bytes]


def generated_records(events: int, users: int, days: int) -> list[Record]:
    """The first ``events`` events of ``users`` people over at most ``days`` days."""
    records: list[Record] = []
    for event in generate_events(users, days, START_DAY, seed=SEED):
        records.append((event["actor"].encode(), jsonutil.dumps(event)))
        if len(records) >= events:
            break
    return records


@dataclass(frozen=True)
class InputFigures:
    """What a set of records holds, counted from the records themselves."""

    events: int
    users: int
    #: Distinct (user, UTC day) pairs with at least one event: what the daily sets store.
    user_days: int
    #: UTC days from the first event's to the last event's, both included.
    days: int
    #: Events of the busiest UTC clock hour.
    busiest_hour_events: int

    @property
    def peak_hour_factor(self) -> float:
        """The busiest hour's events over the mean hour's (events / (days x 24))."""
        return self.busiest_hour_events * self.days * 24 / self.events if self.events else 0.0

    @property
    def daily_active_share(self) -> float:
        """User-days over users x days: the share of the users active on a day."""
        return self.user_days / (self.users * self.days) if self.users and self.days else 0.0


def input_figures(actor_times: Iterable[tuple[str, str]]) -> InputFigures:
    """Count events, users, user-days, days spanned and the busiest hour of (actor, RFC 3339
    time) pairs."""
    events = 0
    hours: Counter[tuple[date, int]] = Counter()
    users: set[str] = set()
    user_days: set[tuple[str, date]] = set()
    first: date | None = None
    last: date | None = None
    for actor, time in actor_times:
        events += 1
        # The daily sets are per UTC day, whatever offset the event was stamped with.
        moment = datetime.fromisoformat(time).astimezone(UTC)
        day = moment.date()
        hours[day, moment.hour] += 1
        users.add(actor)
        user_days.add((actor, day))
        first = day if first is None or day < first else first
        last = day if last is None or day > last else last
    days = (last - first).days + 1 if first is not None and last is not None else 0
    busiest = max(hours.values(), default=0)
    return InputFigures(events, len(users), len(user_days), days, busiest)


def record_actor_times(records: Iterable[Record]) -> Iterable[tuple[str, str]]:
    """(actor, time) of each generated record, for :func:`input_figures`."""
    for _, value in records:
        event = jsonutil.loads(value)
        yield str(event["actor"]), str(event["time"])


async def drop_topics(settings: Settings, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix``."""
    admin = new_admin(settings)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()
