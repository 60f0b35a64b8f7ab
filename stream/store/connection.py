"""How a Redis client connects: the URL plus ACL user, password and TLS files from the settings.

Every Redis client of ESN Pulse (the store's pool, the stack's probe) is built by
:func:`redis_client`, so credentials and TLS are configured once, the URL is the only place a
host is named, and a ``redis+cluster://`` URL gives every one of them a cluster client.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from stream.redis_url import parse_redis_url
from stream.settings import Settings

#: What :func:`redis_client` returns: one server's client or a cluster's (same commands; a
#: cluster client routes each by its key's slot, so a script's keys must share one slot).
RedisClient: TypeAlias = aioredis.Redis | RedisCluster


def connection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for either client of ``settings.redis_url``: auth and TLS.

    An ESN_REDIS_USERNAME or ESN_REDIS_PASSWORD given on its own wins over the URL's, so the URL
    can stay free of secrets. TLS (rediss://, rediss+cluster://) verifies the server's
    certificate and host name, against ESN_REDIS_TLS_CAFILE when set, else the system's CAs.
    """
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    password = settings.redis_password.get_secret_value()
    if password:
        options["password"] = password
    if parse_redis_url(settings.redis_url).tls:
        options["ssl_cert_reqs"] = "required"
        if settings.redis_tls_cafile:
            options["ssl_ca_certs"] = settings.redis_tls_cafile
        if settings.redis_tls_certfile:
            options["ssl_certfile"] = settings.redis_tls_certfile
            options["ssl_keyfile"] = settings.redis_tls_keyfile or None
    return options


def redis_client(settings: Settings, **overrides: Any) -> RedisClient:
    """A client of ESN_REDIS_URL with its auth and TLS, and ``overrides`` (timeouts, retry).

    ``redis://`` ``rediss://`` ``unix://``: a :class:`redis.asyncio.Redis`. ``redis+cluster://``
    ``rediss+cluster://``: a :class:`~redis.asyncio.cluster.RedisCluster` that learns the
    cluster's nodes from the seeds and follows MOVED/ASK and failovers by itself. Nothing
    connects here: errors surface on first use. ValueError for a malformed URL (settings
    already refuse one, so only a hand-made Settings can get here with it).
    """
    address = parse_redis_url(settings.redis_url)
    options = {**connection_options(settings), **overrides}
    if not address.cluster:
        return aioredis.Redis.from_url(settings.redis_url, **options)
    # The URL's own credentials, unless the settings (or the caller) gave them.
    if address.username and "username" not in options:
        options["username"] = address.username
    if address.password and "password" not in options:
        options["password"] = address.password
    if address.tls:
        options["ssl"] = True
    seeds = [ClusterNode(host, port) for host, port in address.nodes]
    return _Cluster(startup_nodes=seeds, **options)


class _Cluster(RedisCluster):
    """A RedisCluster whose failure to learn the cluster raises what one server's client would.

    redis-py wraps "no seed answers" (and a refused password) in a RedisClusterException;
    callers back off on a ConnectionError and name refused credentials by their own class, so
    the cause is raised instead, and a slot map with holes (mid-failover) is a ConnectionError.
    """

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:
            cause = exc.__cause__
            # "Cluster mode is not enabled" is also what a refused CLUSTER SLOTS becomes: the
            # reply it replaced (a NOPERM, say) is the news.
            if isinstance(cause, RedisClusterException) and isinstance(
                cause.__context__, RedisError
            ):
                cause = cause.__context__
            if isinstance(cause, (RedisError, RedisClusterException)):
                raise cause from exc
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc
