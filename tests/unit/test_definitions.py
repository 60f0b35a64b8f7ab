"""Bringing stored inactivity states to new definitions, held to a run under the new ones."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pytest

from stream.flags.definitions import (
    DeploymentRecord,
    decode_definitions,
    encode_definitions,
    migrate_partition,
    refusal,
)
from stream.flags.machine import (
    DAY_MS,
    Change,
    Definitions,
    InactivityMachine,
    Seen,
    Transition,
    next_crossing,
)
from tests.unit.test_inactivity import organisation

D = DAY_MS


def defs(*days: int, grace: int = 14) -> Definitions:
    return Definitions(tuple(d * D for d in days), grace * D)


def machine_at(changes: Sequence[Change], definitions: Definitions, released_ms: int) -> tuple[
    InactivityMachine, list[Transition]
]:  # fmt: skip
    machine = InactivityMachine(definitions)
    out = machine.release([c for c in changes if c.at_ms <= released_ms], released_ms)
    return machine, out


def held(transitions: Sequence[Transition]) -> dict[str, set[object]]:
    """What each user holds after the records, replayed in order (per-threshold withdrawals)."""
    flags: dict[str, set[object]] = defaultdict(set)
    for t in sorted(transitions, key=lambda t: (t.user_id, t.at_ms, t.kind != "withdrawn")):
        if t.kind == "inactive":
            flags[t.user_id].add(t.threshold_ms)
        elif t.kind == "never_active":
            flags[t.user_id].add("never")
        elif t.kind == "withdrawn" and t.threshold_ms is not None:
            flags[t.user_id].discard(t.threshold_ms)
        else:
            flags[t.user_id].clear()
    return {u: f for u, f in flags.items() if f}


CHANGES = [
    (defs(30, 90), defs(30)),  # a threshold removed
    (defs(30), defs(30, 90)),  # one added above
    (defs(30, 90), defs(10, 30, 60, 90, 120)),  # added below, between and above
    (defs(30, 60, 90), defs(45)),  # all replaced
    (defs(30, grace=14), defs(30, grace=3)),  # shorter grace
    (defs(30, grace=14), defs(30, grace=40)),  # longer grace
    (defs(30, 90), defs(30, 90)),  # reordered in the setting: the same definitions
]


class TestMigrationMatchesARunUnderTheNewDefinitions:
    @pytest.mark.parametrize(("old", "new"), CHANGES)
    @pytest.mark.parametrize("seed", [3, 11])
    @pytest.mark.parametrize("released", [30 * D + 5, 130 * D + 5])
    def test_states_flags_and_what_follows(
        self, old: Definitions, new: Definitions, seed: int, released: int
    ) -> None:
        """After the migration the states are a new run's; its records lead from the old flags
        to the new ones; the records after it are the new run's, at the same instants."""
        changes = organisation(seed)
        end = 200 * D
        old_machine, old_out = machine_at(changes, old, released)
        new_machine, new_out = machine_at(changes, new, released)
        plan = migrate_partition(old_machine.states, old_machine.due, old, new, released)

        migrated = {u: plan.states.get(u, s) for u, s in old_machine.states.items()}
        assert new_machine.states == migrated
        expected_due = {u: c for u, s in migrated.items() if (c := next_crossing(s, new))}
        due = {**{u: at for u, at in old_machine.due.items() if u not in plan.not_due}, **plan.due}
        assert expected_due == due
        assert held(new_out) == held(old_out + plan.transitions)
        if old == new:
            assert [] == plan.transitions
        for t in plan.transitions:
            if t.kind != "withdrawn":  # a raised flag carries the instant it became true
                assert t in new_out

        resumed = InactivityMachine(new, states=migrated)
        for user, at in due.items():
            resumed.schedule_at(user, at)
        after = resumed.release([c for c in changes if released < c.at_ms <= end], end)
        _, new_full = machine_at(changes, new, end)
        assert [t for t in new_full if t.at_ms > released] == after

    def test_a_removed_threshold_is_withdrawn_once_with_its_threshold(self) -> None:
        """Held 30d and 90d, keeps 30d: one withdrawal naming 90d, at the released instant."""
        old, new = defs(30, 90), defs(30)
        machine, _ = machine_at([Seen(0, "u")], old, 100 * D)
        plan = migrate_partition(machine.states, machine.due, old, new, 100 * D)
        assert [Transition(100 * D, "u", "withdrawn", 90 * D, 0, 0)] == plan.transitions
        again = migrate_partition(
            {u: plan.states.get(u, s) for u, s in machine.states.items()}, {}, new, new, 100 * D
        )
        assert [] == again.transitions, "a second run has nothing left to do"


class TestDeploymentRecord:
    def test_definitions_round_trip(self) -> None:
        """The canonical text reads back to the same definitions."""
        definitions = defs(30, 90, grace=7)
        assert definitions == decode_definitions(encode_definitions(definitions))

    @pytest.mark.parametrize("text", ["", "v2;t=1;g=2", "v1;t=;g=1", "v1;t=2,1;g=1", "x"])
    def test_unreadable_definitions_are_rejected(self, text: str) -> None:
        """Anything else is a ValueError, never a wrong reading."""
        with pytest.raises(ValueError):
            decode_definitions(text)

    def test_bucket_and_type_changes_are_refused_with_the_remedy(self) -> None:
        """One line naming the setting, the stored value and the rebuild command."""
        stored = DeploymentRecord(128, "", "v1;t=1;g=1", 2)
        assert refusal(stored, stored) is None
        assert refusal(stored, DeploymentRecord(128, "", "v1;t=2;g=1", 2)) is None
        buckets = refusal(stored, DeploymentRecord(256, "", "v1;t=1;g=1", 2))
        types = refusal(stored, DeploymentRecord(128, "login", "v1;t=1;g=1", 2))
        layout = refusal(DeploymentRecord(128, "", "v1;t=1;g=1", 1), stored)
        for why in (buckets, types, layout):
            assert why is not None and "\n" not in "; ".join(why)
            assert "esn-pulse rebuild" in why[1]
        assert layout is not None and "key layout 1" in layout[0]
        assert buckets is not None and "ESN_USER_BUCKETS=128" in buckets[1]
        assert types is not None and "ESN_ACTIVITY_TYPES" in types[0]
