"""Read-side queries over the engine's Redis state: the inactive list and one user's flags."""

from __future__ import annotations

from dataclasses import dataclass

from stream.inactivity import Definitions, UserInactivity, threshold_label
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.redis_store import text
from stream.sweep import decode_state


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
    """The flags a user holds: "inactive:30d", ..., "never_active"."""
    if not state.enabled:
        return []
    held = [
        f"inactive:{threshold_label(t)}" for t in definitions.thresholds_ms[: state.flagged_count]
    ]
    return held + (["never_active"] if state.never_active else [])


async def inactivity_state(
    store: RedisStore, settings: Settings, user_id: str
) -> UserInactivity | None:
    """A user's inactivity state, wherever its partition is."""
    async with store.client.pipeline(transaction=False) as pipe:
        for partition in range(settings.activity_partitions):
            pipe.hget(store.keys.inactivity_states(partition), user_id)
        found = [raw for raw in await pipe.execute() if raw is not None]
    return decode_state(text(found[0])) if found else None


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
    wanted = (
        "never_active"
        if never_active
        else f"inactive:{threshold_label(threshold_ms or definitions.thresholds_ms[0])}"
    )
    flagged: dict[str, tuple[UserInactivity, list[str]]] = {}
    for partition in range(settings.activity_partitions):
        key = store.keys.inactivity_states(partition)
        async for user, raw in store.client.hscan_iter(key, count=1000):
            state = decode_state(text(raw))
            flags = flags_of(state, definitions)
            if wanted in flags:
                flagged[text(user)] = (state, flags)
    # One round trip for the directory side of every flagged user.
    enrichment = await DirectoryStore(store).profiles_and_roles(sorted(flagged))
    rows: list[InactiveUser] = []
    for user_id, (state, flags) in flagged.items():
        profile, roles = enrichment[user_id]
        if department is not None and (profile is None or profile.department != department):
            continue
        if community is not None and not any(community in c for c in roles.values()):
            continue
        department_name = profile.department if profile else None
        rows.append(
            InactiveUser(user_id, flags, state.last_ms, state.created_ms, department_name, roles)
        )
    rows.sort(key=lambda row: (row.last_seen_ms or row.created_ms, row.user_id), reverse=True)
    return rows
