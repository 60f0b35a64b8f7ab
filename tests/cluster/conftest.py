"""Fixtures of the cluster tests (issue 14): a local Redis Cluster and a three-broker Kafka.

Every test under tests/cluster/ gets the ``cluster`` marker (CI and ``make test`` run it). The two
clusters are started once per pytest process, the first time a test asks for one, fresh (the
previous run's data wiped), and stopped at the end of the session:

- ``redis_cluster``: a :class:`~stream.local.redis_cluster.LocalRedisCluster` of 3 masters and 3
  replicas, healthy. ``.url`` is its ``redis+cluster://`` ESN_REDIS_URL; ``.kill_master(port)``
  SIGKILLs a master and returns once its replica took over (a ``Failover`` with the seconds);
  ``.start_node(port)`` brings a killed node back (it rejoins as a replica); ``.nodes()``,
  ``.masters_ports()``, ``.wait_healthy()``, ``.on_every_node(*command)`` (ACLs, CONFIG SET).
- ``kafka_cluster``: a :class:`~stream.local.kafka_cluster.LocalKafkaCluster` of 3 KRaft brokers
  (combined with controllers), topics RF 3 / min ISR 2 by default. ``.bootstrap`` is its
  ESN_KAFKA_BOOTSTRAP; ``.kill_broker(node_id)`` (ids 1-3) SIGKILLs one, ``.start_broker(node_id)``
  restarts it and waits until no partition is under-replicated; ``.wait_fully_replicated()``.
- ``cluster_stack_settings``: Settings on both clusters (the session's state dir).
- ``cluster_settings``: per test, isolated (own topics, key prefix, group, web port, as
  ``tests.support.isolated``) with the topics created by ``stream.kafka_admin.ensure_topics``.
- ``cluster_redis``: per test, an async client from ``stream.store.connection.redis_client``
  for ``cluster_settings``; the test's keys are deleted afterwards.

After each test the clusters are made whole again (a killed node restarted, replicas synced),
so a test may kill nodes and leave them dead. Ports: ESN_TEST_REDIS_CLUSTER_PORT (default 18000,
nodes 18000-18005, cluster bus at port + 10000) and ESN_TEST_KAFKA_CLUSTER_PORT (default 19300:
brokers 19300, 19302, 19304, each controller one above), moved by 100 per xdist worker like the
single stack's, so two workers never share (or kill) a cluster. Keep cluster tests in few files:
each xdist worker that gets one starts both clusters of its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream.kafka_admin import ensure_topics
from stream.local.kafka_cluster import LocalKafkaCluster
from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import Settings
from stream.store.connection import RedisClient, redis_client
from tests.conftest import TEST_STATE, _shifted
from tests.support import isolated

_HERE = Path(__file__).resolve().parent

#: First ports of the clusters, shifted per xdist worker (``_shifted`` takes host:port).
REDIS_CLUSTER_PORT = int(
    _shifted("127.0.0.1:" + os.environ.get("ESN_TEST_REDIS_CLUSTER_PORT", "18000")).rsplit(":")[-1]
)
KAFKA_CLUSTER_PORT = int(
    _shifted("127.0.0.1:" + os.environ.get("ESN_TEST_KAFKA_CLUSTER_PORT", "19300")).rsplit(":")[-1]
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is a ``cluster`` test."""
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A fresh local Redis Cluster (3 masters, 3 replicas), healthy; stopped after the session."""
    cluster = LocalRedisCluster(TEST_STATE / "redis-cluster", REDIS_CLUSTER_PORT)
    cluster.wipe()
    cluster.up(timeout=120)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def kafka_cluster(stack_settings: Settings) -> Iterator[LocalKafkaCluster]:
    """A fresh local three-broker Kafka cluster, every broker serving; stopped after the session."""
    cluster = LocalKafkaCluster(
        TEST_STATE / "kafka-cluster",
        KAFKA_CLUSTER_PORT,
        stack_settings.kafka_version,
        jars_home=TEST_STATE / "kafka",
    )
    cluster.wipe()
    cluster.up(timeout=300)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def cluster_stack_settings(
    stack_settings: Settings, redis_cluster: LocalRedisCluster, kafka_cluster: LocalKafkaCluster
) -> Settings:
    """The session's settings pointed at both clusters."""
    return stack_settings.model_copy(
        update={"kafka_bootstrap": kafka_cluster.bootstrap, "redis_url": redis_cluster.url}
    )


@pytest.fixture
def cluster_settings(cluster_stack_settings: Settings) -> Settings:
    """Settings isolated to one test on the clusters, its topics created (RF 3, min ISR 2)."""
    own = isolated(cluster_stack_settings, "c")
    asyncio.run(ensure_topics(own))
    return own


@pytest.fixture
async def cluster_redis(cluster_settings: Settings) -> AsyncIterator[RedisClient]:
    """The factory's cluster client for this test; its keys are deleted afterwards."""
    client = redis_client(cluster_settings, socket_connect_timeout=2, socket_timeout=5)
    yield client
    # One DEL per key: a multi-key DEL must stay within one slot on a cluster.
    async for key in client.scan_iter(match=cluster_settings.redis_prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(autouse=True)
def _clusters_made_whole(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test, restart what it killed, so the next test starts on whole clusters."""
    yield
    names = request.fixturenames
    if "redis_cluster" in names:
        redis: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        for port in redis.ports:
            if redis.pid(port) is None:
                redis.start_node(port)
        redis.wait_healthy(timeout=120)
    if "kafka_cluster" in names:
        kafka: LocalKafkaCluster = request.getfixturevalue("kafka_cluster")
        for node_id in kafka.node_ids:
            if kafka.pid(node_id) is None:
                kafka.start_broker(node_id)
