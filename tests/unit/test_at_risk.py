"""The at-risk flag in the state machine, against a brute-force oracle keeping every active day."""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from stream.flags.definitions import decode_definitions, encode_definitions, migrate_partition
from stream.flags.machine import (
    DAY_MS,
    AtRiskRule,
    Change,
    Definitions,
    InactivityMachine,
    ProfileChange,
    Seen,
    Transition,
    UserInactivity,
    change_order,
)
from stream.flags.records import flag_record, history_lines
from stream.flags.state_codec import decode_state, encode_state

HOUR = 3_600_000
WINDOW = 56
RULE = AtRiskRule(min_active_days=10, gap_factor_milli=3_000, min_silence_ms=9 * DAY_MS)
DEFS = Definitions((30 * DAY_MS, 90 * DAY_MS), 14 * DAY_MS, RULE)
FADING = AtRiskRule(10, 3_000, 9 * DAY_MS, fade_milli=400, fade_silence_ms=4 * DAY_MS)


def organisation(seed: int, users: int = 90, days: int = 220) -> list[Change]:
    """Hour-aligned history of regulars with holidays, faders, sudden stops and part-timers."""
    rng = random.Random(seed)
    changes: list[Change] = []
    for index in range(users):
        user = f"u{index:03d}"
        created = rng.randrange(0, 20 * 24) * HOUR
        if rng.random() < 0.9:
            changes.append(ProfileChange(created, user, True, created))
        hour = created // HOUR + rng.randrange(0, 5 * 24)
        rate = rng.choice([0.3, 0.8, 1.5, 3.0])  # usual gap in days
        fade = rng.random() < 0.3
        while hour < days * 24:
            changes.append(Seen(hour * HOUR, user))
            if rng.random() < 0.04:
                gap = rng.choice([6, 9, 14, 21, 35, 100])  # holiday, illness, a stop
            else:
                gap = rng.expovariate(1 / rate)
            if fade:
                rate *= 1.04
            hour += max(1, int(gap * 24))
        if rng.random() < 0.1:
            off = rng.randrange(30, days) * 24 * HOUR
            changes.append(ProfileChange(off, user, False, created))
            if rng.random() < 0.5:
                changes.append(
                    ProfileChange(off + rng.randrange(1, 40) * DAY_MS, user, True, created)
                )
    return sorted(changes, key=change_order)


@dataclass
class _User:
    created: int
    since: int
    enabled: bool
    last: int | None = None
    days: set[int] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    risk_since: int | None = None


def _risk_crossing(u: _User, rule: AtRiskRule) -> int | None:
    """From every active day kept (not the machine's bits): when this user becomes at risk."""
    if not u.enabled or u.last is None or u.held:
        return None
    last_day = u.last // DAY_MS
    active = sum(1 for d in u.days if last_day - WINDOW < d <= last_day)
    recent = sum(1 for d in u.days if last_day - 14 < d <= last_day)
    silences = []
    if active >= rule.min_active_days:
        gap = WINDOW * DAY_MS // active
        silences.append(max(rule.min_silence_ms, rule.gap_factor_milli * gap // 1000))
    before = active - recent
    # The six weeks before held a regular's share, the last two a day-rate fallen by the fade.
    regular_before = before / 42 >= rule.min_active_days / WINDOW
    if (
        rule.fade_milli
        and regular_before
        and recent / 14 <= (1 - rule.fade_milli / 1000) * before / 42 + 1e-12
    ):
        silences.append(rule.fade_silence_ms)
    if not silences:
        return None
    at = max(u.last + min(silences), u.since)
    return at if at < max(u.last + DEFS.thresholds_ms[0], u.since) else None


def _active_count(u: _User) -> int:
    assert u.last is not None
    last_day = u.last // DAY_MS
    return sum(1 for d in u.days if last_day - WINDOW < d <= last_day)


def oracle(changes: Sequence[Change], end_ms: int, rule: AtRiskRule = RULE) -> list[Transition]:
    """Step hour by hour; at-risk crossings inside an hour are found before the hour's changes."""
    by_hour: dict[int, list[Change]] = {}
    for change in changes:
        by_hour.setdefault(change.at_ms, []).append(change)
    users: dict[str, _User] = {}
    out: list[Transition] = []

    def raise_at_risk(name: str, u: _User, before_ms: int, inclusive: bool) -> None:
        at = _risk_crossing(u, rule)
        if at is not None and (at <= before_ms if inclusive else at < before_ms):
            u.held.add("risk")
            u.risk_since = at
            out.append(Transition(at, name, "at_risk", None, u.last, u.created, None, at,
                                  _active_count(u)))  # fmt: skip

    def clear(u: _User) -> tuple[int | None, bool]:
        since, only = u.risk_since, u.held == {"risk"}
        u.held.clear()
        u.risk_since = None
        return since, only

    for h in range(0, end_ms + 1, HOUR):
        for name, u in users.items():
            raise_at_risk(name, u, h, inclusive=False)
        for change in by_hour.get(h, []):
            name = change.user_id
            u = users.get(name)
            if isinstance(change, ProfileChange):
                if u is None:
                    users[name] = _User(change.created_ms, h, change.enabled)
                    continue
                u.created = change.created_ms
                if not change.enabled:
                    if u.enabled and u.held:
                        since, only = clear(u)
                        out.append(Transition(h, name, "withdrawn", None, u.last, u.created,
                                              None, since, None, only))  # fmt: skip
                    u.held.clear()
                    u.risk_since = None
                    u.enabled = False
                elif not u.enabled:
                    u.enabled, u.since = True, h
                continue
            if u is None:
                u = users[name] = _User(h, h, True)
            if u.enabled and u.held:
                away = h - (u.last if u.last is not None else u.created)
                since, only = clear(u)
                out.append(Transition(h, name, "reactivated", None, u.last, u.created, away,
                                      since, None, only))  # fmt: skip
            u.days.add(h // DAY_MS)
            u.last = h if u.last is None else max(u.last, h)
        for name, u in users.items():
            if not u.enabled:
                continue
            if u.last is None:
                if "never" not in u.held and h >= max(u.created + DEFS.grace_ms, u.since):
                    u.held.add("never")
                    out.append(Transition(h, name, "never_active", created_ms=u.created))
                continue
            for threshold in DEFS.thresholds_ms:
                if str(threshold) not in u.held and h >= max(u.last + threshold, u.since):
                    superseded = u.risk_since if threshold == DEFS.thresholds_ms[0] else None
                    u.held.discard("risk")
                    u.risk_since = None
                    u.held.add(str(threshold))
                    out.append(Transition(h, name, "inactive", threshold, u.last, u.created,
                                          None, superseded))  # fmt: skip
            raise_at_risk(name, u, h, inclusive=True)
    return sorted(out)


def run_machine(
    changes: Sequence[Change], end_ms: int, sweep_hours: int, defs: Definitions = DEFS
) -> list[Transition]:
    """Release the history in chunks, the states stored and read back between them."""
    machine = InactivityMachine(defs)
    out: list[Transition] = []
    chunk_ms = sweep_hours * HOUR
    times = [c.at_ms for c in changes]  # changes are in event-time order
    for start in range(0, end_ms + 1, chunk_ms):
        stop = min(start + chunk_ms, end_ms + 1)
        window = changes[bisect.bisect_left(times, start) : bisect.bisect_left(times, stop)]
        out += machine.release(window, watermark_ms=stop - 1)
        # Through the stored text, as the release keeps them.
        machine.states = {u: decode_state(encode_state(s)) for u, s in machine.states.items()}
    return sorted(out)


class TestAgainstTheOracle:
    @pytest.mark.parametrize(("seed", "rule"), [(1, RULE), (2, RULE), (3, FADING), (4, FADING)])
    def test_every_transition_matches_the_oracle(self, seed: int, rule: AtRiskRule) -> None:
        """At-risk flags, their ends and what supersedes them, exactly, with the other flags."""
        changes = organisation(seed)
        end = 220 * 24 * HOUR
        expected = oracle(changes, end, rule)
        kinds = [t.kind for t in expected]
        assert kinds.count("at_risk") > 20
        assert any(t.kind == "inactive" and t.at_risk_ms for t in expected)
        assert any(t.kind == "reactivated" and t.only_at_risk for t in expected)
        defs = Definitions(DEFS.thresholds_ms, DEFS.grace_ms, rule)
        assert expected == run_machine(changes, end, sweep_hours=24, defs=defs)

    def test_the_fade_rule_warns_some_people_sooner(self) -> None:
        """A fade shortens the silence for those whose last two weeks fell off."""
        changes, end = organisation(3), 220 * 24 * HOUR
        fading_defs = Definitions(DEFS.thresholds_ms, DEFS.grace_ms, FADING)
        steady = {
            (t.user_id, t.last_seen_ms): t.at_ms
            for t in run_machine(changes, end, 24)
            if t.kind == "at_risk"
        }
        sooner = [
            t
            for t in run_machine(changes, end, 24, fading_defs)
            if t.kind == "at_risk" and t.at_ms < steady.get((t.user_id, t.last_seen_ms), end)
        ]
        assert len(sooner) >= 5

    @pytest.mark.parametrize("sweep_hours", [1, 24 * 7, 24 * 400])
    def test_sweep_cadence_does_not_change_the_result(self, sweep_hours: int) -> None:
        """Hourly, weekly or a single release give the same transitions."""
        changes = organisation(5)
        end = 220 * 24 * HOUR
        assert run_machine(changes, end, 24) == run_machine(changes, end, sweep_hours)

    def test_without_the_rule_nothing_is_at_risk(self) -> None:
        """Definitions without a rule give the flags they gave before it existed."""
        changes = organisation(6)
        plain = Definitions(DEFS.thresholds_ms, DEFS.grace_ms)
        out = run_machine(changes, 220 * 24 * HOUR, 24, plain)
        assert "at_risk" not in {t.kind for t in out}


class TestCases:
    def regular(self, days: int = 20) -> list[Change]:
        """Active every day for ``days`` days from day 0."""
        return [Seen(d * DAY_MS + 9 * HOUR, "u") for d in range(days)]

    def test_a_regular_falls_silent(self) -> None:
        """20 of 56 days active: usual gap 2.8 days, at risk after 9 days (the minimum)."""
        out = InactivityMachine(DEFS).release(self.regular(), watermark_ms=60 * DAY_MS)
        last = 19 * DAY_MS + 9 * HOUR
        silence = 9 * DAY_MS
        assert [("at_risk", last + silence), ("inactive", last + 30 * DAY_MS)] == [
            (t.kind, t.at_ms) for t in out
        ]
        assert last + silence == out[1].at_risk_ms
        record = flag_record(out[0], None, {})
        assert {"active_days": 20, "window_days": 56, "usual_gap_days": 2.8} == record["rhythm"]

    def test_an_occasional_user_is_never_at_risk(self) -> None:
        """Nine active days in the window are not a rhythm: only the threshold flags."""
        out = InactivityMachine(DEFS).release(self.regular(9), watermark_ms=60 * DAY_MS)
        assert ["inactive"] == [t.kind for t in out]

    def test_acting_again_reactivates_once_and_leaves_no_history(self) -> None:
        """The end of an at-risk flag alone is published and kept out of the flag history."""
        machine = InactivityMachine(DEFS)
        out = machine.release([*self.regular(), Seen(29 * DAY_MS, "u")], watermark_ms=30 * DAY_MS)
        assert ["at_risk", "reactivated"] == [t.kind for t in out]
        assert out[1].only_at_risk
        assert [] == history_lines(out, DEFS)
        assert "at_risk" == flag_record(out[1], None, {})["ends"]

    def test_disabled_while_at_risk_is_withdrawn(self) -> None:
        """A disabled profile ends the flag; a disabled person is never at risk."""
        machine = InactivityMachine(DEFS)
        changes = [ProfileChange(0, "u", True, 0), *self.regular()]
        changes.append(ProfileChange(29 * DAY_MS, "u", False, 0))
        out = machine.release(sorted(changes, key=change_order), watermark_ms=200 * DAY_MS)
        assert ["at_risk", "withdrawn"] == [t.kind for t in out]


class TestStoredForm:
    def test_the_rhythm_is_a_few_bytes(self) -> None:
        """56 days of rhythm add 16 characters to a state; holding the flag 13 more."""
        days = (1 << 56) - 1
        plain = UserInactivity(0, 0, last_ms=10**12)
        rhythm = UserInactivity(0, 0, last_ms=10**12, active_days=days)
        held = UserInactivity(0, 0, last_ms=10**12, at_risk_ms=10**12, active_days=days)
        assert 16 == len(encode_state(rhythm)) - len(encode_state(plain))
        assert 29 == len(encode_state(held)) - len(encode_state(plain))
        assert held == decode_state(encode_state(held))

    def test_a_state_stored_before_the_rhythm_reads(self) -> None:
        """Seven fields: no rhythm, not at risk."""
        assert UserInactivity(1, 2, True, 3, 0, False, 4) == decode_state("1|2|1|3|0|0|4")

    def test_definitions_round_trip_and_version_one_stays(self) -> None:
        """Without a rule the text is version 1's, so turning it off migrates nothing."""
        assert DEFS == decode_definitions(encode_definitions(DEFS))
        plain = Definitions(DEFS.thresholds_ms, DEFS.grace_ms)
        assert encode_definitions(plain).startswith("v1;")
        assert plain == decode_definitions(encode_definitions(plain))


class TestMigration:
    @pytest.mark.parametrize(
        "new_rule",
        [None, AtRiskRule(10, 2_000, 5 * DAY_MS), AtRiskRule(25, 3_000, 5 * DAY_MS), FADING],
    )
    def test_migrating_gives_what_a_run_under_the_new_rule_holds(
        self, new_rule: AtRiskRule | None
    ) -> None:
        """At the instant released, at-risk flags held are what a run under the new rule holds."""
        changes = organisation(7)
        released = 150 * DAY_MS
        new = Definitions(DEFS.thresholds_ms, DEFS.grace_ms, new_rule)
        machine = InactivityMachine(DEFS)
        machine.release([c for c in changes if c.at_ms <= released], released)
        rerun = InactivityMachine(new)
        rerun.release([c for c in changes if c.at_ms <= released], released)
        plan = migrate_partition(machine.states, dict(machine.due), DEFS, new, released)
        after = {u: plan.states.get(u, s) for u, s in machine.states.items()}
        assert {u for u, s in rerun.states.items() if s.at_risk_ms is not None} == {
            u for u, s in after.items() if s.at_risk_ms is not None
        }
        held_before = {u for u, s in machine.states.items() if s.at_risk_ms is not None}
        raised = {t.user_id for t in plan.transitions if t.kind == "at_risk"}
        ended = {t.user_id for t in plan.transitions if t.kind == "withdrawn" and t.only_at_risk}
        assert raised == {u for u, s in after.items() if s.at_risk_ms is not None} - held_before
        assert ended == held_before - {u for u, s in after.items() if s.at_risk_ms is not None}
