"""Exactly-once on a real Redis Cluster and a three-broker Kafka (issue 14), and the same figures
there as on one node.

Three ``esn-pulse worker`` processes fold a 12-partition activity topic (RF 3, min ISR 2) into a
Redis Cluster of three masters and three replicas while the input is produced at a paced rate;
mid-stream one worker, the busiest Redis master or the busiest broker is SIGKILLed. Each drill is
tests/chaos/harness.py's, judged the same way: no event lost or double-counted against the
oracle computed from the produced input, every expected flag record on esn.users.flagged.v1
exactly once, esn.seq gapless. Then one input is folded on the single-node stack and on the
clusters, and the analytics API and ``esn-pulse report`` must give the same figures on both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream.events import Activity
from stream.fold import MS_PER_DAY, PartitionDelta
from stream.local.kafka_cluster import LocalKafkaCluster
from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.store.analytics_reads import AnalyticsReads, TopItems
from tests.api_support import ApiProcess, MadeToken, make_token, query
from tests.chaos.harness import Drill, Figures
from tests.cluster.drill_support import (
    PARTITIONS,
    WORKERS,
    Fault,
    busiest_broker_sigkilled,
    busiest_master_sigkilled,
    first_difference,
    fold_and_settle,
    one_worker_sigkilled,
    without,
)
from tests.conftest import TEST_STATE
from tests.e2e.test_cli import esn
from tests.integration.test_report import embedded_data
from tests.support import isolated

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

LOGS = TEST_STATE / "logs"
#: The drills' input: ~7 500 events of 200 users over 60 days, produced at 1000 a second (a
#: stream of ~7 s, so that a fault at 40% folded strikes while records still arrive).
DRILL_WORKLOAD: dict[str, Any] = {"users": 200, "days": 60, "rate": 1000}
#: The comparison's input: 250 users over 60 days, all at once. The analytics refresh (gauges,
#: community flags) every 5 s: soon after the flags, yet not three workers' refreshes back to back.
COMPARED_WORKLOAD: dict[str, Any] = {
    "users": 250,
    "days": 60,
    "rate": None,
    "seed": 7,
    "analytics_interval_seconds": 5.0,
}


async def _drill(base: Settings, name: str, fault: Fault) -> Figures:
    drill = Drill(
        base,
        None,
        LOGS,
        name,
        workers=WORKERS,
        activity_partitions=PARTITIONS,
        **DRILL_WORKLOAD,
    )
    began = time.monotonic()
    try:
        figures = await drill.run(fault)
    finally:
        ran = time.monotonic()
        await drill.close()
    figures.notes.append(f"drill {ran - began:.0f}s + cleanup {time.monotonic() - ran:.0f}s")
    print(figures.summary())  # shown with -s or -rA: the drill's figures
    return figures


def _assert_exact(figures: Figures) -> None:
    assert figures.flags_expected > 0 and figures.events > 0, figures.summary()
    assert figures.recovery_seconds is not None, figures.summary()
    assert figures.exact, figures.summary()


class TestExactlyOnceThroughAFault:
    async def test_one_worker_of_three_sigkilled(
        self, cluster_stack_settings: Settings, redis_cluster: LocalRedisCluster
    ) -> None:
        """A worker SIGKILLed mid-stream: the other two take its partitions, nothing is lost
        or counted twice, every flag is published once."""
        _assert_exact(await _drill(cluster_stack_settings, "cluster-worker", one_worker_sigkilled))

    async def test_the_busiest_redis_master_sigkilled(
        self, cluster_stack_settings: Settings, redis_cluster: LocalRedisCluster
    ) -> None:
        """The master of most partitions' slots SIGKILLed mid-stream, its replica promoted
        (with whatever it had not yet replicated lost): the workers end exact."""
        fault = busiest_master_sigkilled(redis_cluster)
        _assert_exact(await _drill(cluster_stack_settings, "cluster-redis-master", fault))

    async def test_the_busiest_broker_sigkilled(
        self, cluster_stack_settings: Settings, kafka_cluster: LocalKafkaCluster
    ) -> None:
        """The leader of most activity partitions SIGKILLed while the input is still produced
        (acks=all, idempotent): the cluster carries on with two, the workers end exact."""
        fault = busiest_broker_sigkilled(kafka_cluster)
        _assert_exact(await _drill(cluster_stack_settings, "cluster-broker", fault))


# --- the store's reads on a cluster --------------------------------------------------------


def _delta(partition: int, events: list[tuple[str, int, str]]) -> PartitionDelta:
    delta = PartitionDelta("topic", partition, first_offset=0, last_offset=len(events) - 1)
    for actor, at_ms, item in events:
        delta.add(Activity("e", actor, at_ms, "view", "post", "view", item))
    return delta


class TestAnalyticsReadsOnACluster:
    async def test_windowed_distinct_users_and_top_items_merge_as_on_one_node(
        self, stack_settings: Settings, local_stack: LocalStack, redis_cluster: LocalRedisCluster
    ) -> None:
        """The same deltas of three partitions in one Redis and in the cluster: WAU-style
        windowed distinct users (a multi-day PFCOUNT per partition) and the top items (with
        their eviction bounds) read the same, and right. redis-py's cluster pipelines refuse
        PFCOUNT and MGET: these reads were a 500 on /trends and /content/top, and failed the
        report, on a Redis Cluster; sent all at once, a long series ran out of connections."""
        one = isolated(stack_settings, "reads")
        on_cluster = one.model_copy(update={"redis_url": redis_cluster.url})
        day = 20_000
        at = day * MS_PER_DAY + 3_600_000
        deltas = [
            _delta(0, [("ann", at, "post:1"), ("bob", at - MS_PER_DAY, "post:1")]),
            _delta(5, [("cid", at, "post:2"), ("cid", at, "post:1")]),
            _delta(11, [("dan", at - 6 * MS_PER_DAY, "post:3")]),
        ]
        read = []
        for settings in (one, on_cluster):
            store = RedisStore.from_settings(settings)
            try:
                await store.apply(deltas)
                reads = AnalyticsReads(store)
                read.append(
                    (
                        await reads.window_distinct("a", [day - 1, day], 7),
                        await reads.window_distinct("a", [day], 1),
                        await reads.top_items([day - 1, day], 10),
                        # More PFCOUNTs than a node's connection pool holds at once.
                        await reads.window_distinct("a", range(day - 199, day + 1), 7),
                    )
                )
            finally:
                async for key in store.client.scan_iter(match=settings.redis_prefix + "*"):
                    await store.client.delete(key)
                await store.close()
        expected = (
            {day - 1: 2, day: 4},
            {day: 2},
            TopItems(ranked=[("post:1", 3), ("post:2", 1)], error_bound=0),
        )
        assert expected == read[0][:3]
        # Windows holding each user's day: dan's 7, bob's 2, ann's and cid's 1 each.
        assert 11 == sum(read[0][3].values())
        assert read[0] == read[1]


# --- one node against the cluster ------------------------------------------------------


@dataclass
class Deployment:
    """One input folded on one deployment, and its analytics API."""

    drill: Drill
    figures: Figures
    api: ApiProcess
    token: MadeToken

    @property
    def settings(self) -> Settings:
        return self.drill.settings

    def get(self, path: str) -> Any:
        status, body = self.api.get(path, self.token.secret)
        assert 200 == status, (self.drill.scenario, path, body[:300])
        return json.loads(body)


@pytest.fixture(scope="module")
def both(
    local_stack: LocalStack,
    stack_settings: Settings,
    cluster_stack_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Deployment, Deployment]]:
    """The comparison's input folded by one worker on the single-node stack and by three on the
    clusters (each exact, then stopped), with an API on each."""
    tmp = tmp_path_factory.mktemp("compare")
    token = make_token("compare", "aggregate", "people")
    tokens = tmp / "tokens"
    tokens.write_text(token.entry + "\n")
    drills = [
        Drill(
            stack_settings,
            local_stack,
            LOGS,
            "one-node",
            workers=1,
            activity_partitions=PARTITIONS,
            **COMPARED_WORKLOAD,
        ),
        Drill(
            cluster_stack_settings,
            None,
            LOGS,
            "cluster",
            workers=WORKERS,
            activity_partitions=PARTITIONS,
            **COMPARED_WORKLOAD,
        ),
    ]

    async def fold() -> list[Figures]:
        out = []
        for drill in drills:
            out.append(await fold_and_settle(drill))
            await drill.store.close()  # this event loop ends here; close() makes a new one
        return out

    apis: list[ApiProcess] = []
    try:
        figures = asyncio.run(fold())
        for got in figures:
            print(got.summary())
        apis = [
            ApiProcess(
                d.settings,
                LOGS,
                api_tokens_file=str(tokens),
                api_access_log=str(tmp / f"access-{d.scenario}.jsonl"),
            ).start()
            for d in drills
        ]
        one, cluster = (
            Deployment(d, f, a, token) for d, f, a in zip(drills, figures, apis, strict=True)
        )
        yield one, cluster
    finally:
        for api in apis:
            api.stop()

        async def close() -> None:
            for drill in drills:
                drill.store = RedisStore.from_settings(drill.settings)
                await drill.close()

        asyncio.run(close())


def _api_paths(one: Deployment) -> list[str]:
    """Every figure route of the API, each series and threshold."""
    summary = one.get("/api/v1/summary")
    paths = ["/api/v1/summary", "/api/v1/communities", "/api/v1/content"]
    metrics = ("dau", "wau", "mau", "mau28", "stickiness", "new", "returning", "participating",
               "contributing", "events")  # fmt: skip
    paths += [query("/api/v1/trends", metric=m, **{"from": "2025-09-01"}) for m in metrics]
    paths += [query("/api/v1/content", **{"from": "2025-09-01"})]
    paths += [query("/api/v1/content/top", period=p) for p in ("day", "week")]
    return paths + _inactive_paths(summary)


def _inactive_paths(summary: dict[str, Any]) -> list[str]:
    """The flagged lists: each threshold's (the first threshold's first), then never active."""
    thresholds = summary["users"]["inactive"]
    paths = [query("/api/v1/inactive", threshold=t, limit="500") for t in thresholds]
    return [*paths, query("/api/v1/inactive", never_active="true", limit="500")]


class TestSameFiguresAsOneNode:
    def test_both_folds_are_exact(self, both: tuple[Deployment, Deployment]) -> None:
        """The same input, judged by the oracles on each deployment, ends exact on both."""
        for deployment in both:
            assert deployment.figures.exact, deployment.figures.summary()
        assert both[0].figures.flags_expected == both[1].figures.flags_expected > 0

    def test_the_api_answers_the_same_on_both(self, both: tuple[Deployment, Deployment]) -> None:
        """Summary (tiers, departments), trends, content, communities and the inactive lists
        are the same JSON on one node and on the clusters (the cache's age aside)."""
        one, cluster = both
        paths = _api_paths(one)
        lists = _inactive_paths(one.get("/api/v1/summary"))
        flagged, never = one.get(lists[0]), one.get(lists[-1])
        assert flagged["total"] and never["total"], "no flagged user to compare"
        users = [row["user_id"] for row in flagged["users"][:3] + never["users"][:2]]
        paths += [f"/api/v1/users/{user}" for user in users]
        for path in paths:
            left = without(one.get(path), "cached_seconds")
            right = without(cluster.get(path), "cached_seconds")
            assert left == right, f"{path}: {first_difference(left, right)}"

    def test_the_report_gives_the_same_figures_on_both(
        self, both: tuple[Deployment, Deployment], tmp_path: Path
    ) -> None:
        """``esn-pulse report --people``: the data embedded in the page is the same on both."""
        data = []
        for deployment in both:
            out = tmp_path / f"{deployment.drill.scenario}.html"
            made = esn(deployment.settings, "report", "--out", str(out), "--people")
            assert 0 == made.returncode, made.stderr
            data.append(embedded_data(out.read_text()))
        assert data[0]["summary"]["users"], data[0]
        assert data[0] == data[1], first_difference(data[0], data[1])
