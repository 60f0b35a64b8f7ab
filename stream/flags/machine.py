"""The inactivity state machine, pure: which flags change when, in event time.

This is the core of the inactivity engine described in docs/design/inactivity.md: it is fed the
activity and directory changes of one partition *in event-time order* (the reorder buffer's job)
and the crossings that fall due between them, and returns each transition exactly once, stamped
with the instant it became true. Nothing here reads a clock or does I/O, so a backfill and a live
run over the same history produce the same transitions.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from stream.settings import Settings
from stream.timebounds import parse_duration_ms

DAY_MS: Final = 86_400_000

TransitionKind = Literal["inactive", "never_active", "reactivated", "withdrawn"]


@dataclass(frozen=True)
class Definitions:
    """Thresholds (ascending) and the never-active grace period, in milliseconds."""

    thresholds_ms: tuple[int, ...]
    grace_ms: int

    def __post_init__(self) -> None:
        if not self.thresholds_ms or list(self.thresholds_ms) != sorted(set(self.thresholds_ms)):
            raise ValueError("thresholds must be distinct, ascending and at least one")


@dataclass
class UserInactivity:
    """What the state machine keeps per user."""

    created_ms: int
    #: From when the user is known to be enabled: no flag can date from before it.
    enabled_since_ms: int
    enabled: bool = True
    last_ms: int | None = None
    #: How many thresholds (the smallest first) the user is flagged at.
    flagged_count: int = 0
    never_active: bool = False
    #: Version (updated time) of the last profile applied: older or repeated ones are ignored.
    profile_ms: int | None = None

    @property
    def flagged(self) -> bool:
        """True while the user holds any flag."""
        return self.flagged_count > 0 or self.never_active


@dataclass(frozen=True, order=True)
class Transition:
    """One state change to publish (ordered by time, then user, then kind)."""

    at_ms: int
    user_id: str
    kind: TransitionKind
    threshold_ms: int | None = None
    last_seen_ms: int | None = None
    created_ms: int | None = None
    away_ms: int | None = None


@dataclass(frozen=True)
class Seen:
    """A counting activity of a user at an event time."""

    at_ms: int
    user_id: str


@dataclass(frozen=True)
class ProfileChange:
    """A directory profile version taking effect at its ``updated`` time."""

    at_ms: int
    user_id: str
    enabled: bool
    created_ms: int


Change = Seen | ProfileChange


def change_order(change: Change) -> tuple[int, int, str]:
    """Event time first; at the same instant a profile applies before activity."""
    return change.at_ms, 0 if isinstance(change, ProfileChange) else 1, change.user_id


@dataclass
class InactivityMachine:
    """Per-user states of one partition and the crossings due next."""

    definitions: Definitions
    states: dict[str, UserInactivity] = field(default_factory=dict)
    #: user -> next crossing instant; the heap may hold stale entries (checked when popped).
    due: dict[str, int] = field(default_factory=dict)
    _heap: list[tuple[int, str]] = field(default_factory=list)

    def schedule_at(self, user_id: str, at_ms: int) -> None:
        """Restore a crossing that was due when the state was stored."""
        self.due[user_id] = at_ms
        heapq.heappush(self._heap, (at_ms, user_id))

    def release(self, changes: Iterable[Change], watermark_ms: int) -> list[Transition]:
        """Apply ``changes`` (event-time order) and every crossing up to the watermark."""
        out: list[Transition] = []
        for change in changes:
            # A crossing at the very instant of an activity does not happen: the user acted.
            out += self._cross_before(change.at_ms, inclusive=False)
            if isinstance(change, Seen):
                out += self._seen(change)
            else:
                out += self._profile(change)
            self._schedule(change.user_id)
        out += self._cross_before(watermark_ms, inclusive=True)
        return out

    def _cross_before(self, limit_ms: int, inclusive: bool) -> Iterator[Transition]:
        heap = self._heap
        while heap and (heap[0][0] <= limit_ms if inclusive else heap[0][0] < limit_ms):
            at_ms, user_id = heapq.heappop(heap)
            if self.due.get(user_id) != at_ms:
                continue  # superseded by a later change of this user
            del self.due[user_id]
            if user_id not in self.states:
                continue  # a crossing restored without a state: nothing can cross
            if next_crossing(self.states[user_id], self.definitions) != at_ms:
                # Restored from a store written under other definitions: the state does not
                # explain this crossing (crossing it would index a threshold that is gone).
                self._schedule(user_id)
                continue
            yield self._cross(user_id, at_ms)
            self._schedule(user_id)

    def _cross(self, user_id: str, at_ms: int) -> Transition:
        state = self.states[user_id]
        if state.last_ms is None:
            state.never_active = True
            return Transition(at_ms, user_id, "never_active", created_ms=state.created_ms)
        threshold = self.definitions.thresholds_ms[state.flagged_count]
        state.flagged_count += 1
        return Transition(
            at_ms,
            user_id,
            "inactive",
            threshold_ms=threshold,
            last_seen_ms=state.last_ms,
            created_ms=state.created_ms,
        )

    def _seen(self, change: Seen) -> list[Transition]:
        state = self.states.get(change.user_id)
        if state is None:
            # Not in the directory (yet): enabled, created at first sight.
            state = self.states[change.user_id] = UserInactivity(change.at_ms, change.at_ms)
        out: list[Transition] = []
        if state.enabled and state.flagged:
            since = state.last_ms if state.last_ms is not None else state.created_ms
            out.append(_clear_flags(state, change, "reactivated", away_ms=change.at_ms - since))
        if state.last_ms is None or change.at_ms > state.last_ms:
            state.last_ms = change.at_ms
        return out

    def _profile(self, change: ProfileChange) -> list[Transition]:
        state = self.states.get(change.user_id)
        out: list[Transition] = []
        if state is None:
            state = self.states[change.user_id] = UserInactivity(
                change.created_ms, change.at_ms, enabled=change.enabled, profile_ms=change.at_ms
            )
            return out
        if state.profile_ms is not None and change.at_ms <= state.profile_ms:
            return out  # a redelivered or superseded version
        state.profile_ms = change.at_ms
        state.created_ms = change.created_ms  # the directory knows better than first sight
        if not change.enabled:
            if state.enabled and state.flagged:
                out.append(_clear_flags(state, change, "withdrawn"))
            state.flagged_count, state.never_active = 0, False
            state.enabled = False
        elif not state.enabled:
            state.enabled, state.enabled_since_ms = True, change.at_ms
        return out

    def _schedule(self, user_id: str) -> None:
        crossing = next_crossing(self.states[user_id], self.definitions)
        if crossing is None:
            self.due.pop(user_id, None)
        elif self.due.get(user_id) != crossing:
            self.due[user_id] = crossing
            heapq.heappush(self._heap, (crossing, user_id))


def _clear_flags(
    state: UserInactivity, change: Change, kind: TransitionKind, away_ms: int | None = None
) -> Transition:
    """End every flag the user holds; the transition that says so."""
    state.flagged_count, state.never_active = 0, False
    return Transition(
        change.at_ms,
        change.user_id,
        kind,
        last_seen_ms=state.last_ms,
        created_ms=state.created_ms,
        away_ms=away_ms,
    )


def next_crossing(state: UserInactivity, definitions: Definitions) -> int | None:
    """When the user's next flag falls due, or None when none can."""
    if not state.enabled:
        return None
    if state.last_ms is None:
        if state.never_active:
            return None
        raw = state.created_ms + definitions.grace_ms
    elif state.flagged_count < len(definitions.thresholds_ms):
        raw = state.last_ms + definitions.thresholds_ms[state.flagged_count]
    else:
        return None
    return max(raw, state.enabled_since_ms)


def buffer_member_for_profile(at_ms: int, user_id: str, enabled: bool, created_ms: int) -> str:
    """The reorder-buffer member of a profile version (activity members are "time\\tuser")."""
    return f"{at_ms}\t{user_id}\tP\t{'enabled' if enabled else 'disabled'}\t{created_ms}"


def parse_buffer_member(member: str) -> Change:
    """A buffered change from its member string."""
    parts = member.split("\t")
    if len(parts) == 2:
        return Seen(int(parts[0]), parts[1])
    return ProfileChange(int(parts[0]), parts[1], parts[3] == "enabled", int(parts[4]))


def definitions_from(settings: Settings) -> Definitions:
    """The configured thresholds and grace period."""
    thresholds = sorted({parse_duration_ms(t) for t in settings.inactivity_thresholds.split(",")})
    return Definitions(tuple(thresholds), parse_duration_ms(settings.never_active_grace))


def counting_types_from(settings: Settings) -> frozenset[str] | None:
    """Event types that count as activity; None means every type."""
    names = {t.strip() for t in settings.activity_types.split(",") if t.strip()}
    return frozenset(names) or None


def threshold_label(threshold_ms: int) -> str:
    """30 days -> "30d" (the largest whole unit)."""
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000)):
        if threshold_ms % size == 0:
            return f"{threshold_ms // size}{unit}"
    return f"{threshold_ms // 1000}s"
