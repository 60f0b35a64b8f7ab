"""Nudge messages rendered from Jinja2 templates per kind and language: ``<name>.<lang>.txt``,
a ``Subject:`` line, a blank line, the body. The rules' folder wins over the built-in ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from stream.nudge.rules import Rules

_BUILT_IN = resources.files("stream.nudge").joinpath("templates")
#: What a person without a display name is called.
_NO_NAME = "colleague"


class TemplateProblem(ValueError):
    """A template is missing or fails to render (which template, what failed)."""


@dataclass(frozen=True)
class Message:
    """A rendered nudge: which template file it came from, its subject and its body."""

    template: str
    language: str
    subject: str
    body: str


def _source(folder: str, name: str) -> str | None:
    if folder:
        path = Path(folder) / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    built_in = _BUILT_IN.joinpath(name)
    return built_in.read_text(encoding="utf-8") if built_in.is_file() else None


def template_names(template: str, language: str, default_language: str) -> list[str]:
    """The files tried, in order: the template in the person's language, in the default one,
    then the default template in each."""
    names = []
    for base in (template, "default"):
        for lang in dict.fromkeys((language, default_language, "en")):
            names.append(f"{base}.{lang}.txt")
    return names


def context(
    record: dict[str, Any], person: dict[str, Any] | None, rules: Rules, now_ms: int
) -> dict[str, Any]:
    """What a template sees: name, communities and roles, last activity, links, the flag."""
    communities = record.get("communities") or {}
    roles = [
        f"{community} ({role})"
        for role in ("owner", "member", "follower")
        for community in communities.get(role, [])
    ]
    last_seen = record.get("last_seen")
    days_silent = None
    if last_seen:
        seen = datetime.fromisoformat(last_seen)
        days_silent = max(0, (now_ms - int(seen.timestamp() * 1000)) // 86_400_000)
        last_seen = seen.astimezone(UTC).date().isoformat()
    return {
        "name": (person or {}).get("name") or _NO_NAME,
        "kind": record.get("kind"),
        "threshold": record.get("threshold"),
        "department": record.get("department"),
        "communities": communities,
        "roles": roles,
        "last_seen": last_seen,
        "days_silent": days_silent,
        "links": rules.links,
        "flag": record,
    }


class Renderer:
    """Renders the rules' templates in a sandbox (a template cannot reach Python objects)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )

    def render(
        self, template: str, record: dict[str, Any], person: dict[str, Any] | None, now_ms: int
    ) -> Message:
        """The message for a flag record and the person's address-book entry."""
        language = str((person or {}).get("language") or self.rules.default_language)
        for name in template_names(template, language, self.rules.default_language):
            source = _source(self.rules.templates, name)
            if source is not None:
                break
        else:
            raise TemplateProblem(f"no template {template!r} for language {language!r}")
        try:
            text = self._env.from_string(source).render(context(record, person, self.rules, now_ms))
        except TemplateError as exc:
            raise TemplateProblem(f"template {name}: {exc}") from None
        head, _, body = text.partition("\n\n")
        if not head.startswith("Subject:"):
            raise TemplateProblem(f"template {name} must start with a 'Subject:' line")
        subject = " ".join(head.removeprefix("Subject:").split())
        lang = name.split(".")[-2]
        return Message(name, lang, subject, body.strip() + "\n")
