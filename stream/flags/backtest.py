"""The at-risk backtest, pure: replay a history through the machine and score its warnings.

:func:`replay` feeds the inactivity machine a history's changes in event-time order with the event
clock, as a worker would (batches, the watermark advancing, a last release at the history's end),
and keeps every transition. :func:`score` says how good the at-risk flags were: how many were
followed by inactivity at the first threshold, how many inactive people were warned first, how
early, and how many warnings were false alarms (docs/design/early-warning.md). Nothing here reads
a file or a clock.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from stream.flags.machine import (
    DAY_MS,
    Change,
    Definitions,
    InactivityMachine,
    Seen,
    Transition,
)

WEEK_MS: Final = 7 * DAY_MS
#: Changes a release is given at once: a worker's batch (the result does not depend on it).
BATCH: Final = 20_000


@dataclass(frozen=True)
class Replay:
    """What a replay gave: the transitions (time order) and the history's span (its first and
    newest activity)."""

    transitions: list[Transition]
    start_ms: int
    end_ms: int
    changes: int
    #: People the machine knew by the end (in the directory or seen).
    people: int


def replay(changes: Iterable[Change], definitions: Definitions, batch: int = BATCH) -> Replay:
    """Release ``changes`` (event-time order: see ``change_order``) through one machine.

    Each batch is released up to just before the next batch's first activity (a live worker's
    watermark would pass that instant before it), the last one up to the newest activity:
    crossings after the history's end are not known yet, nor are profiles dated after it.
    """
    machine = InactivityMachine(definitions)
    out: list[Transition] = []
    pending: list[Change] = []
    start_ms: int | None = None
    newest = 0
    count = 0
    for change in changes:
        count += 1
        # The event clock is activity's: a batch ends only where activity moves it on.
        if isinstance(change, Seen):
            if start_ms is None:
                start_ms = change.at_ms
            if len(pending) >= batch and change.at_ms > pending[-1].at_ms:
                out += machine.release(pending, change.at_ms - 1)
                pending = []
            newest = max(newest, change.at_ms)
        pending.append(change)
    # Profiles dated after the last activity are past the clock: not applied yet.
    last = [change for change in pending if change.at_ms <= newest]
    out += machine.release(last, newest)
    count -= len(pending) - len(last)
    return Replay(out, start_ms or 0, newest, count, len(machine.states))


@dataclass(frozen=True)
class Score:
    """How the at-risk flags of a replay did against inactivity at the first threshold."""

    #: At-risk flags raised early enough for their horizon to end inside the history.
    warnings: int
    #: Of those, followed by an inactive flag at the first threshold within the horizon.
    confirmed: int
    #: Raised too late to tell (their horizon runs past the history's end).
    unscored_warnings: int
    #: Inactive flags at the first threshold (each an episode of silence).
    inactive: int
    #: Of those, preceded by an at-risk flag in the same episode.
    warned_first: int
    #: Days from the at-risk flag to the inactive flag, for each warned episode.
    lead_days: tuple[float, ...]
    #: Enabled person-weeks in which the scored warnings could be raised.
    person_weeks: float
    horizon_days: float

    @property
    def false_alarms(self) -> int:
        """Scored warnings not followed by inactivity within the horizon."""
        return self.warnings - self.confirmed

    @property
    def precision(self) -> float | None:
        """Share of scored warnings followed by inactivity within the horizon."""
        return self.confirmed / self.warnings if self.warnings else None

    @property
    def recall(self) -> float | None:
        """Share of inactive flags (first threshold) preceded by a warning in the episode."""
        return self.warned_first / self.inactive if self.inactive else None

    @property
    def median_lead_days(self) -> float | None:
        """Median days between a warning and the inactivity it foretold."""
        return statistics.median(self.lead_days) if self.lead_days else None

    @property
    def false_alarms_per_1000_weekly(self) -> float | None:
        """False alarms per 1,000 enabled people per week."""
        if self.person_weeks <= 0:
            return None
        return self.false_alarms * 1000 / self.person_weeks

    def as_json(self) -> dict[str, float | int | None]:
        """The figures, rounded for a report."""

        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "precision": rounded(self.precision, 4),
            "recall": rounded(self.recall, 4),
            "median_lead_days": rounded(self.median_lead_days, 2),
            "false_alarms_per_1000_people_per_week": rounded(self.false_alarms_per_1000_weekly, 3),
            "warnings": self.warnings,
            "confirmed": self.confirmed,
            "false_alarms": self.false_alarms,
            "unscored_warnings": self.unscored_warnings,
            "inactive": self.inactive,
            "warned_first": self.warned_first,
            "person_weeks": round(self.person_weeks, 1),
            "horizon_days": self.horizon_days,
        }


def score(
    transitions: Iterable[Transition],
    first_threshold_ms: int,
    horizon_ms: int,
    end_ms: int,
    person_weeks: float,
) -> Score:
    """Score at-risk flags against inactive flags at ``first_threshold_ms``.

    A warning (at_risk at t) is confirmed by an inactive flag at the first threshold in
    (t, t + horizon]; one with t + horizon past ``end_ms`` is unscored. An inactive flag at the
    first threshold was warned when an at_risk flag came before it in the same episode: with no
    reactivated, withdrawn or other first-threshold inactive flag in between. The lead time is
    counted from the episode's first warning.
    """
    by_user: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        by_user[transition.user_id].append(transition)
    warnings = confirmed = unscored = inactive = warned = 0
    leads: list[float] = []
    for items in by_user.values():
        items.sort(key=lambda t: (t.at_ms, _KIND_ORDER.get(t.kind, 9)))
        # Times of this user's first-threshold inactive flags, ascending: what confirms.
        lapses = [t.at_ms for t in items if _is_lapse(t, first_threshold_ms)]
        lapse_index = 0
        episode_warning: int | None = None
        for item in items:
            if item.kind == "at_risk":
                while lapse_index < len(lapses) and lapses[lapse_index] <= item.at_ms:
                    lapse_index += 1
                followed = (
                    lapse_index < len(lapses) and lapses[lapse_index] <= item.at_ms + horizon_ms
                )
                if followed:
                    warnings, confirmed = warnings + 1, confirmed + 1
                elif item.at_ms + horizon_ms > end_ms:
                    unscored += 1
                else:
                    warnings += 1
                if episode_warning is None:
                    episode_warning = item.at_ms
            elif _is_lapse(item, first_threshold_ms):
                inactive += 1
                if episode_warning is not None:
                    warned += 1
                    leads.append((item.at_ms - episode_warning) / DAY_MS)
                episode_warning = None
            elif item.kind in ("reactivated", "withdrawn"):
                episode_warning = None
    return Score(
        warnings, confirmed, unscored, inactive, warned, tuple(leads), person_weeks,
        horizon_ms / DAY_MS,
    )  # fmt: skip


#: At one instant a warning comes before the flags that end or supersede it (the machine never
#: raises both at once; hand-built lists may).
_KIND_ORDER: Final = {"at_risk": 0, "inactive": 1, "reactivated": 2, "withdrawn": 2}


def _is_lapse(transition: Transition, first_threshold_ms: int) -> bool:
    return transition.kind == "inactive" and transition.threshold_ms == first_threshold_ms


def default_horizon_ms(definitions: Definitions) -> int:
    """The first threshold plus two weeks: long enough for any warning's lapse to show."""
    return definitions.thresholds_ms[0] + 14 * DAY_MS


def backtest(
    changes: Iterable[Change], definitions: Definitions, horizon_ms: int | None = None
) -> tuple[Score, Replay]:
    """Replay ``changes`` (event-time order) and score the at-risk flags they gave.

    The exposure is the enabled person-time from the history's start to its end less the
    horizon: the window in which a scored warning can be raised.
    """
    horizon = default_horizon_ms(definitions) if horizon_ms is None else horizon_ms
    spans = EnabledSpans()

    def noted(items: Iterable[Change]) -> Iterable[Change]:
        for change in items:
            spans.note(change)
            yield change

    result = replay(noted(changes), definitions)
    person_ms = spans.enabled_ms(result.start_ms, result.end_ms - horizon)
    first = definitions.thresholds_ms[0]
    outcome = score(result.transitions, first, horizon, result.end_ms, person_ms / WEEK_MS)
    return outcome, result


@dataclass
class EnabledSpans:
    """Each user's enabled intervals, to measure exposure in a window known only at the end.

    A user is enabled from first sight or an enabled profile, until a disabled one (as the
    machine has it).
    """

    _since: dict[str, int | None] = field(default_factory=dict)
    _closed: list[tuple[int, int]] = field(default_factory=list)

    def note(self, change: Change) -> None:
        """Account for one change (event-time order)."""
        user = change.user_id
        since = self._since.get(user)
        if isinstance(change, Seen):
            if user not in self._since:
                self._since[user] = change.at_ms
        elif change.enabled:
            if since is None:
                self._since[user] = change.at_ms
        else:
            if since is not None:
                self._closed.append((since, change.at_ms))
            self._since[user] = None

    def enabled_ms(self, start_ms: int, end_ms: int) -> int:
        """Enabled person-milliseconds inside [start_ms, end_ms]."""
        spans = [*self._closed, *((s, end_ms) for s in self._since.values() if s is not None)]
        return sum(max(0, min(last, end_ms) - max(first, start_ms)) for first, last in spans)
