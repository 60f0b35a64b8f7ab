"""One due delivery taken to its outcome: consent, render, open the channel, claim the send in
Redis (window and cap), hand over, record the outcome; retries with backoff, then dead letter.

The order is what makes a crash safe: nothing leaves before the claim says "sending", so a
delivery found "sending" after its lease was cut off during the hand-over and is not repeated,
unless the channel's receiver deduplicates on the idempotency key (nudges.md says more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from stream import jsonutil
from stream.nudge.channels import Channel, ChannelFailure, Outgoing, SendResult, masked
from stream.nudge.metrics import NudgeMetrics
from stream.nudge.rules import Rules, duration_ms
from stream.nudge.suppression import OptOuts, consent
from stream.nudge.templates import Renderer, TemplateProblem
from stream.store.nudge_store import NudgeStore

log = logging.getLogger("esn.nudge")
#: Deliveries in flight at once (each holds an SMTP session or an HTTP request).
_CONCURRENT = 8


class Deliverer:
    """Takes due deliveries to their outcomes over the configured channels."""

    def __init__(
        self,
        rules: Rules,
        store: NudgeStore,
        channels: dict[str, Channel],
        metrics: NudgeMetrics,
        opt_outs: OptOuts,
        clock: Callable[[], int],
        lease_ms: int,
        dry_run_out: IO[str] | None = None,
    ) -> None:
        self.rules = rules
        self.store = store
        self.channels = channels
        self.metrics = metrics
        self.opt_outs = opt_outs
        self.clock = clock
        self.lease_ms = lease_ms
        self.renderer = Renderer(rules)
        self.dry_run_out = dry_run_out

    async def run_due(self, limit: int = 100) -> int:
        """Take every delivery due now; returns how many were looked at."""
        self.opt_outs.refresh()
        ids = await self.store.due(self.clock(), limit)
        # Side by side: one slow SMTP server must not hold up a webhook. The claims in Redis
        # keep two deliveries of one person (the window) or one channel (the cap) apart.
        gate = asyncio.Semaphore(_CONCURRENT)

        async def one(delivery_id: str) -> None:
            async with gate:
                entry = await self.store.delivery(delivery_id)
                if entry is not None:
                    await self.deliver(entry)

        await asyncio.gather(*(one(i) for i in ids))
        return len(ids)

    def _idempotent(self, entry: dict[str, Any]) -> bool:
        channel = self.rules.channels.get(str(entry["channel"]))
        return bool(channel and channel.type == "webhook" and channel.idempotent)

    async def _settle(
        self, entry: dict[str, Any], outcome: str, reason: str, expect: str, **kw: Any
    ) -> None:
        if await self.store.settle(entry, self.clock(), outcome, reason, expect, **kw):
            self.metrics.count(str(entry["kind"]), str(entry["channel"]), outcome)
            log.info("nudge %s %s via %s: %s", entry["kind"], outcome, entry["channel"], reason)

    async def deliver(self, entry: dict[str, Any]) -> None:
        """One delivery, from whatever state it is in."""
        if entry["state"] == "sending":
            # Its sender died during the hand-over (the lease ran out).
            if not self._idempotent(entry):
                reason = "cut off during the hand-over; not sent again (at most once)"
                await self._settle(
                    entry, "unconfirmed", reason, "sending", expect_attempts=entry["attempts"]
                )
                return
        elif entry["state"] != "pending":
            return
        channel_config = self.rules.channels.get(str(entry["channel"]))
        if channel_config is None:
            await self._settle(entry, "dead_lettered", "channel not in the rules", "pending")
            return
        person = await self.store.address(str(entry["person"]))
        now = self.clock()
        verdict = consent(entry, person, self.opt_outs, self.rules, channel_config.type, now)
        if verdict is not None and entry["state"] == "pending":
            if verdict.defer_to_ms:
                await self._settle(
                    entry, "deferred", verdict.reason, "pending", next_due_ms=verdict.defer_to_ms
                )
            else:
                await self._settle(entry, verdict.outcome, verdict.reason, "pending")
            return
        try:
            message = self.renderer.render(str(entry["template"]), entry["record"], person, now)
        except TemplateProblem as exc:
            await self._settle(entry, "dead_lettered", str(exc), str(entry["state"]))
            return
        outgoing = Outgoing(
            delivery_id=str(entry["id"]),
            event_id=str(entry["event_id"]),
            person=str(entry["person"]),
            kind=str(entry["kind"]),
            channel=str(entry["channel"]),
            template=message.template,
            language=message.language,
            subject=message.subject,
            body=message.body,
            address=(person or {}).get("email") if channel_config.type == "email" else None,
            record=entry["record"],
        )
        if self.dry_run_out is not None:
            await self._dry_run(entry, outgoing, channel_config.daily_cap)
            return
        await self._send(entry, outgoing, channel_config.daily_cap)

    async def _claim(self, entry: dict[str, Any], cap: int) -> tuple[bool, int]:
        now = self.clock()
        day = datetime.fromtimestamp(now / 1000, tz=UTC).date().isoformat()
        claim = await self.store.claim(
            entry,
            now,
            day,
            duration_ms(self.rules.window),
            cap,
            self.lease_ms,
            resend=entry["state"] == "sending",
        )
        if claim.result == "suppressed":
            self.metrics.count(str(entry["kind"]), str(entry["channel"]), claim.reason)
        return claim.result == "claimed", claim.attempts

    async def _send(self, entry: dict[str, Any], outgoing: Outgoing, cap: int) -> None:
        channel = self.channels[outgoing.channel]
        expect = str(entry["state"])
        try:
            handover = await channel.open(outgoing)
        except ChannelFailure as exc:
            await self._failed(
                entry,
                SendResult("rejected" if exc.permanent else "retry", exc.reason),
                expect,
                None,
            )
            return
        claimed, attempts = await self._claim(entry, cap)
        if not claimed:
            await handover.abort()
            return
        result = await handover.commit()
        if result.status == "sent":
            await self._settle(entry, "sent", "", "sending", expect_attempts=attempts)
        elif result.status == "uncertain" and not self._idempotent(entry):
            await self._settle(
                entry, "unconfirmed", result.reason, "sending", expect_attempts=attempts
            )
        else:
            # uncertain on an idempotent webhook: sending again with the same key is safe.
            await self._failed(entry, result, "sending", attempts)

    async def _failed(
        self, entry: dict[str, Any], result: SendResult, expect: str, attempts: int | None
    ) -> None:
        failures = int(entry.get("failures") or 0) + 1
        retry = self.rules.retry
        if result.status == "rejected" or failures >= retry.attempts:
            reason = (
                result.reason
                if result.status == "rejected"
                else (f"{failures} attempts failed, last: {result.reason}")
            )
            await self._settle(entry, "dead_lettered", reason, expect, expect_attempts=attempts)
            return
        backoff = min(
            duration_ms(retry.backoff) * 2 ** (failures - 1), duration_ms(retry.max_backoff)
        )
        await self._settle(
            entry,
            "failed",
            result.reason,
            expect,
            expect_attempts=attempts,
            next_due_ms=self.clock() + max(1, backoff),
        )

    async def _dry_run(self, entry: dict[str, Any], outgoing: Outgoing, cap: int) -> None:
        claimed, attempts = await self._claim(entry, cap)
        if not claimed:
            return
        assert self.dry_run_out is not None
        line = {
            "delivery": outgoing.delivery_id,
            "person": outgoing.person,
            "kind": outgoing.kind,
            "channel": outgoing.channel,
            "to": masked(outgoing.address) if outgoing.address else None,
            "template": outgoing.template,
            "subject": outgoing.subject,
            "body": outgoing.body,
        }
        self.dry_run_out.write(jsonutil.dumps(line).decode() + "\n")
        self.dry_run_out.flush()
        await self._settle(entry, "dry_run", "", "sending", expect_attempts=attempts)
