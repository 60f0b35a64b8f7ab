"""Analytics state on a real Redis and a real worker: the top-item sketch past its capacity,
exact daily counters for a backfill older than the retention, replays, and pseudonymisation."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream import jsonutil
from stream.analytics.content import top_items
from stream.analytics.trends import daily_counter
from stream.events import Activity
from stream.fold import MS_PER_DAY, PartitionDelta
from stream.privacy import pseudonymizer
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.api_support import ApiProcess
from tests.e2e.test_cli import esn
from tests.support import REPO, eventually, keyed, produce_raw, read_topic, wait_fully_applied

pytestmark = pytest.mark.integration


def batch(offset: int, events: list[tuple[str, int, str | None]]) -> PartitionDelta:
    delta = PartitionDelta("topic", 0, first_offset=offset, last_offset=offset + len(events) - 1)
    for actor, at, item in events:
        delta.add(Activity("e", actor, at, "view", "post", "view", item))
    return delta


class TestTopItemsSketch:
    async def test_heavy_hitters_survive_eviction_with_bounded_overcount(
        self, settings: Settings
    ) -> None:
        """Capacity 20, 400 distinct items: the heavy ones are listed, short by <= the bound."""
        store = RedisStore.from_settings(settings.model_copy(update={"top_items_capacity": 20}))
        try:
            rng = random.Random(5)
            day = int(time.time() * 1000) // MS_PER_DAY * MS_PER_DAY
            truth: Counter[str] = Counter()
            offset = 0
            for _ in range(20):
                events = []
                for _ in range(150):
                    # Zipf-like: a few items take most interactions.
                    item = f"post:{min(399, int(rng.paretovariate(0.9)) - 1)}"
                    truth[item] += 1
                    events.append(("u", day + 1000, item))
                await store.apply([batch(offset, events)])
                offset += len(events)
            got = await top_items(store, "day", day // MS_PER_DAY, 5)
            assert got["exact"] is False
            bound = got["error_bound"]
            assert 0 < bound < truth.most_common(3)[-1][1]
            listed = {row["item"]: row["interactions"] for row in got["items"]}
            for item, count in truth.most_common(3):
                assert item in listed
                assert count - bound <= listed[item] <= count
        finally:
            async for key in store.client.scan_iter(match=settings.redis_prefix + "*"):
                await store.client.delete(key)
            await store.close()


class TestDailyCounters:
    async def test_backfill_older_than_the_retention_counts_each_user_once(
        self, settings: Settings
    ) -> None:
        """Day sets of an old day live two days past the backfill, so batches do not recount."""
        store = RedisStore.from_settings(
            settings.model_copy(update={"daily_active_retention_days": 1})
        )
        try:
            old_day = int(time.time() * 1000) // MS_PER_DAY - 100
            at = old_day * MS_PER_DAY + 3600_000
            first = batch(0, [("a", at, None), ("b", at, None)])
            second = batch(2, [("b", at + 5, None), ("c", at + 9, None)])
            await store.apply([first])
            await store.apply([second])
            await store.apply([second])  # a replay: fenced
            assert [3] == await daily_counter(store, "a", range(old_day, old_day + 1))
            assert [3] == await daily_counter(store, "n", range(old_day, old_day + 1))
            ttl = await store.client.ttl(store.keys.partition(0).tier_day("a", _iso(old_day)))
            assert 86_400 < ttl <= 2 * 86_400
        finally:
            async for key in store.client.scan_iter(match=settings.redis_prefix + "*"):
                await store.client.delete(key)
            await store.close()

    async def test_a_late_first_event_moves_a_new_user_to_its_day(self, store: RedisStore) -> None:
        """New users count on the day of their first event, even when it arrives last."""
        day = int(time.time() * 1000) // MS_PER_DAY - 3
        await store.apply([batch(0, [("a", (day + 1) * MS_PER_DAY, None)])])
        await store.apply([batch(1, [("a", day * MS_PER_DAY + 5, None)])])
        assert [1, 0] == await daily_counter(store, "n", range(day, day + 2))


def _iso(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).date().isoformat()


RAW_IDS = ("alice.smith@corp.example", "bob.jones@corp.example", "carol.wu@corp.example")


class TestPseudonymisation:
    async def test_no_raw_id_reaches_redis_flags_or_metrics(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Activity and directory ids are replaced by the keyed pseudonym everywhere."""
        keyed_settings = settings.model_copy(
            update={
                "pseudonymize_key": "s3cret",
                "clock": "event",
                "sweep_interval_seconds": 0.3,
                "analytics_interval_seconds": 1.0,
                "allowed_lateness": "1m",
            }
        )
        worker = await worker_factory(keyed_settings).started()
        topics = TopicNames.from_settings(settings)
        start = datetime(2026, 3, 2, tzinfo=UTC)
        directory = [
            {"kind": "profile", "user_id": u, "status": "enabled", "created": start.isoformat(),
             "updated": start.isoformat(), "department": "sales", "display_name": u.title()}
            for u in RAW_IDS
        ] + [{"kind": "membership", "user_id": RAW_IDS[0], "community": "c1", "role": "owner",
              "op": "add", "updated": start.isoformat()}]  # fmt: skip
        await produce_raw(
            settings,
            [(d["user_id"].encode(), jsonutil.dumps(d)) for d in directory],
            topic=topics.directory,
        )
        events = [
            {"id": f"e{day}", "type": "like", "actor": RAW_IDS[day % 2],
             "time": (start + timedelta(days=day)).isoformat(), "target_user": RAW_IDS[2],
             "object": {"type": "post", "id": "p1"}, "community": "c1"}
            for day in range(60)
        ]  # fmt: skip
        await produce_raw(settings, keyed(events))
        await wait_fully_applied(store, settings, 60, worker.check_alive)
        p = pseudonymizer("s3cret")
        # No token configured: esn-pulse api answers on loopback without authentication.
        api = ApiProcess(keyed_settings, REPO / ".esn-test" / "logs").start()
        try:

            async def flagged() -> bool:
                status, body = await _get(api, f"/api/v1/users/{RAW_IDS[2]}")
                return status == 200 and "never_active" in jsonutil.loads(body)["flags"]

            await eventually(flagged, 60, "carol flagged never active", worker.check_alive)
            _, body = await _get(api, f"/api/v1/users/{RAW_IDS[2]}")
        finally:
            api.stop()
        doc = jsonutil.loads(body)
        assert doc["user_id"] == p(RAW_IDS[2]) and doc["likes"]["received"] == 60
        dump = await _dump_redis(store, settings.redis_prefix)
        assert p(RAW_IDS[0]) in dump
        for raw in (*RAW_IDS, "Alice.Smith"):
            assert raw not in dump
        records = await read_topic(settings, topics.flagged, expected=1, timeout=30)
        assert records and all(r.key.decode().startswith("p_") for r in records)
        assert not any(raw.encode() in r.value for r in records for raw in RAW_IDS)
        _, metrics = await _get(worker, "/metrics")
        assert not any(raw.encode() in metrics for raw in RAW_IDS)
        shown = esn(keyed_settings, "pseudonym", RAW_IDS[0])
        assert shown.stdout.split() == [RAW_IDS[0], p(RAW_IDS[0])]


async def _get(worker: Any, path: str) -> tuple[int, bytes]:
    import asyncio

    result: tuple[int, bytes] = await asyncio.to_thread(worker.get, path)
    return result


async def _dump_redis(store: RedisStore, prefix: str) -> str:
    """Every key and value under the prefix, as one text."""
    parts: list[str] = []
    async for key in store.client.scan_iter(match=prefix + "*", count=1000):
        kind = (await store.client.type(key)).decode()
        parts.append(key.decode())
        if kind == "string":
            value: Any = await store.client.get(key)
            parts.append(value.decode("latin-1"))
        elif kind == "hash":
            parts += [f"{k!r}{v!r}" for k, v in (await store.client.hgetall(key)).items()]
        elif kind == "set":
            parts += [repr(m) for m in await store.client.smembers(key)]
        elif kind == "zset":
            parts += [repr(m) for m in await store.client.zrange(key, 0, -1)]
        elif kind == "list":
            parts += [repr(m) for m in await store.client.lrange(key, 0, -1)]
    return "\n".join(parts)
