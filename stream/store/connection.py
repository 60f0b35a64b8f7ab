"""How a Redis client connects: the URL plus ACL user, password and TLS files from the settings.

Every Redis client of ESN Pulse (the store's pool, the stack's probe) takes its options from here,
so credentials and TLS are configured once and the URL is the only place a host is named.
"""

from __future__ import annotations

from typing import Any

from stream.settings import Settings


def connection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url(settings.redis_url, ...)``: auth and TLS.

    An ESN_REDIS_USERNAME or ESN_REDIS_PASSWORD given on its own wins over the URL's, so the URL
    can stay free of secrets. TLS (rediss://) verifies the server's certificate and host name,
    against ESN_REDIS_TLS_CAFILE when set, else the system's CAs.
    """
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    password = settings.redis_password.get_secret_value()
    if password:
        options["password"] = password
    if settings.redis_url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required"
        if settings.redis_tls_cafile:
            options["ssl_ca_certs"] = settings.redis_tls_cafile
        if settings.redis_tls_certfile:
            options["ssl_certfile"] = settings.redis_tls_certfile
            options["ssl_keyfile"] = settings.redis_tls_keyfile or None
    return options
