"""Server-side Redis figures for the benches, per master: one Redis, or every master of a cluster.

Memory is what the servers say (INFO memory's used_memory, MEMORY USAGE ... SAMPLES 0 over every
key a SCAN of the deployment's prefix finds on each master), never an estimate made in Python.
Replicas hold copies of their masters' keys: they are left out, so a cluster's figure is the sum
over its masters. The bench reads servers directly (not through stream/store/) because these are
per-node operations the store has no business offering the worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from stream.settings import Settings
from stream.store.connection import connection_options

#: Keys asked about per round trip: SCAN's COUNT and the MEMORY USAGE pipeline's length.
_BATCH = 1000


def is_cluster_url(url: str) -> bool:
    """True for redis+cluster:// and rediss+cluster:// (seed nodes of a Redis Cluster)."""
    return urlsplit(url).scheme in ("redis+cluster", "rediss+cluster")


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """(host, port) of each seed node of a ``redis+cluster://h:p[,h:p...]`` URL."""
    netloc = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    seeds = []
    for node in netloc.split(","):
        host, _, port = node.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster seed {node!r} is not host:port")
        seeds.append((host.strip("[]"), int(port)))
    return seeds


def cluster_url(nodes: list[tuple[str, int]], tls: bool = False) -> str:
    """The ``redis+cluster://`` URL naming ``nodes`` as seeds."""
    scheme = "rediss+cluster" if tls else "redis+cluster"
    return f"{scheme}://" + ",".join(f"{host}:{port}" for host, port in nodes)


def parse_cluster_masters(cluster_nodes: str) -> list[tuple[str, int]]:
    """(host, port) of every master CLUSTER NODES lists that is not failing, sorted."""
    masters = []
    for line in cluster_nodes.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        flags = set(fields[2].split(","))
        if "master" not in flags or flags & {"fail", "fail?", "handshake", "noaddr"}:
            continue
        # ip:port@cport[,hostname]
        address = fields[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            masters.append((host, int(port)))
    return sorted(masters)


class RedisNodes:
    """One client per master of the deployment's Redis."""

    def __init__(self, masters: list[tuple[str, aioredis.Redis]]) -> None:
        #: (host:port, client) of each master.
        self.masters = masters

    @property
    def names(self) -> list[str]:
        """host:port of each master."""
        return [name for name, _ in self.masters]

    async def used_memory(self) -> int:
        """INFO memory's used_memory summed over the masters."""
        total = 0
        for _, client in self.masters:
            info = await client.info("memory")
            total += int(info["used_memory"])
        return total

    async def key_usage(self, prefix: str) -> dict[str, int]:
        """key -> MEMORY USAGE (SAMPLES 0: every element counted) of each key under ``prefix``."""
        usage: dict[str, int] = {}
        for _, client in self.masters:
            async for batch in _scan_batches(client, _match(prefix)):
                async with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.memory_usage(key, samples=0)
                    sizes = await pipe.execute()
                for key, size in zip(batch, sizes, strict=True):
                    if size is not None:  # gone between SCAN and MEMORY USAGE
                        usage[key] = int(size)
        return usage

    async def delete(self, prefix: str) -> int:
        """UNLINK every key under ``prefix`` on every master; the number removed."""
        removed = 0
        for _, client in self.masters:
            async for batch in _scan_batches(client, _match(prefix)):
                # One UNLINK per key: a cluster refuses a multi-key UNLINK across slots.
                async with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.unlink(key)
                    removed += sum(int(n) for n in await pipe.execute())
        return removed

    async def close(self) -> None:
        """Release every connection."""
        for _, client in self.masters:
            await client.aclose()


@asynccontextmanager
async def redis_nodes(settings: Settings) -> AsyncIterator[RedisNodes]:
    """The masters of ``settings.redis_url``: itself, or a cluster's masters found from a seed."""
    options = connection_options(settings)
    if not is_cluster_url(settings.redis_url):
        client = aioredis.Redis.from_url(settings.redis_url, **options)
        nodes = RedisNodes([(_name(settings.redis_host_port), client)])
    else:
        tls = settings.redis_url.startswith("rediss")
        masters: list[tuple[str, int]] = []
        for host, port in cluster_seeds(settings.redis_url):
            seed = _node_client(host, port, tls, options)
            try:
                # Two words: under its one-word name redis-py would parse the reply into a dict.
                reply = await cast(Any, seed).execute_command("CLUSTER", "NODES")
                masters = parse_cluster_masters(_text(reply))
            except (aioredis.ConnectionError, OSError):
                continue
            finally:
                await seed.aclose()
            break
        if not masters:
            raise ConnectionError(f"no seed of {cluster_seeds(settings.redis_url)} answered")
        nodes = RedisNodes(
            [(_name(address), _node_client(*address, tls, options)) for address in masters]
        )
    try:
        yield nodes
    finally:
        await nodes.close()


async def _scan_batches(client: aioredis.Redis, match: str) -> AsyncIterator[list[str]]:
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match=match, count=_BATCH)
        if keys:
            yield [_text(k) for k in keys]
        if cursor == 0:
            return


def _match(prefix: str) -> str:
    """A SCAN pattern for every key starting with ``prefix`` (glob characters escaped).

    A hash tag after the prefix (``esn:{p3}:...``) is still under it: ``esn:*`` matches it.
    """
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return escaped + "*"


def _node_client(host: str, port: int, tls: bool, options: dict[str, Any]) -> aioredis.Redis:
    return aioredis.Redis(host=host, port=port, ssl=tls, **options)


def _name(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
