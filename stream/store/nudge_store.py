"""The nudge service's state in Redis: fenced intake of flag records, delivery claims and
outcomes, the audit stream, the effect entries and the address book (nudge_*.lua)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from stream import jsonutil
from stream.store.keys import NudgeKeys
from stream.store.redis_store import RedisStore, text

_LUA = resources.files("stream.store")
_INTAKE = _LUA.joinpath("nudge_intake.lua").read_text()
_DELIVERY = _LUA.joinpath("nudge_delivery.lua").read_text()
_ADDRESSES = _LUA.joinpath("nudge_addresses.lua").read_text()
#: How long the audit stream keeps entries (the works council's look back is months).
AUDIT_RETENTION_MS = 400 * 86_400_000


@dataclass(frozen=True)
class Claim:
    """What a claim got: "claimed" (send now), "suppressed" (reason), "busy" or "gone"."""

    result: str
    reason: str = ""
    attempts: int = 0
    resend: bool = False


class NudgeStore:
    """Every read and write of the nudge service, over one store's client."""

    def __init__(self, store: RedisStore, dry_run: bool = False) -> None:
        self.client = store.client
        self.keys: NudgeKeys = store.keys.nudge(dry_run)
        self._addresses = store.keys.nudge_addresses
        self._positions = store.keys.nudge_address_positions
        self._intake = store.client.register_script(_INTAKE)
        self._delivery = store.client.register_script(_DELIVERY)
        self._fold_addresses = store.client.register_script(_ADDRESSES)

    # --- intake -----------------------------------------------------------------------------

    async def fences(self) -> dict[int, int]:
        """Flagged-topic partition -> highest offset taken in."""
        raw = await self.client.hgetall(self.keys.fences)
        return {int(text(k)): int(text(v)) for k, v in raw.items()}

    async def intake(
        self, partition: int, offset: int, now_ms: int, plan: dict[str, Any]
    ) -> tuple[bool, list[tuple[str, str]]]:
        """Apply one record's plan behind the fence: (applied, [(kind, channel) cancelled])."""
        k, person = self.keys, str(plan["person"])
        raw = await self._intake(
            keys=[
                k.fences,
                k.deliveries,
                k.due,
                k.open(person),
                k.audit,
                k.effect,
                k.person_effects(person),
            ],
            args=[partition, offset, now_ms, jsonutil.dumps(plan), _audit_min(now_ms)],
        )
        answer = jsonutil.loads(raw)
        cancelled = answer["cancelled"] or []  # cjson writes an empty list as {}
        return bool(answer["applied"]), [(str(a), str(b)) for a, b in cancelled]

    # --- deliveries -------------------------------------------------------------------------

    async def due(self, now_ms: int, count: int = 100) -> list[str]:
        """Delivery ids due by now (pending, or sends whose lease ran out), oldest first."""
        raw: list[Any] = await self.client.zrangebyscore(
            self.keys.due, 0, now_ms, start=0, num=count
        )
        return [text(r) for r in raw]

    async def pending_count(self) -> int:
        """Deliveries not settled yet (held, deferred, to retry, or being sent)."""
        return int(await self.client.zcard(self.keys.due))

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery's state."""
        raw = await self.client.hget(self.keys.deliveries, delivery_id)
        return jsonutil.loads(raw) if raw is not None else None

    async def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery's state (tests and the log's detail)."""
        raw = await self.client.hgetall(self.keys.deliveries)
        return [jsonutil.loads(v) for v in raw.values()]

    def _delivery_keys(self, entry: dict[str, Any], iso_day: str) -> list[str]:
        k = self.keys
        return [
            k.deliveries,
            k.due,
            k.last_nudged,
            k.cap(str(entry["channel"]), iso_day),
            k.audit,
            k.effect,
            k.open(str(entry["person"])),
        ]

    async def claim(
        self,
        entry: dict[str, Any],
        now_ms: int,
        iso_day: str,
        window_ms: int,
        cap: int,
        lease_ms: int,
        resend: bool,
    ) -> Claim:
        """Claim a due delivery for sending (window and cap checked in the same step)."""
        raw = await self._delivery(
            keys=self._delivery_keys(entry, iso_day),
            args=[
                "claim",
                entry["id"],
                now_ms,
                window_ms,
                cap,
                lease_ms,
                _audit_min(now_ms),
                1 if resend else 0,
            ],
        )
        answer = jsonutil.loads(raw)
        return Claim(
            str(answer["result"]),
            str(answer.get("reason") or ""),
            int(answer.get("attempts") or 0),
            bool(answer.get("resend")),
        )

    async def settle(
        self,
        entry: dict[str, Any],
        now_ms: int,
        outcome: str,
        reason: str,
        expect_state: str,
        expect_attempts: int | None = None,
        next_due_ms: int = 0,
    ) -> bool:
        """Give a delivery its outcome (or a retry at ``next_due_ms``) if it is still in
        ``expect_state``; False when another process moved it on first."""
        raw = await self._delivery(
            keys=self._delivery_keys(entry, "-"),
            args=[
                "settle",
                entry["id"],
                now_ms,
                outcome,
                reason,
                expect_state,
                "" if expect_attempts is None else expect_attempts,
                next_due_ms,
                _audit_min(now_ms),
            ],
        )
        return str(jsonutil.loads(raw)["result"]) in ("settled", "retry")

    # --- audit and effect -------------------------------------------------------------------

    async def audit(self, since_ms: int, limit: int = 100_000) -> list[dict[str, Any]]:
        """Audit entries recorded since ``since_ms``, oldest first."""
        raw: Any = await self.client.xrange(self.keys.audit, min=f"{since_ms}-0", count=limit)
        return [jsonutil.loads(fields[b"e"]) for _id, fields in raw or []]

    async def effect_entries(self) -> list[dict[str, Any]]:
        """Every effect entry: {person, kind, at, decided, group, reactivated}."""
        raw = await self.client.hgetall(self.keys.effect)
        return [jsonutil.loads(v) for v in raw.values()]

    # --- address book -----------------------------------------------------------------------

    async def address_positions(self) -> dict[int, int]:
        """Directory partition -> next offset the address book reads."""
        raw = await self.client.hgetall(self._positions)
        return {int(text(k)): int(text(v)) for k, v in raw.items()}

    async def fold_addresses(
        self, partition: int, next_offset: int, entries: list[tuple[str, int, dict[str, Any]]]
    ) -> int:
        """Store (person, updated ms, entry) where newer than what is kept; move the position."""
        args: list[Any] = [partition, next_offset]
        for person, updated, entry in entries:
            args += [person, updated, jsonutil.dumps({**entry, "updated": updated})]
        return int(await self._fold_addresses(keys=[self._addresses, self._positions], args=args))

    async def address(self, person: str) -> dict[str, Any] | None:
        """A person's address-book entry, or None."""
        raw = await self.client.hget(self._addresses, person)
        return jsonutil.loads(raw) if raw is not None else None


def _audit_min(now_ms: int) -> int:
    return max(0, now_ms - AUDIT_RETENTION_MS)
