"""Option types and settings readers shared by the ``esn-pulse`` commands: bad values end as
one usage line (exit 1) naming the option, bad settings as one line naming the variable (exit 1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from stream.cli_errors import BadConfig
from stream.flags.machine import Definitions, definitions_from
from stream.settings import Settings
from stream.timebounds import parse_duration_ms


class Duration(click.ParamType):
    """A duration option such as 30d, 12h, 45m or 90s, as milliseconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Milliseconds, or a usage error naming the option."""
        if isinstance(value, int):
            return value
        try:
            return parse_duration_ms(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Instant(click.ParamType):
    """A point in time: an RFC 3339 time, a date (UTC midnight), or a duration ago (2h), as ms."""

    name = "time"

    def __init__(self, now_ms: Any = None) -> None:
        self.now_ms = now_ms or (lambda: int(datetime.now(UTC).timestamp() * 1000))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Epoch milliseconds, or a usage error naming the option."""
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(self.now_ms()) - parse_duration_ms(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            self.fail(
                f"{text!r} is not a time: use an RFC 3339 time (2026-05-01T08:00:00Z), a date "
                "(2026-05-01) or a duration ago (2h, 7d)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)


def configured_definitions(settings: Settings) -> Definitions:
    """The inactivity definitions, or one line naming the setting that does not parse."""
    try:
        return definitions_from(settings)
    except ValueError as exc:
        raise BadConfig(
            f"ESN_INACTIVITY_THRESHOLDS ({settings.inactivity_thresholds!r}) or "
            f"ESN_NEVER_ACTIVE_GRACE ({settings.never_active_grace!r}) is invalid: {exc}",
            "fix the variable, for example ESN_INACTIVITY_THRESHOLDS=30d,90d",
        ) from None
