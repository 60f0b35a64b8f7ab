"""Nudge deliveries against the real Redis and a real webhook receiver, in process: retries with
backoff then a dead letter, two deliverers racing for one send, fences, refused script calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from stream.nudge import intake
from stream.nudge.app import channels_of
from stream.nudge.delivery import Deliverer
from stream.nudge.effect import DAY_MS, effect
from stream.nudge.metrics import NudgeMetrics
from stream.nudge.rules import load_rules
from stream.nudge.settings import NudgeSettings
from stream.nudge.suppression import OptOuts
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore
from tests.nudge_servers import WebhookInbox

pytestmark = pytest.mark.integration

NOW = 1_780_000_000_000


@pytest.fixture
def hooks() -> Iterator[WebhookInbox]:
    with WebhookInbox() as inbox:
        yield inbox


def flag(person: str) -> dict[str, Any]:
    return {
        "schema": "esn.users.flagged.v1",
        "kind": "never_active",
        "user_id": person,
        "at": "2026-05-28T20:26:40.000+00:00",
        "last_seen": None,
        "communities": {},
        "event_id": f"{person}:never_active::1",
    }


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def deliverer(
    tmp_path: Path,
    store: RedisStore,
    hooks: WebhookInbox,
    clock: Clock,
    metrics: NudgeMetrics,
    head: str = "",
) -> Deliverer:
    path = tmp_path / "rules.toml"
    path.write_text(
        head + f'hold = "0s"\n[retry]\nattempts = 3\nbackoff = "1m"\n'
        f'[channels.hr]\ntype = "webhook"\nurl = "{hooks.url}"\n'
        f'[[rules]]\nkind = "never_active"\nchannels = ["hr"]\n'
    )
    rules = load_rules(path)
    channels = channels_of(rules, NudgeSettings())
    return Deliverer(rules, NudgeStore(store), channels, metrics, OptOuts("", None), clock, 60_000)


class TestDelivery:
    async def test_failures_back_off_then_dead_letter(
        self, store: RedisStore, hooks: WebhookInbox, tmp_path: Path
    ) -> None:
        """503 three times: retried after 1 and 2 minutes, then dead-lettered with the reason."""
        clock, metrics = Clock(), NudgeMetrics()
        d = deliverer(tmp_path, store, hooks, clock, metrics)
        plan = intake.plan(flag("p_r"), d.rules, clock())
        assert (True, []) == await d.store.intake(0, 0, clock(), plan)
        hooks.fail_next = 10
        dues = []
        for _ in range(3):
            assert 1 == await d.run_due()
            entry = await d.store.delivery("p_r:never_active::1|hr")
            assert entry is not None
            dues.append(entry["due"] - clock.now)
            clock.now = entry["due"]
        assert [60_000, 120_000] == dues[:2]
        assert "dead_lettered" == entry["state"]
        audit = await d.store.audit(0)
        assert ["failed", "failed", "dead_lettered"] == [e["outcome"] for e in audit]
        assert "3 attempts failed, last: webhook HTTP 503" == audit[-1]["reason"]
        assert 0 == await d.run_due()

    async def test_two_deliverers_send_once(
        self, store: RedisStore, hooks: WebhookInbox, tmp_path: Path
    ) -> None:
        """Two processes (a zombie after a rebalance) on the same due deliveries: the claim in
        Redis lets one of them send each."""
        clock = Clock()
        a = deliverer(tmp_path, store, hooks, clock, NudgeMetrics())
        b = deliverer(tmp_path, store, hooks, clock, NudgeMetrics())
        for n in range(20):
            plan = intake.plan(flag(f"p_{n}"), a.rules, clock())
            await a.store.intake(n % 3, n, clock(), plan)
        await asyncio.gather(a.run_due(), b.run_due(), a.run_due(), b.run_due())
        people = [body["person"] for _, body in hooks.requests]
        assert sorted(f"p_{n}" for n in range(20)) == sorted(people)

    async def test_the_fence_skips_a_record_taken_before(
        self, store: RedisStore, hooks: WebhookInbox, tmp_path: Path
    ) -> None:
        """A record at or below the partition's fence changes nothing (a replay after a crash)."""
        clock = Clock()
        d = deliverer(tmp_path, store, hooks, clock, NudgeMetrics())
        plan = intake.plan(flag("p_f"), d.rules, clock())
        assert (True, []) == await d.store.intake(4, 7, clock(), plan)
        other = intake.plan(flag("p_g"), d.rules, clock())
        assert (False, []) == await d.store.intake(4, 7, clock(), other)
        assert {4: 7} == await d.store.fences()
        assert ["p_f"] == [e["person"] for e in await d.store.deliveries()]

    async def test_a_refused_call_writes_nothing(self, store: RedisStore, tmp_path: Path) -> None:
        """The scripts check every argument before they write."""
        nudges = NudgeStore(store)
        bad_plan = {
            "person": "p_x",
            "deliveries": [{"id": "x", "due": 1, "entry": {}}],
            "audit": [],
        }
        with pytest.raises(ResponseError, match="ESNNUDGE"):
            await nudges.intake(0, 1, NOW, bad_plan)
        entry = {"id": "x", "channel": "hr", "person": "p_x"}
        with pytest.raises(ResponseError, match="ESNNUDGE"):
            await nudges.settle(entry, NOW, "Not An Outcome", "", "pending")
        assert [] == [k async for k in store.client.scan_iter(match=store.keys.prefix + "*")]

    async def test_quiet_hours_defer_then_send(
        self, store: RedisStore, hooks: WebhookInbox, tmp_path: Path
    ) -> None:
        """Inside quiet hours the delivery waits for their end, then goes out."""
        clock = Clock()  # 2026-05-28T20:26:40Z
        d = deliverer(
            tmp_path, store, hooks, clock, NudgeMetrics(), 'quiet_hours = "20:00-08:00"\n'
        )
        await d.store.intake(0, 0, clock(), intake.plan(flag("p_q"), d.rules, clock()))
        assert 1 == await d.run_due()
        entry = await d.store.delivery("p_q:never_active::1|hr")
        assert entry is not None and "pending" == entry["state"]
        assert ms("2026-05-29T08:00:00+00:00") == entry["due"]
        assert [] == hooks.requests
        clock.now = entry["due"]
        assert 1 == await d.run_due()
        assert ["p_q"] == [body["person"] for _, body in hooks.requests]
        assert ["deferred", "sent"] == [e["outcome"] for e in await d.store.audit(0)]

    async def test_a_reactivation_after_the_nudge_counts_in_the_effect(
        self, store: RedisStore, hooks: WebhookInbox, tmp_path: Path
    ) -> None:
        """Sent, then the person acts again 3 days later: active again within 7 days."""
        clock = Clock()
        d = deliverer(tmp_path, store, hooks, clock, NudgeMetrics())
        await d.store.intake(0, 0, clock(), intake.plan(flag("p_e"), d.rules, clock()))
        await d.run_due()
        back = {**flag("p_e"), "kind": "reactivated", "event_id": "p_e:reactivated::2"}
        back["at"] = "2026-05-31T20:26:40.000+00:00"
        await d.store.intake(0, 1, clock(), intake.plan(back, d.rules, clock()))
        (entry,) = await d.store.effect_entries()
        assert ("nudged", clock.now, ms(back["at"])) == (
            entry["group"],
            entry["decided"],
            entry["reactivated"],
        )
        figure = effect([entry], clock.now + 8 * DAY_MS)
        assert (1, 1) == (
            figure["windows"]["7d"]["nudged"]["flags"],
            figure["windows"]["7d"]["nudged"]["active_again"],
        )


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
