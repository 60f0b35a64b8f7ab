"""The rules file (TOML): which flag kinds are nudged through which channels, with which
template, and the consent knobs (window, quiet hours, caps, opt-out list, links)."""

from __future__ import annotations

import os
import tomllib
from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream.timebounds import parse_duration_ms

#: Kinds that end a person's flags: they cancel pending nudges and are never nudged themselves.
ENDING_KINDS = frozenset({"reactivated", "withdrawn"})


class RulesError(ValueError):
    """The rules file cannot be used: which file, which field, what is wrong."""


def duration_ms(text: str) -> int:
    """'30d' -> ms; '0' or '0s' is allowed here (no hold, no window)."""
    return 0 if text.strip() in ("0", "0s", "0m") else parse_duration_ms(text)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Model):
    """One way out: e-mail to the person, or a webhook (a manager's channel, an HR system)."""

    type: Literal["email", "webhook"]
    preset: Literal["generic", "slack", "teams"] = "generic"
    #: The webhook URL, or the environment variable that holds it (a Slack URL is a secret).
    url: str = ""
    url_env: str = ""
    url_file: str = ""
    daily_cap: int = Field(0, ge=0)
    #: The receiver deduplicates on the Idempotency-Key header: a send cut off by a crash may
    #: be sent again (at least once, deduplicated). Otherwise such a send is not repeated.
    idempotent: bool = False

    def webhook_url(self) -> str:
        """The URL, read from ``url_file`` or ``url_env`` when given."""
        if self.url_file:
            with open(self.url_file, encoding="utf-8") as secret:
                return secret.readline().strip()
        return os.environ.get(self.url_env, "") if self.url_env else self.url


class Rule(_Model):
    """Nudge a kind of flag (an inactive one at one threshold only, if given)."""

    kind: str = Field(min_length=1)
    threshold: str | None = None
    channels: list[str] = Field(min_length=1)
    template: str = ""

    @field_validator("kind")
    @classmethod
    def _not_an_ending(cls, value: str) -> str:
        if value in ENDING_KINDS:
            raise ValueError(f"{value!r} ends a flag: it cancels nudges, it is never nudged")
        return value


class Retry(_Model):
    """How a failed delivery is tried again before it is dead-lettered."""

    attempts: int = Field(5, ge=1, le=50)
    backoff: str = "1m"
    max_backoff: str = "1h"


class Rules(_Model):
    """The whole rules file."""

    window: str = "14d"
    hold: str = "15m"
    max_age: str = "2d"
    timezone: str = "UTC"
    quiet_hours: str = ""
    default_language: str = "en"
    templates: str = ""
    opt_out_file: str = ""
    links: dict[str, str] = {}
    retry: Retry = Retry()
    channels: dict[str, Channel]
    rules: list[Rule] = Field(min_length=1)

    @field_validator("window", "hold", "max_age")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        duration_ms(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _a_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not a time zone: {value!r} (use e.g. Europe/Berlin)") from None
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if value:
            quiet_span(value)
        return value

    def rules_for(self, kind: str, threshold: str | None) -> list[Rule]:
        """The rules a flag of ``kind`` (at ``threshold``) matches."""
        return [
            r
            for r in self.rules
            if r.kind == kind and (r.threshold is None or r.threshold == threshold)
        ]

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def quiet_span(text: str) -> tuple[time, time]:
    """'20:00-08:00' -> (20:00, 08:00); the span may cross midnight."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"quiet_hours must be HH:MM-HH:MM, not {text!r}") from None
    return start, end


def load_rules(path: Path) -> Rules:
    """Read and check a rules file; RulesError names the file and the first problem."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"the rules file {path} is not TOML: {exc}") from None
    try:
        rules = Rules.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise RulesError(f"the rules file {path}: {where}: {first['msg']}") from None
    for rule in rules.rules:
        unknown = [c for c in rule.channels if c not in rules.channels]
        if unknown:
            raise RulesError(
                f"the rules file {path}: rule {rule.kind!r} names no channel {unknown}"
            )
    for name, channel in rules.channels.items():
        if channel.type == "webhook" and not (channel.url or channel.url_env or channel.url_file):
            raise RulesError(
                f"the rules file {path}: channel {name!r} needs url, url_env or url_file"
            )
    base = path.parent
    updates: dict[str, str] = {}
    if rules.templates and not Path(rules.templates).is_absolute():
        updates["templates"] = str(base / rules.templates)
    if rules.opt_out_file and not Path(rules.opt_out_file).is_absolute():
        updates["opt_out_file"] = str(base / rules.opt_out_file)
    return rules.model_copy(update=updates)
