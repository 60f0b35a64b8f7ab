"""ESN_REDIS_URL's forms, checked without connecting: one Redis server or a Redis Cluster's seeds.

``redis://`` ``rediss://`` ``unix://`` name one server (redis-py reads them); ``redis+cluster://``
and ``rediss+cluster://`` name seed nodes of a Redis Cluster, ``host:port`` separated by commas,
from which the client learns every node. Errors never repeat the URL: it may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: Scheme -> TLS, for each accepted form.
_SINGLE = {"redis": False, "rediss": True, "unix": False}
_CLUSTER = {"redis+cluster": False, "rediss+cluster": True}
_FORMS = (
    "redis://host:port/db, rediss://host:port/db, unix:///path/to/socket or "
    "redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS)"
)
_DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """Where ESN_REDIS_URL points: its scheme, its nodes and the credentials it carries."""

    scheme: str
    #: (host, port) of the server, or of each cluster seed; empty for a unix socket.
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    @property
    def cluster(self) -> bool:
        """True for a Redis Cluster (the client follows its slot map)."""
        return self.scheme in _CLUSTER

    @property
    def tls(self) -> bool:
        """True when the connections speak TLS."""
        return {**_SINGLE, **_CLUSTER}[self.scheme]


def parse_redis_url(url: str) -> RedisAddress:
    """The address of ``url``; ValueError saying what is wrong (never echoing the URL)."""
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator:
        raise ValueError(f"not a Redis URL; use {_FORMS}")
    if scheme in _CLUSTER:
        return _parse_cluster(scheme, rest)
    if scheme not in _SINGLE:
        # The scheme alone is safe to repeat (up to a length): it holds no credentials.
        raise ValueError(f"unknown scheme {scheme[:20]!r}; use {_FORMS}")
    parts = urlsplit(url.strip())
    if scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
        return RedisAddress(scheme, (), parts.username, parts.password)
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        raise ValueError("the port of ESN_REDIS_URL is not a number from 1 to 65535") from None
    _check_db(parts.path, cluster=False)
    host = parts.hostname or "127.0.0.1"
    return RedisAddress(
        scheme, ((host, port),), _unquoted(parts.username), _unquoted(parts.password)
    )


def _parse_cluster(scheme: str, rest: str) -> RedisAddress:
    location, _, path = rest.partition("/")
    if "?" in location or "#" in location or "?" in path or "#" in path:
        raise ValueError(
            "a cluster URL takes no ?options: credentials and TLS files go in the "
            "ESN_REDIS_USERNAME, ESN_REDIS_PASSWORD and ESN_REDIS_TLS_* settings"
        )
    _check_db("/" + path if path else "", cluster=True)
    userinfo, at, hosts = location.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) if colon else None
    nodes = tuple(_host_port(entry) for entry in hosts.split(","))
    return RedisAddress(scheme, nodes, username, password)


def _host_port(entry: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` of one cluster seed."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, tail = entry[1:].partition("]")
        port_text = tail[1:] if bracket and tail.startswith(":") else ""
    else:
        host, _, port_text = entry.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        shown = entry[:60] if entry else "an empty entry"
        raise ValueError(
            f"cluster seed {shown!r} is not host:port (port 1-65535); list seeds as "
            "redis+cluster://host:port,host:port"
        )
    return host, int(port_text)


def _check_db(path: str, *, cluster: bool) -> None:
    db = path.strip("/")
    if not db:
        return
    if not db.isdigit():
        raise ValueError("the database of ESN_REDIS_URL (its /path) must be a number, e.g. /0")
    if cluster and int(db) != 0:
        raise ValueError("a Redis Cluster has only database 0: drop the /db or use /0")


def _unquoted(text: str | None) -> str | None:
    return unquote(text) if text is not None else None
