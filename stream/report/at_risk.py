"""The report's early-warning section (issue 16): how many are at risk, per department (the
department figures, ESN_MIN_GROUP_SIZE applied) and, with ``--people`` only, who."""

from __future__ import annotations

from typing import Any

from stream.analytics.at_risk import at_risk_rows
from stream.cli_inactive import roles_text
from stream.flags.machine import Definitions
from stream.queries import at_risk_users
from stream.store import FlagReads, RedisStore


async def at_risk_section(
    store: RedisStore, definitions: Definitions, people: bool
) -> dict[str, Any]:
    """The count now, and the list (newest flag first) when the report names people."""
    count = (await FlagReads(store).inactivity_counts()).get("at_risk", 0)
    if not people:
        return {"count": count, "people": None}
    rows = await at_risk_rows(store, await at_risk_users(store, definitions))
    return {
        "count": count,
        "people": [
            {
                "user_id": r["user_id"],
                "at_risk_since": r["at_risk_since"],
                "active_days": r["rhythm"]["active_days"],
                "usual_gap_days": r["rhythm"]["usual_gap_days"],
                "last_seen": r["last_seen"],
                "department": r["department"],
                "roles": roles_text(r["communities"]),
            }
            for r in rows
        ],
    }
