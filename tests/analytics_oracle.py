"""The analytics oracle: every figure of issue 4 computed the slow, obvious way from the input."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream.events import (
    CONTRIBUTING_TYPES,
    EVENT_TYPES,
    NO_OBJECT,
    OBJECT_TYPES,
    OTHER,
    PARTICIPATING_TYPES,
)

DAY = 86_400_000


def event_ms(event: dict[str, Any]) -> int:
    return round(datetime.fromisoformat(event["time"]).timestamp() * 1000)


@dataclass
class AnalyticsOracle:
    """Per-day sets and counts, per-user and per-community facts, from plain v1 dicts."""

    active: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    participating: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    contributing: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    content: dict[int, Counter[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    items: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    given: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    received: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    community_last: dict[str, int] = field(default_factory=dict)
    community_events: Counter[str] = field(default_factory=Counter)
    now: int = 0

    @classmethod
    def of(cls, events: list[dict[str, Any]]) -> AnalyticsOracle:
        o = cls()
        for e in events:
            t, actor = event_ms(e), e["actor"]
            day = t // DAY
            kind = e["type"] if e["type"] in EVENT_TYPES else OTHER
            o.active[day].add(actor)
            if kind in PARTICIPATING_TYPES or kind in CONTRIBUTING_TYPES:
                o.participating[day].add(actor)
            if kind in CONTRIBUTING_TYPES:
                o.contributing[day].add(actor)
            o.first[actor] = min(o.first.get(actor, t), t)
            o.last[actor] = max(o.last.get(actor, t), t)
            obj = e.get("object")
            object_type = (
                NO_OBJECT
                if obj is None
                else (obj["type"] if obj["type"] in OBJECT_TYPES else OTHER)
            )
            o.content[day][kind, object_type] += 1
            if obj is not None:
                o.items[day][f"{obj['type']}:{obj['id']}"] += 1
            o.given[actor][kind] += 1
            if kind in ("like", "mention") and e.get("target_user"):
                o.received[e["target_user"]][kind] += 1
            if e.get("community"):
                c = e["community"]
                o.community_last[c] = max(o.community_last.get(c, t), t)
                o.community_events[c] += 1
            o.now = max(o.now, t)
        return o

    @property
    def today(self) -> int:
        return self.now // DAY

    def window(self, sets: dict[int, set[str]], last_day: int, days: int) -> set[str]:
        out: set[str] = set()
        for d in range(last_day - days + 1, last_day + 1):
            out |= sets.get(d, set())
        return out

    def new_on(self, day: int) -> int:
        return sum(1 for t in self.first.values() if t // DAY == day)

    def top(self, days: range, limit: int) -> list[tuple[str, int]]:
        total: Counter[str] = Counter()
        for d in days:
            total.update(self.items.get(d, Counter()))
        return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def latest_directory(
    directory: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, set[str]]]]:
    """Profiles (latest update wins) and community -> role -> users (latest op wins)."""
    profiles: dict[str, dict[str, Any]] = {}
    ops: dict[tuple[str, str, str], tuple[str, str]] = {}
    for record in directory:
        if record["kind"] == "profile":
            held = profiles.get(record["user_id"])
            if held is None or held["updated"] <= record["updated"]:
                profiles[record["user_id"]] = record
        else:
            key = (record["community"], record["role"], record["user_id"])
            if key not in ops or ops[key][0] <= record["updated"]:
                ops[key] = (record["updated"], record["op"])
    roles: dict[str, dict[str, set[str]]] = defaultdict(
        lambda: {"owner": set(), "member": set(), "follower": set()}
    )
    for (community, role, user), (_, op) in ops.items():
        if op == "add":
            roles[community][role].add(user)
    return profiles, {c: r for c, r in roles.items() if any(r.values())}


def expected_communities(
    o: AnalyticsOracle, directory: list[dict[str, Any]], window_ms: int, threshold_ms: int
) -> dict[str, dict[str, Any]]:
    profiles, roles = latest_directory(directory)
    disabled = {u for u, p in profiles.items() if p["status"] != "enabled"}

    def active(user: str, within: int) -> bool:
        return user not in disabled and user in o.last and o.now - o.last[user] <= within

    out = {}
    for c in sorted(set(roles) | set(o.community_last)):
        r = roles.get(c, {"owner": set(), "member": set(), "follower": set()})
        people = r["owner"] | r["member"] | r["follower"]
        act = sum(1 for u in people if active(u, window_ms))
        out[c] = {
            "members_by_role": {k: len(v) for k, v in r.items()},
            "people": len(people),
            "active_members": act,
            "health": round(act / len(people), 4) if people else None,
            "events": o.community_events.get(c, 0),
            "idle": c not in o.community_last or o.now - o.community_last[c] > window_ms,
            "orphaned": not any(active(u, threshold_ms) for u in r["owner"]),
        }
    return out
