"""Figures per department, only for groups of at least ESN_MIN_GROUP_SIZE enabled users.

Smaller departments are merged into "other"; if "other" is still smaller than the minimum it is
left out, so no reported figure describes fewer people than the minimum.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from stream.flags.machine import Definitions
from stream.flags.state_codec import decode_state
from stream.privacy import merge_small_groups
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore, UserReads

DEPARTMENT_STATES: Final = ("enabled", "active", "inactive", "never_active")
#: Department of enabled profiles that name none.
UNASSIGNED: Final = "unassigned"


async def department_figures(
    store: RedisStore, settings: Settings, definitions: Definitions, now_ms: int
) -> dict[str, dict[str, int]]:
    """department -> enabled, active (within the first threshold), inactive, never_active."""
    profiles = await DirectoryStore(store).all_profiles()
    enabled = {u: p.department or UNASSIGNED for u, p in profiles.items() if p.status == "enabled"}
    if not enabled:
        return {}
    # Raw states, decoded only for enabled profiles: most of the refresh's CPU otherwise.
    raw_states = await UserReads(store).inactivity_states()
    states = {u: decode_state(raw_states[u]) for u in enabled if u in raw_states}
    last_seen = await store.last_seen(sorted(enabled))
    window = definitions.thresholds_ms[0]
    sizes = Counter(enabled.values())
    reported = merge_small_groups(sizes, settings.min_group_size)
    out: dict[str, dict[str, int]] = {}
    for user, department in enabled.items():
        name = reported.get(department)
        if name is None:
            continue
        row = out.setdefault(name, dict.fromkeys(DEPARTMENT_STATES, 0))
        row["enabled"] += 1
        seen = last_seen.get(user)
        if seen is not None and now_ms - seen <= window:
            row["active"] += 1
        state = states.get(user)
        if state is not None and state.flagged_count > 0:
            row["inactive"] += 1
        if state is not None and state.never_active:
            row["never_active"] += 1
    return dict(sorted(out.items()))
