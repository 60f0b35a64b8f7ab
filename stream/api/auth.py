"""API bearer tokens: parsed from hashed entries, checked in constant time, never logged.

An entry is ``name:scope[,scope]:sha256-hex``; only the SHA-256 of a secret is configured, so a
leaked token file or environment dump does not give the secret away.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stream.settings import Settings

AGGREGATE: Final = "aggregate"
PEOPLE: Final = "people"
SCOPES: Final = (AGGREGATE, PEOPLE)
#: What each scope lets a token read (docs/operations/api.md repeats it).
SCOPE_DESCRIPTIONS: Final = {
    AGGREGATE: "figures over groups: summary, trends, content, communities, initiatives' totals",
    PEOPLE: "anything naming or pseudonymously identifying a person: users, inactive lists, "
    "per-person initiative data",
}
SECRET_PREFIX: Final = "esnp_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class TokenConfigError(ValueError):
    """A token entry does not parse; the message never contains the entry itself."""


class TokenFileUnreadable(TokenConfigError):
    """ESN_API_TOKENS_FILE cannot be read."""


@dataclass(frozen=True)
class Token:
    """A configured token: its name (logged), scopes and the SHA-256 of its secret."""

    name: str
    scopes: frozenset[str]
    digest: bytes


def digest_of(secret: str) -> bytes:
    """SHA-256 of a presented secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_entry(entry: str, where: str) -> Token:
    """One ``name:scope[,scope]:sha256-hex`` entry."""
    parts = entry.strip().split(":")
    if len(parts) != 3:
        raise TokenConfigError(f"{where}: expected name:scope[,scope]:sha256-hex")
    name, raw_scopes, hex_digest = parts
    if not _NAME.fullmatch(name):
        raise TokenConfigError(f"{where}: a name is 1-64 letters, digits, '_', '.', '-'")
    scopes = frozenset(s.strip() for s in raw_scopes.split(","))
    if not scopes <= set(SCOPES) or not scopes:
        raise TokenConfigError(f"{where}: scopes are {', '.join(SCOPES)}")
    if not _DIGEST.fullmatch(hex_digest.lower()):
        raise TokenConfigError(f"{where}: the third part is the 64-hex SHA-256 of the secret")
    return Token(name, scopes, bytes.fromhex(hex_digest))


def parse_tokens(text: str, source: str) -> list[Token]:
    """Entries separated by whitespace or newlines; ``#`` starts a comment."""
    tokens: list[Token] = []
    for number, line in enumerate(text.splitlines(), 1):
        for entry in line.split("#", 1)[0].split():
            tokens.append(parse_entry(entry, f"{source} line {number}"))
    names = [t.name for t in tokens]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TokenConfigError(f"{source}: token names used twice: {', '.join(duplicates)}")
    return tokens


def load_tokens(settings: Settings) -> list[Token]:
    """Tokens from ESN_API_TOKENS and ESN_API_TOKENS_FILE."""
    tokens = parse_tokens(settings.api_tokens.get_secret_value(), "ESN_API_TOKENS")
    if settings.api_tokens_file:
        path = Path(settings.api_tokens_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise TokenFileUnreadable(
                f"ESN_API_TOKENS_FILE {path}: cannot read ({reason})"
            ) from None
        tokens += parse_tokens(text, f"ESN_API_TOKENS_FILE {path}")
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise TokenConfigError("a token name is both in ESN_API_TOKENS and ESN_API_TOKENS_FILE")
    return tokens


def find_token(tokens: list[Token], secret: str) -> Token | None:
    """The token whose digest matches; every digest is compared, so timing tells nothing."""
    presented = digest_of(secret)
    found = None
    for token in tokens:
        if hmac.compare_digest(presented, token.digest):
            found = token
    return found


def new_secret() -> str:
    """A fresh 256-bit secret, recognisable by its prefix (secret scanners, logs)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def entry_for(name: str, scopes: list[str], secret: str) -> str:
    """The configuration line of a secret."""
    line = f"{name}:{','.join(scopes)}:{digest_of(secret).hex()}"
    parse_entry(line, "the new token")  # the name and scopes must be what a server accepts
    return line


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
