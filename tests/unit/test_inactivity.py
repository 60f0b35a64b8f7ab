"""The inactivity state machine against a brute-force oracle that steps through time hourly."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from stream.flags.machine import (
    DAY_MS,
    Change,
    Definitions,
    InactivityMachine,
    ProfileChange,
    Seen,
    Transition,
    change_order,
    parse_duration_ms,
)

HOUR = 3_600_000
DEFS = Definitions(thresholds_ms=(30 * DAY_MS, 90 * DAY_MS), grace_ms=14 * DAY_MS)


def organisation(seed: int, users: int = 120, days: int = 200) -> list[Change]:
    """Hour-aligned history: regular users, churners who return, never-active and disabled ones."""
    rng = random.Random(seed)
    changes: list[Change] = []
    for index in range(users):
        user = f"u{index:03d}"
        created = rng.randrange(0, 40 * 24) * HOUR
        in_directory = rng.random() < 0.85
        if in_directory:
            changes.append(ProfileChange(created, user, True, created))
        style = rng.random()
        if style < 0.12 and in_directory:
            pass  # never active
        else:
            hour = created // HOUR + rng.randrange(0, 20 * 24)
            while hour < days * 24:
                changes.append(Seen(hour * HOUR, user))
                gap_days = rng.choice([0.2, 1, 2, 5, 10, 29, 31, 45, 95, 120])
                hour += max(1, int(gap_days * 24))
        if in_directory and rng.random() < 0.15:
            off = rng.randrange(10, days) * 24 * HOUR
            changes.append(ProfileChange(off, user, False, created))
            if rng.random() < 0.5:
                back = off + rng.randrange(1, 60) * 24 * HOUR
                changes.append(ProfileChange(back, user, True, created))
    return sorted(changes, key=change_order)


@dataclass
class _User:
    created: int
    since: int
    enabled: bool
    last: int | None = None
    held: set[str] = field(default_factory=set)


def oracle(changes: Sequence[Change], end_ms: int) -> list[Transition]:
    """Step hour by hour: apply the hour's changes, then read flags off the definitions."""
    by_hour: dict[int, list[Change]] = {}
    for change in changes:
        by_hour.setdefault(change.at_ms, []).append(change)
    users: dict[str, _User] = {}
    out: list[Transition] = []
    for h in range(0, end_ms + 1, HOUR):
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
                        out.append(Transition(h, name, "withdrawn", None, u.last, u.created))
                    u.held.clear()
                    u.enabled = False
                elif not u.enabled:
                    u.enabled, u.since = True, h
                continue
            if u is None:
                u = users[name] = _User(h, h, True)
            if u.enabled and u.held:
                away = h - (u.last if u.last is not None else u.created)
                out.append(Transition(h, name, "reactivated", None, u.last, u.created, away))
                u.held.clear()
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
                    u.held.add(str(threshold))
                    out.append(Transition(h, name, "inactive", threshold, u.last, u.created))
    return sorted(out)


def run_machine(changes: Sequence[Change], end_ms: int, sweep_every: int) -> list[Transition]:
    """Release the history in chunks, each followed by a sweep at the chunk's end."""
    machine = InactivityMachine(DEFS)
    out: list[Transition] = []
    chunk_ms = sweep_every * HOUR
    for start in range(0, end_ms + 1, chunk_ms):
        window = [c for c in changes if start <= c.at_ms < start + chunk_ms and c.at_ms <= end_ms]
        out += machine.release(window, watermark_ms=min(end_ms, start + chunk_ms - 1))
    return sorted(out)


class TestAgainstTheOracle:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_two_hundred_days_match_the_hourly_oracle(self, seed: int) -> None:
        """Every inactive, never-active, reactivated and withdrawn transition, exactly."""
        changes = organisation(seed)
        end = 200 * 24 * HOUR
        expected = oracle(changes, end)
        assert {"inactive", "never_active", "reactivated", "withdrawn"} == {
            t.kind for t in expected
        }
        assert expected == run_machine(changes, end, sweep_every=24)

    @pytest.mark.parametrize("sweep_every", [1, 7, 24 * 30, 24 * 400])
    def test_sweep_cadence_does_not_change_the_result(self, sweep_every: int) -> None:
        """Hourly sweeps, weekly ones or a single one at the end give the same transitions."""
        changes = organisation(4)
        end = 200 * 24 * HOUR
        assert run_machine(changes, end, 24) == run_machine(changes, end, sweep_every)


class TestCases:
    def test_activity_at_the_crossing_instant_is_not_a_gap(self) -> None:
        """Acting exactly at last + 30d keeps the user active: no flag, no reactivation."""
        machine = InactivityMachine(DEFS)
        out = machine.release([Seen(0, "u"), Seen(30 * DAY_MS, "u")], watermark_ms=31 * DAY_MS)
        assert [] == out

    def test_directory_profile_after_the_activity(self) -> None:
        """A profile arriving after first sight sets created; flags keep their crossing times."""
        machine = InactivityMachine(DEFS)
        out = machine.release(
            [Seen(5 * DAY_MS, "u"), ProfileChange(6 * DAY_MS, "u", True, 1 * DAY_MS)],
            watermark_ms=40 * DAY_MS,
        )
        assert [Transition(35 * DAY_MS, "u", "inactive", 30 * DAY_MS, 5 * DAY_MS, DAY_MS)] == out

    def test_disabled_users_are_never_flagged(self) -> None:
        """A disabled profile crosses no threshold."""
        machine = InactivityMachine(DEFS)
        out = machine.release([ProfileChange(0, "u", False, 0)], watermark_ms=400 * DAY_MS)
        assert [] == out

    def test_reenabled_user_is_flagged_from_the_reenable_time(self) -> None:
        """Crossings that passed while disabled date from the re-enable, both thresholds at once."""
        machine = InactivityMachine(DEFS)
        out = machine.release(
            [
                Seen(0, "u"),
                ProfileChange(DAY_MS, "u", False, 0),
                ProfileChange(100 * DAY_MS, "u", True, 0),
            ],
            watermark_ms=100 * DAY_MS,
        )
        assert [("inactive", 30 * DAY_MS), ("inactive", 90 * DAY_MS)] == [
            (t.kind, t.threshold_ms) for t in out
        ]
        assert {100 * DAY_MS} == {t.at_ms for t in out}


@pytest.mark.parametrize(
    ("text", "ms"), [("30d", 30 * DAY_MS), ("12h", 12 * HOUR), ("45m", 2_700_000), ("90s", 90_000)]
)
def test_parse_duration(text: str, ms: int) -> None:
    """Durations are a whole number and a unit."""
    assert ms == parse_duration_ms(text)


@pytest.mark.parametrize("text", ["", "30", "d", "-5d", "1.5d", "0d", "3w"])
def test_parse_duration_rejects(text: str) -> None:
    """Anything else is refused with the accepted form in the message."""
    with pytest.raises(ValueError, match="30d"):
        parse_duration_ms(text)
