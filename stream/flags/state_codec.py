"""The stored text of one user's inactivity state (a field of the partition's states hash)."""

from __future__ import annotations

from stream.flags.machine import UserInactivity


def encode_state(state: UserInactivity) -> str:
    """created|enabled_since|enabled|last|flagged_count|never_active|profile_version."""
    return "|".join(
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
    )


def decode_state(raw: str) -> UserInactivity:
    """The inverse of :func:`encode_state`."""
    created, since, enabled, last, flagged, never, profile = raw.split("|")
    return UserInactivity(
        created_ms=int(created),
        enabled_since_ms=int(since),
        enabled=enabled == "1",
        last_ms=int(last) if last else None,
        flagged_count=int(flagged),
        never_active=never == "1",
        profile_ms=int(profile) if profile else None,
    )
