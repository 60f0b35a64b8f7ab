"""What the stored state was built under, and bringing one partition's flags to new definitions.

The user bucket count and the counted activity types cannot be migrated (state is addressed by
bucket; last activity was computed under the old types): a change is refused with the rebuild
remedy. Thresholds and the never-active grace can: :func:`migrate_partition` gives, from the stored
states and the instant they were released up to, the flags the new definitions give at that instant
and the transitions that lead there. Pure: the caller commits the plan atomically (release.lua).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from stream.flags.machine import (
    AtRiskRule,
    Definitions,
    Transition,
    TransitionKind,
    UserInactivity,
    at_risk_crossing,
    counting_types_from,
    definitions_from,
    next_crossing,
    threshold_label,
)
from stream.settings import Settings

#: Version of the encoding below; a new one needs a reader for the old. Definitions without an
#: at-risk rule keep version 1's text, so a deployment that turns it off migrates nothing.
FORMAT: Final = 2
DOC: Final = "docs/operations/config-changes.md"
LAYOUT_DOC: Final = "docs/reference/redis.md#upgrading-from-an-older-layout"


def encode_definitions(definitions: Definitions) -> str:
    """The canonical text of definitions: reordered or respelled thresholds give the same one."""
    thresholds = ",".join(str(t) for t in definitions.thresholds_ms)
    rule = definitions.at_risk
    if rule is None:
        return f"v1;t={thresholds};g={definitions.grace_ms}"
    at_risk = ",".join(
        str(value)
        for value in (
            rule.min_active_days,
            rule.gap_factor_milli,
            rule.min_silence_ms,
            rule.fade_milli,
            rule.fade_silence_ms,
        )
    )
    return f"v{FORMAT};t={thresholds};g={definitions.grace_ms};r={at_risk}"


def decode_definitions(text: str) -> Definitions:
    """The inverse of :func:`encode_definitions`; ValueError on anything else."""
    parts = text.split(";")
    if len(parts) not in (3, 4) or parts[0] != f"v{len(parts) - 2}":
        raise ValueError(f"not a definitions record: {text!r}")
    if not parts[1].startswith("t=") or not parts[2].startswith("g="):
        raise ValueError(f"not a definitions record: {text!r}")
    thresholds = tuple(int(t) for t in parts[1][2:].split(","))
    at_risk = None
    if len(parts) == 4:
        values = parts[3][2:].split(",") if parts[3].startswith("r=") else []
        if len(values) != 5:
            raise ValueError(f"not a definitions record: {text!r}")
        at_risk = AtRiskRule(*(int(v) for v in values))
    return Definitions(thresholds, int(parts[2][2:]), at_risk)


def describe(definitions: Definitions) -> str:
    """'thresholds 30d,90d, grace 14d, at risk 16 days x3 >= 7d' for log lines."""
    thresholds = ",".join(threshold_label(t) for t in definitions.thresholds_ms)
    text = f"thresholds {thresholds}, grace {threshold_label(definitions.grace_ms)}"
    rule = definitions.at_risk
    if rule is None:
        return text + ", no at-risk flag"
    factor = f"{rule.gap_factor_milli / 1000:g}"
    silence = threshold_label(rule.min_silence_ms)
    text += f", at risk {rule.min_active_days} days x{factor} >= {silence}"
    if rule.fade_milli:
        fade = threshold_label(rule.fade_silence_ms)
        text += f" or faded {rule.fade_milli / 10:g}% >= {fade}"
    return text


@dataclass(frozen=True)
class DeploymentRecord:
    """What the deployment's state in Redis was built under (the ``deployment`` hash)."""

    user_buckets: int
    #: Counted activity types, sorted and comma-separated; empty: every type.
    activity_types: str
    #: The definitions of partitions that carry no marker of their own (the first ones seen).
    definitions: str
    #: The Redis key layout the state is stored in (stream/store/keys.py LAYOUT).
    layout: int


def deployment_record_from(settings: Settings, layout: int) -> DeploymentRecord:
    """The record a worker with these settings, storing in key ``layout``, would write."""
    types = counting_types_from(settings)
    return DeploymentRecord(
        settings.user_buckets,
        ",".join(sorted(types)) if types else "",
        encode_definitions(definitions_from(settings)),
        layout,
    )


def refusal(stored: DeploymentRecord, configured: DeploymentRecord) -> tuple[str, str] | None:
    """Why a worker with ``configured`` must not run on ``stored`` and what to do, or None."""
    rebuild = (
        "or stop every worker and run `esn-pulse rebuild --yes` to rebuild the state from "
        f"Kafka (see {DOC})"
    )
    if stored.layout != configured.layout:
        return (
            f"refusing to start: the state in Redis is stored in key layout {stored.layout}, "
            f"this version of ESN Pulse keeps it in layout {configured.layout}",
            "stop every worker of the old version and run `esn-pulse rebuild --yes`: it deletes "
            "the old keys (initiatives are kept) and the workers replay the topics into the new "
            f"layout (see {LAYOUT_DOC})",
        )
    if stored.user_buckets != configured.user_buckets:
        return (
            f"refusing to start: ESN_USER_BUCKETS is {configured.user_buckets} but the state in "
            f"Redis is stored in {stored.user_buckets} buckets",
            f"set ESN_USER_BUCKETS={stored.user_buckets} again, {rebuild}",
        )
    if stored.activity_types != configured.activity_types:
        was = stored.activity_types or "(empty: every type)"
        now = configured.activity_types or "(empty: every type)"
        return (
            f"refusing to start: ESN_ACTIVITY_TYPES is {now} but the last activity stored in "
            f"Redis was computed counting {was}",
            f"set ESN_ACTIVITY_TYPES={stored.activity_types} again, {rebuild}",
        )
    return None


@dataclass
class PartitionMigration:
    """The writes and the records that bring one partition to new definitions."""

    #: Users whose state changes, with the new state.
    states: dict[str, UserInactivity] = field(default_factory=dict)
    #: Users whose next crossing changes, with the new one.
    due: dict[str, int] = field(default_factory=dict)
    #: Users that had a crossing and now have none.
    not_due: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    #: (user, kind, at) for the flag history: whether the user is flagged at all changed.
    history: list[tuple[str, TransitionKind, int]] = field(default_factory=list)


def migrate_partition(
    states: dict[str, UserInactivity],
    due: dict[str, int],
    old: Definitions,
    new: Definitions,
    released_ms: int,
) -> PartitionMigration:
    """Bring states released up to ``released_ms`` under ``old`` to ``new``, at that instant.

    A flag the new definitions do not give is withdrawn at ``released_ms``; one they give that is
    not held is raised at the instant it became true (as a live run under ``new`` would have);
    crossings still ahead are scheduled, and the next release crosses them in event-time order
    with the buffered changes, so what follows is what a live run would publish.
    """
    plan = PartitionMigration()
    for user in sorted(set(states) | set(due)):
        state = states.get(user)
        if state is None:
            plan.not_due.append(user)  # a crossing without a state: nothing can cross
            continue
        after = _state_under(state, new, released_ms)
        if after.enabled:
            plan.transitions += _transitions(user, state, after, old, new, released_ms)
            plan.history += _history(user, state, after, new, released_ms)
        if after != state:
            plan.states[user] = after
        crossing = next_crossing(after, new)
        if crossing is None:
            if user in due:
                plan.not_due.append(user)
        elif due.get(user) != crossing:
            plan.due[user] = crossing
    # Time order, as the machine emits them (a key: dataclass ordering is slow on 100,000s).
    plan.transitions.sort(key=lambda t: (t.at_ms, t.user_id, t.kind, t.threshold_ms or 0))
    return plan


def _state_under(state: UserInactivity, new: Definitions, released_ms: int) -> UserInactivity:
    """The state a run under ``new`` has at ``released_ms`` (only the flags depend on them)."""
    if not state.enabled:
        return replace(state, flagged_count=0, never_active=False, at_risk_ms=None)
    if state.last_ms is None:
        crossing = max(state.created_ms + new.grace_ms, state.enabled_since_ms)
        return replace(state, flagged_count=0, never_active=crossing <= released_ms)
    # Crossings grow with the threshold, so the flagged ones are a prefix, as the machine keeps.
    count = sum(
        1
        for threshold in new.thresholds_ms
        if max(state.last_ms + threshold, state.enabled_since_ms) <= released_ms
    )
    unflagged = replace(state, flagged_count=count, never_active=False, at_risk_ms=None)
    at_risk = at_risk_crossing(unflagged, new)
    if at_risk is None or at_risk > released_ms:
        return unflagged
    # Held under both: the flag stays the one raised (nothing to publish).
    return replace(unflagged, at_risk_ms=state.at_risk_ms or at_risk)


def _transitions(
    user: str,
    before: UserInactivity,
    after: UserInactivity,
    old: Definitions,
    new: Definitions,
    released_ms: int,
) -> list[Transition]:
    held_in_order = old.thresholds_ms[: before.flagged_count]
    gets_in_order = new.thresholds_ms[: after.flagged_count]
    at_risk_same = (before.at_risk_ms is None) == (after.at_risk_ms is None)
    if (
        held_in_order == gets_in_order
        and before.never_active == after.never_active
        and at_risk_same
    ):
        return []  # the usual case: nothing this user holds changes
    held, gets = set(held_in_order), set(gets_in_order)
    last, created = before.last_ms, before.created_ms
    out = [
        Transition(released_ms, user, "withdrawn", threshold, last, created)
        for threshold in sorted(held - gets)
    ]
    if before.never_active and not after.never_active:
        out.append(Transition(released_ms, user, "withdrawn", None, last, created))
    if before.at_risk_ms is not None and after.at_risk_ms is None and not gets:
        # Not superseded by inactivity under the new definitions: the rule no longer gives it.
        out.append(
            Transition(
                released_ms,
                user,
                "withdrawn",
                None,
                last,
                created,
                at_risk_ms=before.at_risk_ms,
                only_at_risk=True,
            )
        )
    if after.at_risk_ms is not None and before.at_risk_ms is None:
        out.append(
            Transition(
                after.at_risk_ms,
                user,
                "at_risk",
                last_seen_ms=last,
                created_ms=created,
                at_risk_ms=after.at_risk_ms,
                active_days=after.active_days_count(),
            )
        )
    for threshold in sorted(gets - held):
        assert last is not None  # thresholds are only flagged after an activity
        at = max(last + threshold, before.enabled_since_ms)
        # The first threshold supersedes an at-risk flag held before.
        superseded = before.at_risk_ms if threshold == new.thresholds_ms[0] else None
        out.append(
            Transition(at, user, "inactive", threshold, last, created, at_risk_ms=superseded)
        )
    if after.never_active and not before.never_active:
        at = max(created + new.grace_ms, before.enabled_since_ms)
        out.append(Transition(at, user, "never_active", created_ms=created))
    return out


def _history(
    user: str, before: UserInactivity, after: UserInactivity, new: Definitions, released_ms: int
) -> list[tuple[str, TransitionKind, int]]:
    """The history keeps "flagged at the first threshold or never active": when that changes."""
    was = before.never_active or before.flagged_count > 0
    now = after.never_active or after.flagged_count > 0
    if was and not now:
        return [(user, "withdrawn", released_ms)]
    if now and not was:
        if after.never_active:
            at = max(after.created_ms + new.grace_ms, after.enabled_since_ms)
            return [(user, "never_active", at)]
        assert after.last_ms is not None
        at = max(after.last_ms + new.thresholds_ms[0], after.enabled_since_ms)
        return [(user, "inactive", at)]
    return []
