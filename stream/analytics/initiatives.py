"""Initiatives: did an adoption or training campaign bring its people back?

An initiative is a name, a start instant and a set of users. Its figures compare the initiative's
users with everyone else the engine knows (enabled users with an inactivity state) over the same
period: how many were flagged (inactive at the first threshold, or never active) at the start, and
how many of those were reactivated by the end of each week since. Flags at an instant come from
each user's flag history, written atomically with the flags themselves (store/release.lua), so the
figures agree with what was published on esn.users.flagged.v1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from stream.analytics.days import iso_time
from stream.flags.state_codec import decode_state
from stream.fold import MS_PER_DAY
from stream.privacy import looks_like_pseudonym, pseudonymizer_from
from stream.settings import Settings
from stream.store import FlagReads, InitiativeStore, RedisStore, UserReads
from stream.store.directory_store import DirectoryStore

NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_FLAGGING: Final = frozenset("in")  # inactive at the first threshold, never active
_CLEARING: Final = frozenset("rw")  # reactivated, withdrawn (disabled or deleted)


@dataclass(frozen=True)
class Initiative:
    """What ``esn-pulse initiative add`` stored."""

    name: str
    start_ms: int
    users: int
    created_ms: int


def parse_history(raw: str) -> list[tuple[int, str]]:
    """ "i@1700000000000,r@..." -> [(ms, code), ...] in time order (stable for equal times)."""
    entries = []
    for entry in raw.split(","):
        code, _, at = entry.partition("@")
        entries.append((int(at), code))
    entries.sort(key=lambda item: item[0])
    return entries


def flagged_at(history: list[tuple[int, str]], at_ms: int) -> bool:
    """Whether the user held a flag at ``at_ms`` (changes at exactly that instant included)."""
    flagged = False
    for when, code in history:
        if when > at_ms:
            break
        if code in _FLAGGING:
            flagged = True
        elif code in _CLEARING:
            flagged = False
    return flagged


def reactivated_by(history: list[tuple[int, str]], after_ms: int, by_ms: int) -> bool:
    """Whether a reactivation happened in (after_ms, by_ms]."""
    return any(after_ms < when <= by_ms and code == "r" for when, code in history)


def group_figures(
    users: Iterable[str],
    histories: dict[str, list[tuple[int, str]]],
    start_ms: int,
    week_ends: list[int],
) -> dict[str, Any]:
    """Flagged at start and reactivated by each week's end, for one group of users (pure)."""
    members = list(users)
    flagged = [u for u in members if flagged_at(histories.get(u, []), start_ms)]
    weeks = []
    for index, end in enumerate(week_ends, start=1):
        back = sum(1 for u in flagged if reactivated_by(histories[u], start_ms, end))
        weeks.append(
            {
                "week": index,
                "end": iso_time(end),
                "reactivated": back,
                "rate": round(back / len(flagged), 4) if flagged else None,
            }
        )
    return {"users": len(members), "inactive_at_start": len(flagged), "weeks": weeks}


def week_ends(start_ms: int, now_ms: int) -> list[int]:
    """End of each week since the start, the last one cut at now (none before the start)."""
    ends = []
    end = start_ms + 7 * MS_PER_DAY
    while start_ms < now_ms:
        ends.append(min(end, now_ms))
        if end >= now_ms:
            break
        end += 7 * MS_PER_DAY
    return ends


async def _known_pseudonyms(store: RedisStore, user_ids: list[str]) -> set[str]:
    """Those pseudonym-shaped ids that the store holds a user or profile record for."""
    shaped = [u for u in user_ids if looks_like_pseudonym(u)]
    if not shaped:
        return set()
    return set(await store.last_seen(shaped)) | set(await DirectoryStore(store).profiles(shaped))


async def add_initiative(
    store: RedisStore, settings: Settings, name: str, start_ms: int, users: Iterable[str]
) -> Initiative:
    """Store (or replace) an initiative; user ids are pseudonymised like the pipeline's."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"initiative name {name!r}: letters, digits, '_', '.', '-' (max 64)")
    pseudonymize = pseudonymizer_from(settings)
    typed = sorted({u for u in users if u})
    # A pseudonym copied from an output (the inactive CSV) is kept when the engine knows it; any
    # other id, pseudonym-shaped or not, is hashed as the worker hashes it.
    known = await _known_pseudonyms(store, typed) if pseudonymize else set()
    members = sorted({u if u in known or not pseudonymize else pseudonymize(u) for u in typed})
    if not members:
        raise ValueError("an initiative needs at least one user")
    initiative = Initiative(name, start_ms, len(members), int(time.time() * 1000))
    await InitiativeStore(store).put(name, initiative.__dict__, members)
    return initiative


async def list_initiatives(store: RedisStore) -> list[Initiative]:
    """Every stored initiative, by name."""
    found = [Initiative(**record) for record in await InitiativeStore(store).records()]
    return sorted(found, key=lambda i: i.name)


async def get_initiative(store: RedisStore, name: str) -> Initiative | None:
    """One initiative, or None."""
    record = await InitiativeStore(store).record(name)
    return Initiative(**record) if record is not None else None


async def initiative_figures(
    store: RedisStore, settings: Settings, initiative: Initiative, now_ms: int
) -> dict[str, Any]:
    """The initiative's users against everyone else, week by week since its start."""
    targeted = await InitiativeStore(store).users(initiative.name)
    histories = {
        user: parse_history(raw) for user, raw in (await FlagReads(store).flag_histories()).items()
    }
    states = await UserReads(store).inactivity_states()
    known = set(states)
    enabled = {user for user, raw in states.items() if decode_state(raw).enabled}
    ends = week_ends(initiative.start_ms, now_ms)
    return {
        "name": initiative.name,
        "start": iso_time(initiative.start_ms),
        "now": iso_time(now_ms),
        "users": initiative.users,
        "unknown_users": len(targeted - known),
        "initiative": group_figures(sorted(targeted & known), histories, initiative.start_ms, ends),
        "others": group_figures(sorted(enabled - targeted), histories, initiative.start_ms, ends),
    }
