"""Read-side queries over the engine's Redis state: the inactive list and one user's flags."""

from __future__ import annotations

from dataclasses import dataclass

from stream.flags.machine import Definitions, UserInactivity, threshold_label
from stream.flags.state_codec import decode_state
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore, UserReads


@dataclass(frozen=True)
class InactiveUser:
    """One row of ``esn-pulse inactive``."""

    user_id: str
    flags: list[str]
    last_seen_ms: int | None
    created_ms: int
    department: str | None
    roles: dict[str, list[str]]


def flags_of(state: UserInactivity, definitions: Definitions) -> list[str]:
    """The flags a user holds: "inactive:30d", ..., "never_active", "at_risk"."""
    if not state.enabled:
        return []
    held = [
        f"inactive:{threshold_label(t)}" for t in definitions.thresholds_ms[: state.flagged_count]
    ]
    held += ["never_active"] if state.never_active else []
    return held + (["at_risk"] if state.at_risk_ms is not None else [])


async def inactivity_state(
    store: RedisStore, settings: Settings, user_id: str
) -> UserInactivity | None:
    """A user's inactivity state, wherever its partition is."""
    raw = await UserReads(store).inactivity_state(user_id)
    return decode_state(raw) if raw is not None else None


@dataclass(frozen=True)
class FlaggedUser:
    """A user holding the flag asked for, before the directory's side is added."""

    user_id: str
    state: UserInactivity
    flags: list[str]


async def flagged_users(
    store: RedisStore,
    settings: Settings,
    definitions: Definitions,
    *,
    threshold_ms: int | None = None,
    never_active: bool = False,
) -> list[FlaggedUser]:
    """Users flagged inactive at ``threshold_ms`` (or never active), newest silence first."""
    wanted = (
        "never_active"
        if never_active
        else f"inactive:{threshold_label(threshold_ms or definitions.thresholds_ms[0])}"
    )
    flagged: list[FlaggedUser] = []
    reads = UserReads(store)
    async for user, raw in reads.scan_inactivity_states():
        state = decode_state(raw)
        flags = flags_of(state, definitions)
        if wanted in flags:
            flagged.append(FlaggedUser(user, state, flags))
    flagged.sort(key=lambda f: (f.state.last_ms or f.state.created_ms, f.user_id), reverse=True)
    return flagged


async def with_directory(store: RedisStore, flagged: list[FlaggedUser]) -> list[InactiveUser]:
    """Department and communities of each flagged user, in one round trip."""
    enrichment = await DirectoryStore(store).profiles_and_roles([f.user_id for f in flagged])
    rows: list[InactiveUser] = []
    for f in flagged:
        profile, roles = enrichment[f.user_id]
        department = profile.department if profile else None
        rows.append(
            InactiveUser(f.user_id, f.flags, f.state.last_ms, f.state.created_ms, department, roles)
        )
    return rows


async def inactive_users(
    store: RedisStore,
    settings: Settings,
    definitions: Definitions,
    *,
    threshold_ms: int | None = None,
    never_active: bool = False,
    community: str | None = None,
    department: str | None = None,
) -> list[InactiveUser]:
    """Users flagged inactive at ``threshold_ms`` (or never active), newest silence first."""
    flagged = await flagged_users(
        store, settings, definitions, threshold_ms=threshold_ms, never_active=never_active
    )
    return [
        row
        for row in await with_directory(store, flagged)
        if (department is None or row.department == department)
        and (community is None or any(community in c for c in row.roles.values()))
    ]


async def at_risk_users(store: RedisStore, definitions: Definitions) -> list[FlaggedUser]:
    """Users holding the at-risk flag, newest flag first (ties: newest silence, then id)."""
    flagged: list[FlaggedUser] = []
    async for user, raw in UserReads(store).scan_inactivity_states():
        state = decode_state(raw)
        if state.enabled and state.at_risk_ms is not None:
            flagged.append(FlaggedUser(user, state, flags_of(state, definitions)))
    flagged.sort(
        key=lambda f: (f.state.at_risk_ms or 0, f.state.last_ms or 0, f.user_id), reverse=True
    )
    return flagged
