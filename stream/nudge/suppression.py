"""Consent before anything is sent: disabled people, the opt-out list (a file or the directory
attribute), a missing address, quiet hours. Pure: the clock and the lists are arguments.

The window (one nudge per person) and the daily caps are decided in Redis, atomically with the
claim of the send (nudge_delivery.lua), because several processes share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream.nudge.rules import Rules, quiet_span


@dataclass(frozen=True)
class Verdict:
    """Why a delivery does not go out now: a final suppression, or a later time to try."""

    outcome: str
    reason: str
    defer_to_ms: int = 0


class OptOuts:
    """The opt-out file: user ids, pseudonyms or e-mail addresses, one a line (# comments),
    read again when the file changes."""

    def __init__(self, path: str, pseudonymize: Callable[[str], str] | None) -> None:
        self.path = Path(path) if path else None
        self._pseudonymize = pseudonymize
        self._mtime: float | None = None
        self._people: frozenset[str] = frozenset()
        self._addresses: frozenset[str] = frozenset()

    def refresh(self) -> None:
        """Read the file again if it changed (a missing file opts nobody out, and says so)."""
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise OSError(f"the opt-out file {self.path} is missing") from None
        if mtime == self._mtime:
            return
        lines = [
            line.split("#", 1)[0].strip()
            for line in self.path.read_text(encoding="utf-8").splitlines()
        ]
        entries = [line for line in lines if line]
        people = {e for e in entries if "@" not in e}
        if self._pseudonymize is not None:
            people |= {self._pseudonymize(e) for e in list(people)}
        self._people = frozenset(people)
        self._addresses = frozenset(e.lower() for e in entries if "@" in e)
        self._mtime = mtime

    def __contains__(self, who: tuple[str, str | None]) -> bool:
        person, email = who
        return person in self._people or (email or "").lower() in self._addresses


def in_quiet_hours(rules: Rules, now_ms: int) -> int:
    """0 outside the quiet hours, else the instant (ms) they end."""
    if not rules.quiet_hours:
        return 0
    start, end = quiet_span(rules.quiet_hours)
    local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(rules.zone())
    clock = local.time().replace(tzinfo=None)
    crosses_midnight = start > end
    quiet = (start <= clock or clock < end) if crosses_midnight else (start <= clock < end)
    if not quiet:
        return 0
    ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return int(ends.timestamp() * 1000)


def consent(
    entry: dict[str, Any],
    person: dict[str, Any] | None,
    opt_outs: OptOuts,
    rules: Rules,
    channel_type: str,
    now_ms: int,
) -> Verdict | None:
    """Why this delivery must not go out now, or None when it may."""
    if person is not None and person.get("status") == "disabled":
        return Verdict("disabled", "the directory profile is disabled")
    email = (person or {}).get("email")
    if (person or {}).get("opt_out") or (entry["person"], email) in opt_outs:
        return Verdict("opted_out", "on the opt-out list")
    if channel_type == "email" and not email:
        return Verdict("no_address", "no e-mail address in the directory profile")
    quiet_until = in_quiet_hours(rules, now_ms)
    if quiet_until:
        return Verdict("deferred", "quiet hours", quiet_until)
    return None
