"""The effect of nudging: the share of nudged flags whose person was active again within 7 and
30 days of the decision, against flags not nudged (suppressed by the window, opted out, capped).
Pure: entries and the clock are arguments; a window counts only decisions it has seen whole."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DAY_MS = 86_400_000
WINDOWS_DAYS = (7, 30)
GROUPS = ("nudged", "not_nudged")


def effect(
    entries: Iterable[dict[str, Any]],
    now_ms: int,
    since_ms: int = 0,
    until_ms: int | None = None,
    minimum: int = 1,
) -> dict[str, Any]:
    """{"windows": {"7d": {"nudged": {flags, active_again, share}, "not_nudged": ...}, ...}}
    over the decisions made from ``since_ms`` to ``until_ms``. A group of fewer than
    ``minimum`` flags (ESN_MIN_GROUP_SIZE) shows its size only: a share of two people tells
    whether each came back."""
    decided = [
        e
        for e in entries
        if e.get("group") in GROUPS
        and isinstance(e.get("decided"), int)
        and since_ms <= e["decided"] <= (until_ms if until_ms is not None else now_ms)
    ]
    windows: dict[str, Any] = {}
    for days in WINDOWS_DAYS:
        span = days * DAY_MS
        row: dict[str, Any] = {}
        for group in GROUPS:
            whole = [e for e in decided if e["group"] == group and e["decided"] + span <= now_ms]
            again = sum(
                1
                for e in whole
                if isinstance(e.get("reactivated"), int) and e["reactivated"] - e["decided"] <= span
            )
            shown = len(whole) >= max(1, minimum)
            row[group] = {
                "flags": len(whole),
                "active_again": again if shown else None,
                "share": round(again / len(whole), 4) if shown else None,
            }
        nudged, control = row["nudged"]["share"], row["not_nudged"]["share"]
        row["difference"] = (
            round(nudged - control, 4) if nudged is not None and control is not None else None
        )
        windows[f"{days}d"] = row
    return {"windows": windows, "decisions": len(decided)}
