"""Webhooks: a JSON POST (generic, or shaped as a Slack or Teams incoming webhook) with an
Idempotency-Key header derived from the flag's event id."""

from __future__ import annotations

from typing import Any

import aiohttp

from stream import __version__, jsonutil
from stream.nudge.channels import ChannelFailure, Outgoing, SendResult, scrub
from stream.nudge.rules import Channel

#: Answers that mean "not taken, try later": the rest of 4xx will not change by waiting.
_RETRY = {408, 425, 429}


def payload(message: Outgoing, preset: str) -> dict[str, Any]:
    """The JSON body of a preset."""
    if preset == "slack":
        return {"text": f"*{message.subject}*\n{message.body}"}
    if preset == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": message.subject,
            "title": message.subject,
            "text": message.body,
        }
    return {
        "schema": "esn.nudge.v1",
        "event_id": message.event_id,
        "person": message.person,
        "kind": message.kind,
        "channel": message.channel,
        "template": message.template,
        "language": message.language,
        "subject": message.subject,
        "text": message.body,
        "flag": message.record,
    }


class _WebhookHandover:
    def __init__(self, channel: WebhookChannel, message: Outgoing) -> None:
        self._channel = channel
        self._message = message

    async def commit(self) -> SendResult:
        url = self._channel.config.webhook_url()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": self._message.idempotency_key,
            "User-Agent": f"esn-pulse/{__version__}",
        }
        body = jsonutil.dumps(payload(self._message, self._channel.config.preset))
        timeout = aiohttp.ClientTimeout(total=self._channel.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=body, headers=headers) as response,
            ):
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            # Not connected: nothing was sent.
            return SendResult("retry", scrub(f"webhook connect: {exc.os_error}", url))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult("uncertain", scrub(f"webhook {type(exc).__name__}: {exc}", url))
        if 200 <= status < 300:
            return SendResult("sent")
        if status in _RETRY or status >= 500:
            return SendResult("retry", f"webhook HTTP {status}")
        return SendResult("rejected", f"webhook HTTP {status}")

    async def abort(self) -> None:
        return None


class WebhookChannel:
    """One configured webhook."""

    def __init__(self, config: Channel, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s

    async def open(self, message: Outgoing) -> _WebhookHandover:
        try:
            url = self.config.webhook_url()
        except OSError as exc:
            raise ChannelFailure(f"cannot read url_file: {exc.strerror}") from None
        if not url:
            where = self.config.url_file or self.config.url_env or "url"
            raise ChannelFailure(f"no URL in {where}", permanent=True)
        return _WebhookHandover(self, message)
