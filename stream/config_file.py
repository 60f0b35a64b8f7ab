"""The optional config file under the ``ESN_*`` environment variables, which win over it.

``ESN_CONFIG_FILE`` (or ``esn-pulse --config``) names a ``.toml`` file or a ``.env``-style one;
without it, ``./esn-pulse.toml`` is read when present. A ``.env`` file holds ``ESN_NAME=value``
lines (other names are left to other tools); a TOML file holds ``name = value`` with the names
in lower case without the prefix. An unknown setting, a malformed line or an unreadable file is
refused with its line, never ignored: a typo must not silently leave a default in place.
"""

from __future__ import annotations

import io
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv.parser import parse_stream
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from stream.cli_errors import BadConfig

#: The variable that names the file; it can only come from the environment (or --config).
VARIABLE = "ESN_CONFIG_FILE"
#: Read from the working directory when ESN_CONFIG_FILE is not set.
DEFAULT_FILE = Path("esn-pulse.toml")
_PREFIX = "ESN_"
#: A settings file is a few KiB; anything this large is the wrong file, not read into memory.
_MAX_BYTES = 1 << 20
#: The field that holds VARIABLE itself: a file naming another file is refused.
_SELF = "config_file"


class ConfigFileError(BadConfig):
    """The config file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class ConfigFile:
    """The settings one config file sets: field name -> text value, and the line of each."""

    path: Path | None
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    #: Each name as the file spells it (ESN_WEB_PORT in a .env, web_port in TOML).
    spelled: dict[str, str] = field(default_factory=dict)


def chosen_path(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path | None:
    """The file to read: ESN_CONFIG_FILE's, else ./esn-pulse.toml when it exists, else None."""
    named = next((v for k, v in environ.items() if k.upper() == VARIABLE), "")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigFileError(
                f"{VARIABLE}={named} is not a readable file",
                f"point {VARIABLE} (or --config) at an existing .toml or .env file, or unset it",
            )
        return path
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def read_config_file(fields: dict[str, FieldInfo], path: Path | None) -> ConfigFile:
    """Parse and check ``path`` against the settings' ``fields``; an empty ConfigFile for None."""
    if path is None:
        return ConfigFile(None)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigFileError(
                f"the config file {path} is over {_MAX_BYTES >> 20} MiB",
                f"point {VARIABLE} at the settings file (NAME=value lines or TOML)",
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigFileError(
            f"cannot read the config file {path}: {reason}", "check the path and its permissions"
        ) from None
    pairs = _toml_pairs(path, text) if path.suffix == ".toml" else _dotenv_pairs(path, text)
    config = ConfigFile(path)
    for name, spelled, value, line in pairs:
        if name == _SELF or name not in fields:
            what = "cannot name another config file" if name == _SELF else "is not a setting"
            if path.suffix == ".toml" and spelled.upper().startswith(_PREFIX):
                what += f" (TOML names have no prefix: {spelled[len(_PREFIX) :].lower()})"
            raise ConfigFileError(
                f"{path}:{line}: {spelled!r} {what}",
                "fix or remove that line (docs/reference/settings.md lists the settings)",
            )
        config.values[name] = value
        config.lines[name] = line
        config.spelled[name] = spelled
    return config


def _dotenv_pairs(path: Path, text: str) -> list[tuple[str, str, str, int]]:
    pairs = []
    for binding in parse_stream(io.StringIO(text)):
        # A binding's text starts with the blank lines before it: its own line is further on.
        original = binding.original
        line = original.line + len(original.string) - len(original.string.lstrip("\n"))
        if binding.error:
            raise ConfigFileError(
                f"{path}:{line}: not a NAME=value line",
                "write ESN_NAME=value, quote a value with spaces, or comment the line with #",
            )
        if binding.key is None:
            continue  # a comment or a blank line
        if not binding.key.upper().startswith(_PREFIX):
            continue  # another tool's variable: one .env may serve compose and esn-pulse
        name = binding.key[len(_PREFIX) :].lower()
        pairs.append((name, binding.key, binding.value or "", line))
    return pairs


def _toml_pairs(path: Path, text: str) -> list[tuple[str, str, str, int]]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(
            f"{path}: not valid TOML ({exc})", "fix the file (name = value, strings quoted)"
        ) from None
    pairs = []
    for name, value in document.items():
        line = _toml_line(text, name)
        if isinstance(value, bool):
            # As an environment variable would spell it, so both sources parse alike.
            pairs.append((name, name, "true" if value else "false", line))
        elif isinstance(value, str | int | float):
            pairs.append((name, name, str(value), line))
        else:
            raise ConfigFileError(
                f"{path}:{line}: {name!r} is a {type(value).__name__}, not a single value",
                'settings are flat: write name = "value" (a list as one "a,b" string)',
            )
    return pairs


def _toml_line(text: str, name: str) -> int:
    """The line a top-level key starts on (1 when it cannot be told, e.g. a quoted key)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.split("=", 1)[0].strip().strip("\"'") == name:
            return number
    return 1


class ConfigFileSource(PydanticBaseSettingsSource):
    """The pydantic-settings source of the config file (placed after the environment's)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.loaded = read_config_file(settings_cls.model_fields, chosen_path())

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The file's text for one field (pydantic parses it like an environment variable)."""
        return self.loaded.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.loaded.values)


def explain(
    exc: ValidationError,
    settings_cls: type[BaseSettings],
    environ: os._Environ[str] | dict[str, str] = os.environ,
) -> Exception:
    """A settings error that comes from the config file as a ConfigFileError naming its line;
    any other is returned as it is (the CLI reports it as the environment variable's)."""
    first = exc.errors()[0]
    name = next((str(part) for part in first.get("loc", ()) if isinstance(part, str)), "")
    if not name or any(k.upper() == _PREFIX + name.upper() for k in environ):
        return exc
    try:
        path = chosen_path(environ)
    except ConfigFileError:
        return exc
    if path is None:
        return exc
    config = read_config_file(settings_cls.model_fields, path)
    if name not in config.lines:
        return exc
    reason = first.get("msg", "invalid")
    return ConfigFileError(
        f"{path}:{config.lines[name]}: invalid {config.spelled[name]}: {reason}",
        "fix that line (docs/reference/settings.md gives each setting's form)",
    )
