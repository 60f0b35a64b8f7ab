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

TransitionKind = Literal["inactive", "never_active", "at_risk", "reactivated", "withdrawn"]

#: The active-day window a person's rhythm is read over: one bit a day in the stored state.
RHYTHM_WINDOW_DAYS: Final = 56
_WINDOW_MASK: Final = (1 << RHYTHM_WINDOW_DAYS) - 1
#: A fade compares the last two weeks of the window with the six weeks before them.
FADE_RECENT_DAYS: Final = 14
_RECENT_MASK: Final = (1 << FADE_RECENT_DAYS) - 1


@dataclass(frozen=True)
class AtRiskRule:
    """A regular who falls silent against their own rhythm is at risk, before any threshold.

    Steady: active on at least ``min_active_days`` of the ``RHYTHM_WINDOW_DAYS`` days up to their
    last activity; at risk once silent for ``gap_factor_milli / 1000`` usual gaps (the window over
    those active days), and never sooner than ``min_silence_ms``. Fading (``fade_milli`` > 0): a
    regular in the six weeks before the last two (the same share of active days) whose last two
    weeks held ``fade_milli / 1000`` fewer active days a day; at risk after ``fade_silence_ms``,
    if sooner. Both a day or more, so per-day activity decides; strictly before the first
    inactivity threshold. Holidays are sudden silences of steady people; a fade comes first.
    """

    min_active_days: int
    gap_factor_milli: int
    min_silence_ms: int
    fade_milli: int = 0
    fade_silence_ms: int = 7 * DAY_MS

    def __post_init__(self) -> None:
        if not 1 <= self.min_active_days <= RHYTHM_WINDOW_DAYS:
            raise ValueError(f"at-risk active days must be 1 to {RHYTHM_WINDOW_DAYS}")
        if self.gap_factor_milli < 1000:
            raise ValueError("the at-risk gap factor must be at least 1")
        if self.min_silence_ms < DAY_MS or self.fade_silence_ms < DAY_MS:
            raise ValueError("the at-risk silences must be a day or more")
        if not 0 <= self.fade_milli <= 1000:
            raise ValueError("the at-risk fade must be a share from 0 to 1")

    def silence_ms(self, active_days: int) -> int | None:
        """How long a person with these active-day bits may be silent, or None: not a regular."""
        active = active_days.bit_count()
        silence = None
        if active >= self.min_active_days:
            usual_gap_ms = RHYTHM_WINDOW_DAYS * DAY_MS // active
            silence = max(self.min_silence_ms, self.gap_factor_milli * usual_gap_ms // 1000)
        if self.fade_milli and self._faded(active_days):
            silence = min(silence or self.fade_silence_ms, self.fade_silence_ms)
        return silence

    def _faded(self, active_days: int) -> bool:
        recent = (active_days & _RECENT_MASK).bit_count()
        before = (active_days >> FADE_RECENT_DAYS).bit_count()
        earlier_days = RHYTHM_WINDOW_DAYS - FADE_RECENT_DAYS
        regular_before = before * RHYTHM_WINDOW_DAYS >= self.min_active_days * earlier_days
        # recent / 14 <= (1 - fade) * before / 42, in integers.
        dropped = (
            recent * earlier_days * 1000 <= (1000 - self.fade_milli) * before * FADE_RECENT_DAYS
        )
        return regular_before and dropped


@dataclass(frozen=True)
class Definitions:
    """Thresholds (ascending), the never-active grace period (ms), and the at-risk rule if any."""

    thresholds_ms: tuple[int, ...]
    grace_ms: int
    at_risk: AtRiskRule | None = None

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
    #: When the current at-risk flag was raised (None: not at risk).
    at_risk_ms: int | None = None
    #: Active days up to the last activity: bit i set when active on that day minus i.
    active_days: int = 0

    @property
    def flagged(self) -> bool:
        """True while the user holds any flag."""
        return self.flagged_count > 0 or self.never_active or self.at_risk_ms is not None

    def active_days_count(self) -> int:
        """Days with activity in the rhythm window ending on the last active day."""
        return self.active_days.bit_count()

    def note_activity(self, at_ms: int) -> None:
        """Record an active day (event-time order; a late one only sets its bit)."""
        day = at_ms // DAY_MS
        if self.last_ms is None:
            self.active_days = 1
            return
        last_day = self.last_ms // DAY_MS
        if day > last_day:
            self.active_days = ((self.active_days << min(day - last_day, 64)) | 1) & _WINDOW_MASK
        elif last_day - day < RHYTHM_WINDOW_DAYS:
            self.active_days |= 1 << (last_day - day)


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
    #: at_risk: when raised; inactive, reactivated, withdrawn: when the at-risk flag it ends was.
    at_risk_ms: int | None = None
    #: at_risk: active days in the rhythm window before the silence.
    active_days: int | None = None
    #: reactivated or withdrawn ending an at-risk flag and nothing else (no history entry).
    only_at_risk: bool = False


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
        if at_risk_crossing(state, self.definitions) == at_ms:
            state.at_risk_ms = at_ms
            return Transition(
                at_ms,
                user_id,
                "at_risk",
                last_seen_ms=state.last_ms,
                created_ms=state.created_ms,
                at_risk_ms=at_ms,
                active_days=state.active_days_count(),
            )
        threshold = self.definitions.thresholds_ms[state.flagged_count]
        state.flagged_count += 1
        # The first threshold supersedes an at-risk flag: the record says since when it was held.
        was_at_risk, state.at_risk_ms = state.at_risk_ms, None
        return Transition(
            at_ms,
            user_id,
            "inactive",
            threshold_ms=threshold,
            last_seen_ms=state.last_ms,
            created_ms=state.created_ms,
            at_risk_ms=was_at_risk,
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
        state.note_activity(change.at_ms)
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
            state.flagged_count, state.never_active, state.at_risk_ms = 0, False, None
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
    only_at_risk = state.flagged_count == 0 and not state.never_active
    at_risk_ms = state.at_risk_ms
    state.flagged_count, state.never_active, state.at_risk_ms = 0, False, None
    return Transition(
        change.at_ms,
        change.user_id,
        kind,
        last_seen_ms=state.last_ms,
        created_ms=state.created_ms,
        away_ms=away_ms,
        at_risk_ms=at_risk_ms,
        only_at_risk=only_at_risk and at_risk_ms is not None,
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
    threshold = max(raw, state.enabled_since_ms)
    at_risk = at_risk_crossing(state, definitions)
    return threshold if at_risk is None else at_risk


def at_risk_crossing(state: UserInactivity, definitions: Definitions) -> int | None:
    """When an enabled, unflagged regular becomes at risk, if before the first threshold."""
    rule = definitions.at_risk
    if rule is None or not state.enabled or state.last_ms is None or state.flagged:
        return None
    silence = rule.silence_ms(state.active_days)
    if silence is None:
        return None
    first = max(state.last_ms + definitions.thresholds_ms[0], state.enabled_since_ms)
    at = max(state.last_ms + silence, state.enabled_since_ms)
    return at if at < first else None


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
    """The configured thresholds, grace period and at-risk rule."""
    thresholds = sorted({parse_duration_ms(t) for t in settings.inactivity_thresholds.split(",")})
    at_risk = None
    if settings.at_risk_active_days > 0:
        at_risk = AtRiskRule(
            settings.at_risk_active_days,
            round(settings.at_risk_gap_factor * 1000),
            parse_duration_ms(settings.at_risk_min_silence),
            round(settings.at_risk_fade * 1000),
            parse_duration_ms(settings.at_risk_fade_silence),
        )
    return Definitions(tuple(thresholds), parse_duration_ms(settings.never_active_grace), at_risk)


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
