"""The published JSON of a flag transition and the flag history entries it leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stream.flags.machine import RHYTHM_WINDOW_DAYS, Definitions, Transition, threshold_label
from stream.store import Profile

SCHEMA: str = "esn.users.flagged.v1"

#: Flag history entry codes: inactive at the first threshold, never active, reactivated, withdrawn.
HISTORY_CODES = {"inactive": "i", "never_active": "n", "reactivated": "r", "withdrawn": "w"}


def history_lines(transitions: list[Transition], definitions: Definitions) -> list[str]:
    """ "user\tcode@ms" for the changes that decide whether a user is flagged at an instant.

    The history keeps the first threshold and never-active: an at-risk flag, and its end when
    nothing else was held, leave no entry.
    """
    first = definitions.thresholds_ms[0]
    return [
        f"{t.user_id}\t{HISTORY_CODES[t.kind]}@{t.at_ms}"
        for t in transitions
        if (t.kind != "inactive" or t.threshold_ms == first)
        and t.kind != "at_risk"
        and not t.only_at_risk
    ]


def flag_record(
    transition: Transition,
    profile: Profile | None,
    roles: dict[str, list[str]],
    migrated: bool = False,
) -> dict[str, Any]:
    """The published JSON of a transition, enriched from the directory."""
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": transition.kind,
        "user_id": transition.user_id,
        "at": iso_ms(transition.at_ms),
        "last_seen": iso_ms(transition.last_seen_ms),
        "created": iso_ms(transition.created_ms),
        "department": profile.department if profile else None,
        "communities": roles,
        "event_id": f"{transition.user_id}:{transition.kind}:"
        f"{transition.threshold_ms or ''}:{transition.at_ms}",
    }
    if transition.threshold_ms is not None:
        record["threshold"] = threshold_label(transition.threshold_ms)
        record["threshold_seconds"] = transition.threshold_ms // 1000
    if transition.away_ms is not None:
        record["away_seconds"] = transition.away_ms / 1000
    if transition.at_risk_ms is not None:
        # at_risk: since when; inactive: the at-risk flag it supersedes; reactivated or
        # withdrawn: the one it ends.
        record["at_risk_since"] = iso_ms(transition.at_risk_ms)
    if transition.active_days is not None:
        record["rhythm"] = {
            "active_days": transition.active_days,
            "window_days": RHYTHM_WINDOW_DAYS,
            "usual_gap_days": round(RHYTHM_WINDOW_DAYS / transition.active_days, 2),
        }
    if transition.only_at_risk:
        record["ends"] = "at_risk"
    if migrated and transition.kind == "withdrawn":
        # Not a disabled profile: the definitions changed and no longer give this flag.
        record["reason"] = "definitions_changed"
    return record


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
