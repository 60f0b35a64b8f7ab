"""Figures per department, only for groups of at least ESN_MIN_GROUP_SIZE enabled users.

Smaller departments are merged into "other"; if "other" is still smaller than the minimum it is
left out, so no reported figure describes fewer people than the minimum. The figures come from
the department counts the directory and release scripts keep (a handful of small hashes);
:func:`department_figures_scan` computes the same from every profile and state (the oracle).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Final

from stream.flags.state_codec import decode_state
from stream.privacy import merge_small_groups
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore, UserReads
from stream.store.department_counts import DepartmentCounts

DEPARTMENT_STATES: Final = ("enabled", "active", "inactive", "never_active", "at_risk")
#: Department of enabled profiles that name none.
UNASSIGNED: Final = "unassigned"


async def department_figures(store: RedisStore, settings: Settings) -> dict[str, dict[str, int]]:
    """department -> enabled, active, inactive, never_active, at_risk (docs/reference/analytics.md).

    active: seen, and flagged neither inactive nor never active (as of the last sweep); at_risk:
    holding the at-risk flag (they are active too: the flag warns before any threshold).
    """
    counted = await DepartmentCounts(store).read()
    rows: dict[str, Counter[str]] = {}
    for department, row in counted.items():
        rows.setdefault(department or UNASSIGNED, Counter()).update(row)
    return _reported(rows, settings.min_group_size)


async def department_figures_scan(
    store: RedisStore, settings: Settings
) -> dict[str, dict[str, int]]:
    """The same figures from a scan of every profile and state: O(users), the tests' oracle."""
    profiles = await DirectoryStore(store).all_profiles()
    enabled = {u: p.department or UNASSIGNED for u, p in profiles.items() if p.status == "enabled"}
    raw_states = await UserReads(store).inactivity_states()
    rows: dict[str, Counter[str]] = {}
    for user, department in enabled.items():
        row = rows.setdefault(department, Counter())
        row["enabled"] += 1
        if user not in raw_states:
            continue
        state = decode_state(raw_states[user])
        if state.flagged_count > 0:
            row["inactive"] += 1
        if state.never_active:
            row["never_active"] += 1
        if state.last_ms is not None and state.flagged_count == 0 and not state.never_active:
            row["active"] += 1
        if state.at_risk_ms is not None:
            row["at_risk"] += 1
    return _reported(rows, settings.min_group_size)


def _reported(rows: Mapping[str, Counter[str]], minimum: int) -> dict[str, dict[str, int]]:
    """Small departments merged into "other" (or left out), each row with every state."""
    sizes = {department: row["enabled"] for department, row in rows.items() if row["enabled"]}
    reported = merge_small_groups(sizes, minimum)
    out: dict[str, dict[str, int]] = {}
    for department, row in rows.items():
        name = reported.get(department)
        if name is None:
            continue
        merged = out.setdefault(name, dict.fromkeys(DEPARTMENT_STATES, 0))
        for state in DEPARTMENT_STATES:
            merged[state] += row[state]
    return dict(sorted(out.items()))
