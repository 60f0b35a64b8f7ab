"""What a flagged-user record asks of the nudge service, decided from the rules alone (pure):
the deliveries it makes pending, the effect entry it opens, or the pending ones it cancels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stream.nudge.rules import ENDING_KINDS, Rules, duration_ms


def at_ms(iso: str) -> int:
    """An RFC 3339 time of a flag record -> epoch ms."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def delivery_id(event_id: str, channel: str) -> str:
    """One delivery per flag and channel: what makes a flag published twice nudge once."""
    return f"{event_id}|{channel}"


def plan(record: dict[str, Any], rules: Rules, now_ms: int) -> dict[str, Any]:
    """The intake plan of one record (nudge_intake.lua's ARGV[4])."""
    person, kind, event_id = str(record["user_id"]), str(record["kind"]), str(record["event_id"])
    flagged_at = at_ms(str(record["at"]))
    out: dict[str, Any] = {
        "person": person,
        "kind": kind,
        "event_id": event_id,
        "at": flagged_at,
        "deliveries": [],
        "effect": None,
        "ends": kind in ENDING_KINDS,
        "audit": [],
    }
    if kind in ENDING_KINDS:
        return out
    matched = rules.rules_for(kind, record.get("threshold"))
    if not matched:
        return out
    routes: dict[str, str] = {}  # channel -> template; the first rule naming a channel wins
    for rule in matched:
        for channel in rule.channels:
            routes.setdefault(channel, rule.template or kind)
    stale = now_ms - flagged_at > duration_ms(rules.max_age)
    for channel, template in sorted(routes.items()):
        entry = {
            "id": delivery_id(event_id, channel),
            "event_id": event_id,
            "person": person,
            "kind": kind,
            "channel": channel,
            "template": template,
            "state": "pending",
            "due": now_ms + duration_ms(rules.hold),
            "attempts": 0,
            "taken": now_ms,
            "record": record,
        }
        if stale:
            # A replay or a backlog: nudging about a silence long past would be wrong.
            out["audit"].append({**entry, "outcome": "stale", "reason": "older than max_age"})
        else:
            out["deliveries"].append({"id": entry["id"], "due": entry["due"], "entry": entry})
    if not stale:
        out["effect"] = {
            "person": person,
            "kind": kind,
            "at": flagged_at,
            "decided": None,
            "group": "pending",
            "reactivated": None,
        }
    return out
