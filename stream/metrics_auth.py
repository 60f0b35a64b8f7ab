"""Optional HTTP basic auth in front of the worker's /metrics (ESN_METRICS_USERNAME/PASSWORD).

/health and /ready stay open: kubelet and Docker probes send no credentials, and neither page
says anything about a person. /metrics names no person either, but its figures (head counts,
flag rates, community sizes) are the company's own, so a scraper may be asked to authenticate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Final

from stream.settings import Settings

#: The challenge of a 401, so that a browser or curl knows to send basic credentials.
CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="esn-pulse metrics", charset="UTF-8"'}

CredentialsCheck = Callable[[str | None], bool]


def _digest(value: bytes) -> bytes:
    # Compared as fixed-length digests: compare_digest on the raw values would leak their length.
    return hashlib.sha256(value).digest()


def basic_auth_check(settings: Settings) -> CredentialsCheck | None:
    """A check of an ``Authorization`` header value, or None when /metrics is left open."""
    username = settings.metrics_username
    password = settings.metrics_password.get_secret_value()
    if not username:
        return None
    expected = _digest(f"{username}:{password}".encode())

    def check(header: str | None) -> bool:
        if not header:
            return False
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            presented = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(_digest(presented), expected)

    return check
