"""Bringing one partition's inactivity flags up to the watermark, durably and exactly once.

A release loads only what it can touch (buffered changes up to the watermark, users whose next
crossing is due by then, and those users' states), runs the pure state machine, and commits states,
due crossings, the released buffer members and numbered flag records in one Lua call. A crash
before the commit changes nothing; after it, nothing is repeated. Its cost grows with the users
that change, not with the number of users.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from stream import jsonutil
from stream.flags.definitions import (
    PartitionMigration,
    decode_definitions,
    describe,
    encode_definitions,
    migrate_partition,
)
from stream.flags.machine import (
    Definitions,
    InactivityMachine,
    Transition,
    UserInactivity,
    change_order,
    parse_buffer_member,
    threshold_label,
)
from stream.flags.records import HISTORY_CODES, flag_record, history_lines, iso_ms
from stream.flags.state_codec import decode_state, encode_state
from stream.fold import MS_PER_DAY
from stream.store import DirectoryStore, RedisStore
from stream.store.definitions_store import DefinitionsStore, PartitionDefinitions
from stream.store.release_store import FlagMinute, ReleaseCommit, ReleaseStore

log = logging.getLogger(__name__)

#: Days the per-minute flag counts are kept after their day (the spike alert looks back 7 days).
FLAG_MINUTES_DAYS = 9
#: At most this many buffered changes per release: bounds memory, the Lua call's duration and,
#: above all, the state machine's Python work between two awaits: a step runs on the ingest's
#: event loop under its apply lock, and 5,000 changes held both for 0.2-0.5 s (stalls that the
#: loop-lag histogram showed at 5,000 events/s live). 1,000 keeps a step near 20 ms.
RELEASE_LIMIT = 1_000


@dataclass(frozen=True)
class ReleaseResult:
    """What one release did."""

    transitions: list[Transition]
    changes: int
    complete: bool


class InactivitySweeper:
    """Releases partitions of one deployment; the caller serialises calls per partition."""

    def __init__(self, store: RedisStore, definitions: Definitions) -> None:
        self.store = store
        self.definitions = definitions
        self.directory = DirectoryStore(store)
        self.markers = DefinitionsStore(store)
        self.redis = ReleaseStore(store)
        #: The canonical text of the definitions, stored with each partition's states.
        self.encoded = encode_definitions(definitions)

    async def release(self, partition: int, watermark_ms: int) -> ReleaseResult:
        """Apply buffered changes and crossings up to ``watermark_ms`` for one partition.

        A partition whose states were stored under other definitions is first brought to these
        (see :meth:`migrate`); the commit checks that nobody moved them meanwhile.
        """
        marker = await self.markers.partition(partition)
        if marker.definitions != self.encoded and not await self.migrate(
            partition, marker, watermark_ms
        ):
            return ReleaseResult([], 0, False)  # lost a race with another worker: go again
        version = await self.redis.version(partition)
        members = await self.redis.buffered(partition, watermark_ms, RELEASE_LIMIT)
        changes = sorted((parse_buffer_member(m) for m in members), key=change_order)
        complete = len(members) < RELEASE_LIMIT
        # With a capped batch, crossings may only run up to the last change taken.
        limit = watermark_ms if complete or not changes else changes[-1].at_ms
        due = await self.redis.due(partition, limit)
        users = sorted({c.user_id for c in changes} | set(due))
        if not users:
            if marker.released_ms is None or limit > marker.released_ms:
                # Nothing changes up to the limit: the states hold there too. Recorded, so that
                # a migration knows the instant they are as of (see migrate).
                await self.redis.commit(
                    partition, ReleaseCommit(self.encoded, self.encoded, str(limit), version)
                )
            return ReleaseResult([], 0, complete)
        stored = await self.redis.states(partition, users)
        states = {u: decode_state(raw) for u, raw in stored.items()}
        before = {u: _counted(s, self.definitions) for u, s in states.items()}
        machine = InactivityMachine(self.definitions, states=states)
        for user, at in due.items():
            machine.schedule_at(user, at)
        transitions = machine.release(changes, limit)
        enrichment = await self.directory.profiles_and_roles(
            sorted({t.user_id for t in transitions}), partition
        )
        records = [flag_record(t, *enrichment[t.user_id]) for t in transitions]
        seq = await self.redis.commit(
            partition,
            ReleaseCommit(
                self.encoded,
                self.encoded,
                str(limit),
                version,
                states={u: encode_state(s) for u, s in machine.states.items()},
                due=machine.due,
                not_due=[u for u in machine.states if u not in machine.due],
                released_members=members,
                records=[jsonutil.dumps(r).decode() for r in records],
                event_ids=[r["event_id"] for r in records],
                count_deltas=_count_deltas(before, machine.states, self.definitions),
                history=history_lines(transitions, self.definitions),
                minutes=self._minutes(transitions),
            ),
        )
        if int(seq) < 0:
            # Migrated or released by another worker since it was read: read it again.
            return ReleaseResult([], 0, False)
        return ReleaseResult(transitions, len(changes), complete)

    async def migrate(
        self, partition: int, marker: PartitionDefinitions, watermark_ms: int
    ) -> bool:
        """Bring one partition's states to this sweeper's definitions, in one atomic commit.

        Flags the new definitions do not give are withdrawn, those they give are raised at the
        instant they became true, each record once: a crash before the commit changes nothing,
        after it the marker says the partition is done. False when another worker moved the
        partition's definitions since they were read (the caller reads them again).
        """
        old_text = marker.definitions
        if old_text is None:
            # No marker: states from before markers existed, or none yet. They were built under
            # the definitions the deployment was first registered with.
            stored = await self.markers.stored()
            old_text = stored.definitions if stored is not None else self.encoded
        try:
            old = decode_definitions(old_text)
        except ValueError:
            log.warning(
                "Partition %d: unreadable stored definitions %r; taken as the configured ones",
                partition,
                old_text,
            )
            old = self.definitions
        # The states are as of the last release; before markers existed it was not stored, and
        # the clock's now is the best bound (see docs/operations/config-changes.md).
        released = marker.released_ms if marker.released_ms is not None else watermark_ms
        version = await self.redis.version(partition)
        raw_states, due = await self.markers.partition_states(partition)
        states = {user: decode_state(raw) for user, raw in raw_states.items()}
        plan = migrate_partition(states, due, old, self.definitions, released)
        enrichment = await self.directory.profiles_and_roles(
            sorted({t.user_id for t in plan.transitions}), partition
        )
        records = [flag_record(t, *enrichment[t.user_id], migrated=True) for t in plan.transitions]
        seq = await self.redis.commit(
            partition,
            ReleaseCommit(
                marker.definitions or "",
                self.encoded,
                "",
                version,
                states={u: encode_state(s) for u, s in plan.states.items()},
                due=plan.due,
                not_due=plan.not_due,
                records=[jsonutil.dumps(r).decode() for r in records],
                event_ids=[r["event_id"] for r in records],
                count_deltas=_migration_count_deltas(states, plan, old, self.definitions),
                history=[f"{u}\t{HISTORY_CODES[kind]}@{at}" for u, kind, at in plan.history],
                minutes=self._minutes(plan.transitions),
            ),
        )
        if int(seq) < 0:
            return False
        if old != self.definitions:
            kinds = [t.kind for t in plan.transitions]
            log.info(
                "Partition %d: inactivity states brought from %s to %s at %s: %d flags "
                "withdrawn, %d raised, %d crossings rescheduled",
                partition,
                describe(old),
                describe(self.definitions),
                iso_ms(released),
                kinds.count("withdrawn"),
                len(kinds) - kinds.count("withdrawn"),
                len(plan.due) + len(plan.not_due),
            )
        return True

    def _minutes(self, transitions: list[Transition]) -> list[FlagMinute]:
        """Flags per minute of their (event) time: the inactivity-spike alert's windows."""
        per_minute: dict[tuple[str, int, int], int] = {}
        first = self.definitions.thresholds_ms[0]
        for t in transitions:
            if t.kind == "withdrawn" or (t.kind == "inactive" and t.threshold_ms != first):
                continue
            key = (t.kind, t.at_ms // MS_PER_DAY, t.at_ms % MS_PER_DAY // 60_000)
            per_minute[key] = per_minute.get(key, 0) + 1
        # Kept FLAG_MINUTES_DAYS after their day, and as long after now: a replay of old
        # history (engine time) still needs its last week's counts.
        floor = int(time.time()) + FLAG_MINUTES_DAYS * 86_400
        return [
            FlagMinute(kind, day, minute, count, max(floor, (day + 1 + FLAG_MINUTES_DAYS) * 86_400))
            for (kind, day, minute), count in per_minute.items()
        ]


def _counted(state: UserInactivity, definitions: Definitions) -> set[str]:
    """The gauge buckets a user is in."""
    if not state.enabled:
        return set()
    out = {"enabled"}
    if state.never_active:
        out.add("never_active")
    if state.at_risk_ms is not None:
        out.add("at_risk")
    for threshold in definitions.thresholds_ms[: state.flagged_count]:
        out.add(f"inactive:{threshold_label(threshold)}")
    return out


def _count_deltas(
    before: dict[str, set[str]], after: dict[str, UserInactivity], definitions: Definitions
) -> list[str]:
    deltas: dict[str, int] = {}
    for user, state in after.items():
        old, new = before.get(user, set()), _counted(state, definitions)
        for field in new - old:
            deltas[field] = deltas.get(field, 0) + 1
        for field in old - new:
            deltas[field] = deltas.get(field, 0) - 1
    return [f"{field}\t{delta}" for field, delta in sorted(deltas.items()) if delta]


def _migration_count_deltas(
    states: dict[str, UserInactivity],
    plan: PartitionMigration,
    old: Definitions,
    new: Definitions,
) -> list[str]:
    """Gauge count changes of a migration (a state can keep its flag count but change labels)."""
    deltas: dict[str, int] = {}
    for user, state in states.items():
        before, after = _counted(state, old), _counted(plan.states.get(user, state), new)
        for field in after - before:
            deltas[field] = deltas.get(field, 0) + 1
        for field in before - after:
            deltas[field] = deltas.get(field, 0) - 1
    return [f"{field}\t{delta}" for field, delta in sorted(deltas.items()) if delta]
