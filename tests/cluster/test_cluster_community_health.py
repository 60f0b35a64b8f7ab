"""Community health on a Redis Cluster: each partition's counts, sorted sets and people hash
share the partition's hash slot, so the fold's, the directory's and the read's scripts run on
the master holding it, with the same figures as the member scan."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import Settings
from stream.store import RedisStore
from tests.integration.test_community_health import PARTITIONS, changes_held_to_the_oracle
from tests.support import isolated


@pytest.fixture
async def cluster_store(
    stack_settings: Settings, redis_cluster: LocalRedisCluster
) -> AsyncIterator[tuple[Settings, RedisStore]]:
    """A store on the cluster under a prefix of its own (no Kafka needed: folds are applied
    in process); its keys are deleted afterwards, one DEL a key."""
    settings = isolated(stack_settings.model_copy(update={"redis_url": redis_cluster.url}), "ch")
    store = RedisStore.from_settings(settings)
    yield settings, store
    async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
        await store.client.delete(key)
    await store.close()


class TestCommunityHealthOnACluster:
    async def test_the_counts_equal_the_member_scan(
        self, cluster_store: tuple[Settings, RedisStore]
    ) -> None:
        """Partitions spread over the masters: every change as on one Redis."""
        settings, store = cluster_store
        await changes_held_to_the_oracle(settings, store)
        slots = {
            store.client.keyslot(store.keys.partition(p).community_active)
            for p in range(PARTITIONS)
        }
        assert PARTITIONS == len(slots)
