"""The backtest's scoring against a brute-force reading of its definitions, and its replay."""

from __future__ import annotations

import random
import statistics

import pytest

from stream.flags.backtest import EnabledSpans, Score, replay, score
from stream.flags.machine import (
    DAY_MS,
    Change,
    Definitions,
    InactivityMachine,
    ProfileChange,
    Seen,
    Transition,
    TransitionKind,
    change_order,
)

T0 = 30 * DAY_MS
HORIZON = 44 * DAY_MS
ORDER = {"at_risk": 0, "inactive": 1, "reactivated": 2, "withdrawn": 2}


def random_transitions(rng: random.Random, users: int = 6, end_days: int = 200) -> list[Transition]:
    """Arbitrary transitions, valid or not: the definitions must hold for any list."""
    kinds: list[TransitionKind] = ["at_risk", "inactive", "reactivated", "withdrawn"]
    out = []
    for _ in range(rng.randrange(0, 40)):
        kind = rng.choice(kinds)
        threshold = rng.choice((T0, 90 * DAY_MS)) if kind == "inactive" else None
        # Coarse times, so that ties at one instant are common.
        at = rng.randrange(end_days) * DAY_MS // rng.choice((1, 1, 2))
        out.append(Transition(at, f"u{rng.randrange(users)}", kind, threshold_ms=threshold))
    rng.shuffle(out)
    return out


def brute_force(
    transitions: list[Transition], end_ms: int
) -> tuple[int, int, int, int, int, list[float]]:
    """Each definition read literally, over every pair: (warnings, confirmed, unscored, inactive,
    warned_first, leads)."""
    warnings = confirmed = unscored = 0
    for a in transitions:
        if a.kind != "at_risk":
            continue
        hit = any(
            i.user_id == a.user_id and i.kind == "inactive" and i.threshold_ms == T0
            and a.at_ms < i.at_ms <= a.at_ms + HORIZON
            for i in transitions
        )  # fmt: skip
        if hit:
            warnings, confirmed = warnings + 1, confirmed + 1
        elif a.at_ms + HORIZON > end_ms:
            unscored += 1
        else:
            warnings += 1
    inactive = warned = 0
    leads: list[float] = []
    users = {t.user_id for t in transitions}
    for user in users:
        # Stable sort by (time, kind order): the order the definitions speak of.
        items = sorted((t for t in transitions if t.user_id == user),
                       key=lambda t: (t.at_ms, ORDER[t.kind]))  # fmt: skip
        for n, item in enumerate(items):
            if not (item.kind == "inactive" and item.threshold_ms == T0):
                continue
            inactive += 1
            # Back to the episode's start: the last reactivated, withdrawn or lapse before it.
            begin = 0
            for m in range(n):
                ends = items[m].kind in ("reactivated", "withdrawn") or (
                    items[m].kind == "inactive" and items[m].threshold_ms == T0
                )
                if ends:
                    begin = m + 1
            warns = [items[m].at_ms for m in range(begin, n) if items[m].kind == "at_risk"]
            if warns:
                warned += 1
                leads.append((item.at_ms - min(warns)) / DAY_MS)
    return warnings, confirmed, unscored, inactive, warned, leads


class TestScoreAgainstBruteForce:
    @pytest.mark.parametrize("seed", range(300))
    def test_random_lists(self, seed: int) -> None:
        """Every count and the lead times equal the literal reading, ties at an instant too."""
        rng = random.Random(seed)
        transitions = random_transitions(rng)
        end = rng.randrange(100, 220) * DAY_MS
        got = score(transitions, T0, HORIZON, end, person_weeks=100.0)
        warnings, confirmed, unscored, inactive, warned, leads = brute_force(transitions, end)
        assert (warnings, confirmed, unscored) == (got.warnings, got.confirmed,
                                                   got.unscored_warnings)  # fmt: skip
        assert (inactive, warned) == (got.inactive, got.warned_first)
        assert sorted(leads) == sorted(got.lead_days)

    def test_a_warned_lapse(self) -> None:
        """Warned 12 days before the lapse: precision, recall 1, lead 12 days, no false alarm."""
        got = score(
            [Transition(40 * DAY_MS, "u", "inactive", threshold_ms=T0),
             Transition(28 * DAY_MS, "u", "at_risk")],
            T0, HORIZON, 200 * DAY_MS, person_weeks=10.0,
        )  # fmt: skip
        assert (1.0, 1.0, 12.0, 0.0) == (got.precision, got.recall, got.median_lead_days,
                                         got.false_alarms_per_1000_weekly)  # fmt: skip

    def test_a_reactivation_ends_the_episode(self) -> None:
        """Back from a holiday, then gone: the lapse was not warned in its episode, and the
        warning before the holiday's end still counts as confirmed within the horizon."""
        got = score(
            [Transition(10 * DAY_MS, "u", "at_risk"),
             Transition(15 * DAY_MS, "u", "reactivated"),
             Transition(46 * DAY_MS, "u", "inactive", threshold_ms=T0)],
            T0, HORIZON, 200 * DAY_MS, person_weeks=10.0,
        )  # fmt: skip
        assert (1, 1, 0) == (got.warnings, got.confirmed, got.warned_first)
        assert got.recall == 0.0 and got.median_lead_days is None

    def test_false_alarms_per_1000_people_a_week(self) -> None:
        """Two warnings with nothing after them over 500 person-weeks: 4 per 1,000 a week; one
        raised near the end is not scored."""
        got = score(
            [Transition(10 * DAY_MS, "a", "at_risk"), Transition(20 * DAY_MS, "b", "at_risk"),
             Transition(190 * DAY_MS, "c", "at_risk")],
            T0, HORIZON, 200 * DAY_MS, person_weeks=500.0,
        )  # fmt: skip
        assert (2, 1, 4.0) == (got.false_alarms, got.unscored_warnings,
                               got.false_alarms_per_1000_weekly)  # fmt: skip
        assert got.precision == 0.0 and got.recall is None

    def test_the_json_figures(self) -> None:
        """Nothing to score: the ratios are None, not a division by zero."""
        got = Score(0, 0, 0, 0, 0, (), 0.0, 44.0).as_json()
        rate = got["false_alarms_per_1000_people_per_week"]
        assert (None, None, None, None) == (got["precision"], got["recall"],
                                            got["median_lead_days"], rate)  # fmt: skip


def random_history(rng: random.Random) -> list[Change]:
    """A few users' activity with gaps and a disable or two, in event-time order."""
    changes: list[Change] = []
    for n in range(8):
        user = f"u{n}"
        if rng.random() < 0.5:
            changes.append(ProfileChange(0, user, True, 0))
        day = rng.randrange(5)
        while day < 150:
            changes.append(Seen(day * DAY_MS + rng.randrange(DAY_MS), user))
            day += rng.choice((1, 1, 2, 3, 10, 40))
        if rng.random() < 0.2:
            changes.append(ProfileChange(rng.randrange(150) * DAY_MS, user, False, 0))
    return sorted(changes, key=change_order)


class TestReplay:
    @pytest.mark.parametrize("seed", range(20))
    def test_batches_do_not_change_the_transitions(self, seed: int) -> None:
        """Released in batches of 1, 7 or all at once: the same transitions as one release."""
        history = random_history(random.Random(seed))
        definitions = Definitions((T0, 90 * DAY_MS), 14 * DAY_MS)
        whole = InactivityMachine(definitions).release(history, history[-1].at_ms)
        for batch in (1, 7, len(history)):
            assert whole == replay(history, definitions, batch).transitions

    def test_the_span_and_people(self) -> None:
        """From the first to the newest activity, and everyone the machine knew."""
        history = [ProfileChange(DAY_MS, "a", True, 0), Seen(3 * DAY_MS, "b"),
                   Seen(9 * DAY_MS, "a")]  # fmt: skip
        result = replay(history, Definitions((T0,), 14 * DAY_MS))
        assert (3 * DAY_MS, 9 * DAY_MS, 3, 2) == (result.start_ms, result.end_ms, result.changes,
                                                  result.people)  # fmt: skip

    def test_profiles_after_the_last_activity_are_past_the_clock(self) -> None:
        """A disable dated after the newest event is not applied: no withdrawn from the future."""
        definitions = Definitions((DAY_MS,), 14 * DAY_MS)
        history = [Seen(0, "a"), Seen(3 * DAY_MS, "b"), ProfileChange(9 * DAY_MS, "a", False, 0)]
        result = replay(history, definitions)
        assert [Transition(DAY_MS, "a", "inactive", DAY_MS, 0, 0)] == result.transitions
        assert (2, 1) == (result.changes, result.people - 1)


class TestExposure:
    def test_enabled_time_inside_the_window(self) -> None:
        """From first sight or an enabled profile until disabled, clipped to the window."""
        spans = EnabledSpans()
        for change in [
            ProfileChange(0, "a", True, 0),  # enabled all along: 10 days in [5, 15]
            Seen(2 * DAY_MS, "b"),  # seen at 2, disabled at 8: 3 days in [5, 15]
            ProfileChange(8 * DAY_MS, "b", False, 0),
            ProfileChange(12 * DAY_MS, "b", True, 0),  # back at 12: 3 more
            ProfileChange(1 * DAY_MS, "c", False, 0),  # never enabled: nothing
        ]:
            spans.note(change)
        assert 16 * DAY_MS == spans.enabled_ms(5 * DAY_MS, 15 * DAY_MS)


def test_median_is_the_statistics_median() -> None:
    """The median lead time of an even count is the mean of the middle two."""
    got = Score(4, 4, 0, 4, 4, (1.0, 2.0, 5.0, 9.0), 1.0, 44.0)
    assert statistics.median([1.0, 2.0, 5.0, 9.0]) == got.median_lead_days


class TestOnTheMachinesTransitions:
    @pytest.mark.parametrize("seed", range(30))
    def test_warned_lapses_are_those_the_machine_says_superseded_a_warning(self, seed: int) -> None:
        """Each inactive flag that ends an at-risk flag (its at_risk_ms) is a warned lapse, with
        that flag's lead; the episode reading and the machine's own record agree."""
        from stream.flags.machine import AtRiskRule

        rng = random.Random(seed)
        history = random_history(rng)
        rule = AtRiskRule(rng.choice((2, 4, 8)), rng.choice((1500, 3000)), 2 * DAY_MS)
        definitions = Definitions((T0, 90 * DAY_MS), 14 * DAY_MS, rule)
        result = replay(history, definitions, batch=5)
        got = score(result.transitions, T0, HORIZON, result.end_ms, person_weeks=1.0)
        superseding = [
            t for t in result.transitions
            if t.kind == "inactive" and t.threshold_ms == T0 and t.at_risk_ms is not None
        ]  # fmt: skip
        leads = [(t.at_ms - t.at_risk_ms) / DAY_MS for t in superseding if t.at_risk_ms]
        assert len(superseding) == got.warned_first
        assert sorted(leads) == sorted(got.lead_days)
