"""``esn-pulse nudge --preview``: what each matching channel would send for one flag record."""

from __future__ import annotations

from typing import Any

from stream import jsonutil
from stream.nudge import intake
from stream.nudge.channels import Outgoing, masked
from stream.nudge.channels.webhook import payload
from stream.nudge.rules import Rules
from stream.nudge.templates import Renderer


def preview(
    record: dict[str, Any], rules: Rules, person: dict[str, Any] | None, now_ms: int
) -> str:
    """The messages as text: per channel its template, recipient (masked) and content."""
    plan = intake.plan(record, rules, now_ms)
    entries = [d["entry"] for d in plan["deliveries"]] + plan["audit"]
    if not entries:
        return f"no rule nudges a {record.get('kind')!r} flag: nothing would be sent\n"
    renderer = Renderer(rules)
    out = []
    for entry in entries:
        channel = rules.channels[entry["channel"]]
        message = renderer.render(entry["template"], record, person, now_ms)
        head = f"--- channel {entry['channel']} ({channel.type}"
        head += f", {channel.preset})" if channel.type == "webhook" else ")"
        out.append(f"{head}, template {message.template}")
        if entry.get("outcome") == "stale":
            out.append("(the flag is older than max_age: it would be suppressed as stale)")
        if channel.type == "email":
            out.append(f"To: {masked((person or {}).get('email'))}")
            out += [f"Subject: {message.subject}", "", message.body]
        else:
            outgoing = Outgoing(
                entry["id"],
                entry["event_id"],
                entry["person"],
                entry["kind"],
                entry["channel"],
                message.template,
                message.language,
                message.subject,
                message.body,
                None,
                record,
            )
            body = jsonutil.dumps_pretty(payload(outgoing, channel.preset)).decode()
            out += [f"Idempotency-Key: {outgoing.idempotency_key}", body]
    return "\n".join(out)
