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

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from stream.redis_url import parse_redis_url
from stream.settings import Settings
from stream.store.connection import redis_client

#: Keys asked about per round trip: SCAN's COUNT and the MEMORY USAGE pipeline's length.
_BATCH = 1000


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

    async def key_usage(
        self, prefix: str, by_master: dict[str, int] | None = None
    ) -> dict[str, int]:
        """key -> MEMORY USAGE (SAMPLES 0: every element counted) of each key under ``prefix``;
        each master's sum into ``by_master`` when given."""
        usage: dict[str, int] = {}
        for name, client in self.masters:
            before = sum(usage.values())
            async for batch in _scan_batches(client, _match(prefix)):
                async with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.memory_usage(key, samples=0)
                    sizes = await pipe.execute()
                for key, size in zip(batch, sizes, strict=True):
                    if size is not None:  # gone between SCAN and MEMORY USAGE
                        usage[key] = int(size)
            if by_master is not None:
                by_master[name] = sum(usage.values()) - before
        return usage

    async def delete(self, prefix: str) -> int:
        """DEL every key under ``prefix`` on every master; the number removed.

        DEL, not UNLINK: the memory is freed before the reply, so a used_memory read next is
        not inflated by a background free still under way.
        """
        removed = 0
        for _, client in self.masters:
            async for batch in _scan_batches(client, _match(prefix)):
                # One DEL per key: a cluster refuses a multi-key DEL across slots.
                async with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.delete(key)
                    removed += sum(int(n) for n in await pipe.execute())
        return removed

    async def close(self) -> None:
        """Release every connection."""
        for _, client in self.masters:
            await client.aclose()


@asynccontextmanager
async def redis_nodes(settings: Settings) -> AsyncIterator[RedisNodes]:
    """The masters of ``settings.redis_url``: itself, or the masters a cluster's slot map names."""
    address = parse_redis_url(settings.redis_url)
    if not address.cluster:
        client = redis_client(settings)
        assert isinstance(client, aioredis.Redis)
        name = ":".join(map(str, address.nodes[0])) if address.nodes else "unix socket"
        nodes = RedisNodes([(name, client)])
    else:
        cluster = redis_client(settings)
        assert isinstance(cluster, RedisCluster)
        try:
            await cluster.initialize()
            masters = sorted((node.host, node.port) for node in cluster.get_primaries())
        finally:
            await cluster.aclose()
        scheme = "rediss" if address.tls else "redis"
        nodes = RedisNodes(
            [
                (f"{host}:{port}", _node_client(settings, f"{scheme}://{host}:{port}/0"))
                for host, port in masters
            ]
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


def _node_client(settings: Settings, url: str) -> aioredis.Redis:
    """A client of one node, with the deployment's credentials and TLS."""
    client = redis_client(settings.model_copy(update={"redis_url": url}))
    assert isinstance(client, aioredis.Redis)
    return client


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
