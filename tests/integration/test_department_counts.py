"""The department counts the directory and release scripts keep, against a scan of every profile
and state: moves between departments, disables, flags, replays and the first build."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from stream.analytics.departments import department_figures, department_figures_scan
from stream.directory import ProfileV1
from stream.flags.machine import UserInactivity
from stream.flags.state_codec import encode_state
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.department_counts import DepartmentCounts
from stream.store.release_store import ReleaseCommit, ReleaseStore
from tests.department_oracle import assert_department_counts_exact

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
PARTITIONS = 3


def profile(user: str, version: int, department: str | None, status: str = "enabled") -> ProfileV1:
    return ProfileV1(
        user_id=user,
        status=status,
        created=T0.isoformat(),
        updated=(T0 + timedelta(minutes=version)).isoformat(),
        department=department,
    )


def state(last_ms: int | None, flagged: int = 0, never: bool = False, at_risk: bool = False) -> str:
    at_risk_ms = 9000 if at_risk else None
    return encode_state(
        UserInactivity(1000, 1000, True, last_ms, flagged, never, at_risk_ms=at_risk_ms)
    )


def partition_of(user: str) -> int:
    return int(user[1:]) % PARTITIONS


async def release(store: RedisStore, partition: int, states: dict[str, str]) -> None:
    """Commit these states through release.lua (the definitions 'd' once the first is done)."""
    releases = ReleaseStore(store)
    stored = await store.client.hget(
        store.keys.partition(partition).inactivity_definitions, str(partition)
    )
    under = "d" if stored is not None else ""
    assert 0 <= await releases.commit(partition, ReleaseCommit(under, "d", "", "", states=states))


async def fold(store: RedisStore, profiles: list[ProfileV1]) -> None:
    await DirectoryStore(store).apply([(partition_of(p.user_id), p) for p in profiles])


class TestDepartmentCounts:
    async def test_every_change_keeps_the_counts_equal_to_the_scan(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Profiles, states, department moves, disables and replays, in any order: as the scan."""
        rng = random.Random(15)
        users = [f"u{n}" for n in range(60)]
        departments = ["Sales", "R&D", None, "HR"]
        versions = [
            profile(u, v, rng.choice(departments), rng.choice(["enabled", "enabled", "disabled"]))
            for u in users
            for v in range(3)
        ]
        rng.shuffle(versions)
        await fold(store, versions[:90])  # some profiles before any state
        await assert_department_counts_exact(store, settings)
        kinds = [state(None), state(5000), state(5000, 1), state(5000, 2), state(None, 0, True)]
        for p in range(PARTITIONS):
            mine = [u for u in users if partition_of(u) == p]
            await release(store, p, {u: rng.choice(kinds) for u in mine})
        await assert_department_counts_exact(store, settings)
        await fold(store, versions[90:] + rng.sample(versions, 40))  # the rest, and redeliveries
        await assert_department_counts_exact(store, settings)
        for _ in range(3):  # states change again, some to what they were (a replayed release)
            for p in range(PARTITIONS):
                mine = [u for u in users if partition_of(u) == p]
                await release(store, p, {u: rng.choice(kinds) for u in rng.sample(mine, 10)})
            await fold(store, [profile(u, 10 + _, rng.choice(departments)) for u in users[:20]])
            await assert_department_counts_exact(store, settings)
        everyone = settings.model_copy(update={"min_group_size": 1})
        figures = await department_figures(store, everyone)
        assert {"Sales", "R&D", "HR", "unassigned"} == set(figures)
        for name in ("enabled", "active", "inactive", "never_active"):
            assert sum(row[name] for row in figures.values()) > 0, name

    async def test_counts_written_before_they_existed_are_built_by_the_first_read(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A partition's counts hash gone (state from before the counts): the read counts it."""
        await fold(store, [profile(f"u{n}", 1, f"D{n % 4}") for n in range(40)])
        for p in range(PARTITIONS):
            mine = {
                f"u{n}": state(5000, (n // 4) % 2, at_risk=(n // 4) % 2 == 0 and n % 3 == 0)
                for n in range(40)
                if partition_of(f"u{n}") == p
            }
            await release(store, p, mine)
        everyone = settings.model_copy(update={"min_group_size": 1})
        expected = await department_figures_scan(store, everyone)
        for p in range(PARTITIONS):
            await store.client.delete(store.keys.partition(p).department_counts)
        # Half-maintained counts (a delta landed before the first build) are replaced whole.
        await store.client.hincrby(store.keys.partition(0).department_counts, "D0\tenabled", 7)
        assert expected == await department_figures(store, everyone)
        # At risk is a warning before any threshold: those two are active too.
        expected_d1 = {"enabled": 10, "active": 5, "inactive": 5, "never_active": 0, "at_risk": 2}
        assert expected_d1 == expected["D1"]
        await fold(store, [profile("u1", 2, "D2")])  # maintained from there on
        await assert_department_counts_exact(store, settings)

    async def test_a_read_costs_one_call_per_partition(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Once built, a read is one script call (one HGETALL) per partition, whatever the
        population: no profile or state is read."""
        await fold(store, [profile(f"u{n}", 1, "Sales") for n in range(30)])
        counts = DepartmentCounts(store)
        await counts.read()  # builds

        async def calls() -> dict[str, int]:
            stats = await store.client.info("commandstats")
            return {name: int(row["calls"]) for name, row in stats.items()}

        before = await calls()
        assert 30 == (await counts.read())["Sales"]["enabled"]
        after = await calls()
        made = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}
        made.pop("cmdstat_info", None)
        made.pop("cmdstat_script|exists", None)  # redis-py's check before a pipelined script
        expected = {"cmdstat_smembers": 1, "cmdstat_evalsha": PARTITIONS}
        assert expected | {"cmdstat_hgetall": PARTITIONS} == made
