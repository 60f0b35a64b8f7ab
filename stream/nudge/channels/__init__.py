"""Ways a nudge goes out. Each splits a send at its point of no return: ``open`` does what can
fail harmlessly (connect, authenticate, name the recipient), ``commit`` hands the message over.
The service records the intent to send between the two, so a crash is known to be either
before anything left (send again) or during the hand-over (uncertain: see nudges.md)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: sent: accepted. retry: not accepted, may work later. rejected: not accepted, never will.
#: uncertain: cut off during the hand-over, the receiver may or may not have it.
Status = Literal["sent", "retry", "rejected", "uncertain"]
_ADDRESS = re.compile(r"[^\s<>\"'@]+@[^\s<>\"']+")


@dataclass(frozen=True)
class SendResult:
    """How a hand-over ended, and why (never an address in it)."""

    status: Status
    reason: str = ""


class ChannelFailure(Exception):
    """``open`` failed: nothing left this process (``permanent`` when retrying cannot help)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Outgoing:
    """One message to hand over, with what makes a repeat recognisable."""

    delivery_id: str
    event_id: str
    person: str
    kind: str
    channel: str
    template: str
    language: str
    subject: str
    body: str
    address: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Derived from the flag's event id and the channel: the same for every attempt."""
        return hashlib.sha256(self.delivery_id.encode()).hexdigest()[:32]

    @property
    def message_id(self) -> str:
        """The e-mail's Message-ID, the same for every attempt of this delivery."""
        return f"<nudge-{self.idempotency_key}@esn-pulse>"


class Handover(Protocol):
    """An opened send: hand the message over, or give up before it left."""

    async def commit(self) -> SendResult: ...

    async def abort(self) -> None: ...


class Channel(Protocol):
    """Opens sends of one configured channel."""

    async def open(self, message: Outgoing) -> Handover: ...


def scrub(text: str, *secrets: str | None) -> str:
    """A server's message without addresses or secrets, on one short line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _ADDRESS.sub("<address>", text)
    return " ".join(text.split())[:200]


def masked(address: str | None) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com`` (what a dry run and a preview show)."""
    if not address:
        return "-"
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
