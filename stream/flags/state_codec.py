"""The stored text of one user's inactivity state (a field of the partition's states hash)."""

from __future__ import annotations

from stream.flags.machine import UserInactivity


def encode_state(state: UserInactivity) -> str:
    """created|enabled_since|enabled|last|flagged_count|never_active|profile_version, then
    |at_risk_since|active_days (hex) when either is set: the scripts read the first seven.
    """
    fields = [
        "" if value is None else str(int(value))
        for value in (
            state.created_ms,
            state.enabled_since_ms,
            state.enabled,
            state.last_ms,
            state.flagged_count,
            state.never_active,
            state.profile_ms,
        )
    ]
    if state.at_risk_ms is not None or state.active_days:
        # A dozen bytes at most: the rhythm is one bit a day, not a list of days.
        fields.append("" if state.at_risk_ms is None else str(state.at_risk_ms))
        fields.append(f"{state.active_days:x}")
    return "|".join(fields)


def decode_state(raw: str) -> UserInactivity:
    """The inverse of :func:`encode_state` (a state stored before the rhythm has none)."""
    parts = raw.split("|")
    created, since, enabled, last, flagged, never, profile = parts[:7]
    at_risk, days = parts[7:9] if len(parts) == 9 else ("", "0")
    return UserInactivity(
        created_ms=int(created),
        enabled_since_ms=int(since),
        enabled=enabled == "1",
        last_ms=int(last) if last else None,
        flagged_count=int(flagged),
        never_active=never == "1",
        profile_ms=int(profile) if profile else None,
        at_risk_ms=int(at_risk) if at_risk else None,
        active_days=int(days, 16),
    )
