"""``esn-pulse config``: the effective settings, one a line, with where each came from.

Sources, in the order they win: the environment (``env``), the config file (``file``, see
:mod:`stream.config_file`), the default. Secrets never print: a ``SecretStr`` shows ``***``
when set, and the Redis URL's password is masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import SecretStr

from stream import jsonutil
from stream.cli_errors import redact_url
from stream.config_file import VARIABLE, chosen_path, read_config_file
from stream.settings import Settings, get_settings

ENV, FILE, DEFAULT = "env", "file", "default"


@dataclass(frozen=True)
class EffectiveSetting:
    """One setting as it applies: its variable, its printable value and its source."""

    variable: str
    value: str
    source: str


def use_config_file(path: str | None) -> None:
    """``--config FILE``: as if ESN_CONFIG_FILE named it (child processes inherit it too)."""
    if path:
        os.environ[VARIABLE] = os.path.abspath(path)
        get_settings.cache_clear()


def effective_settings(
    settings: Settings, environ: Mapping[str, str], from_file: set[str]
) -> list[EffectiveSetting]:
    """Every setting with its masked value and where it came from (``from_file``: the names the
    config file sets)."""
    in_env = {key.upper() for key in environ}
    rows = []
    for name, field in Settings.model_fields.items():
        variable = f"ESN_{name.upper()}"
        source = ENV if variable in in_env else FILE if name in from_file else DEFAULT
        rows.append(EffectiveSetting(variable, _shown(getattr(settings, name), field.repr), source))
    return rows


def _shown(value: object, in_repr: bool) -> str:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else '""'
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if not in_repr:
        text = redact_url(text)  # a URL kept out of reprs because it may carry a password
    # A value from a hostile file must not drive the terminal: control characters escaped.
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", text)
    return text or '""'


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def config(as_json: bool) -> None:
    """The effective settings and where each came from (env, file, default); secrets masked."""
    settings = get_settings()
    path: Path | None = chosen_path()
    loaded = read_config_file(Settings.model_fields, path)
    rows = effective_settings(settings, os.environ, set(loaded.values))
    if as_json:
        doc = {
            "config_file": str(path) if path else None,
            "settings": [{"name": r.variable, "value": r.value, "source": r.source} for r in rows],
        }
        click.echo(jsonutil.dumps(doc).decode())
        return
    shown = _shown(str(path), True) if path else f"none ({VARIABLE} unset, no ./esn-pulse.toml)"
    click.echo(f"# config file: {shown}")
    width = max(len(r.variable) for r in rows)
    for row in rows:
        click.echo(f"{row.variable:{width}}  {row.source:7}  {row.value}")


def register(main: click.Group) -> None:
    """Add ``config`` to the ``esn-pulse`` group."""
    main.add_command(config)
