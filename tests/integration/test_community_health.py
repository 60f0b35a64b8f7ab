"""Community health counted in the health index (layout 4) against the old O(members) read of
every member's last activity and profile (tests/community_oracle.py), on the real Redis: joins,
leaves, role changes, disables and re-enables, out-of-order events, redeliveries and replays."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from redis.exceptions import ResponseError

from stream import jsonutil
from stream.analytics.communities import all_communities
from stream.batch import fold_fetch
from stream.directory import MembershipV1, ProfileV1
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.keys import PartitionKeys
from tests.community_oracle import all_communities_scan

pytestmark = pytest.mark.integration

PARTITIONS = 3
DAY = 86_400_000
#: The community window and the first threshold the figures are asked at (the oracle's too).
WINDOW, THRESHOLD = 7 * DAY, 3 * DAY
NOW = int(datetime.now(UTC).timestamp() * 1000) // 1000 * 1000
T0 = datetime.fromtimestamp((NOW - 40 * DAY) / 1000, UTC)
ROLES = ("owner", "member", "follower")


@dataclass(frozen=True)
class Record:
    """An activity record as the worker's fold reads one (batch.RawRecord), without Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def partition_of(user: str) -> int:
    return int(user[1:]) % PARTITIONS


def profile(user: str, version: int, status: str) -> ProfileV1:
    return ProfileV1(
        user_id=user,
        status=status,
        created=T0.isoformat(),
        updated=(T0 + timedelta(minutes=version)).isoformat(),
    )


def membership(user: str, community: str, role: str, op: str, version: int) -> MembershipV1:
    return MembershipV1(
        kind="membership",
        user_id=user,
        community=community,
        role=role,  # type: ignore[arg-type]
        op=op,  # type: ignore[arg-type]
        updated=(T0 + timedelta(minutes=version)).isoformat(),
    )


class Activity:
    """Events folded through the worker's fold and fenced apply, offsets per partition."""

    def __init__(self, settings: Settings, store: RedisStore) -> None:
        self.topic = f"{settings.topic_prefix}activity"
        self.store = store
        self.offsets = dict.fromkeys(range(PARTITIONS), 0)
        self.sent: list[dict[tuple[str, int], list[Record]]] = []

    async def fold(self, events: list[tuple[str, int]]) -> None:
        """(user, event time) pairs, in this order, one apply for all partitions."""
        fetched: dict[tuple[str, int], list[Record]] = {}
        for user, at_ms in events:
            p = partition_of(user)
            event = {
                "id": f"e{p}-{self.offsets[p]}",
                "type": "post",
                "actor": user,
                "time": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(),
            }
            record = Record(self.topic, p, self.offsets[p], user.encode(), jsonutil.dumps(event))
            self.offsets[p] += 1
            fetched.setdefault((self.topic, p), []).append(record)
        self.sent.append(fetched)
        await self.store.apply(fold_fetch(fetched).deltas)

    async def replay(self, index: int) -> None:
        """A batch delivered again: the fence refuses it, so nothing may move."""
        await self.store.apply(fold_fetch(self.sent[index]).deltas)


async def assert_health_exact(store: RedisStore, rng: random.Random) -> None:
    """The index's figures equal the oracle's at instants that cut the windows anywhere."""
    nows = [NOW, NOW - 30 * DAY, NOW - 60 * DAY] + [
        NOW - rng.randrange(0, 45 * DAY) for _ in range(5)
    ]
    # The exact boundaries: a user last seen at s is active at s + window and not 1 ms later.
    oracle_at_now = await all_communities_scan(store, NOW, WINDOW, THRESHOLD)
    for user_last in [r.last_activity_ms for r in oracle_at_now if r.last_activity_ms][:3]:
        nows += [user_last + WINDOW, user_last + WINDOW + 1, user_last + THRESHOLD + 1]
    for now in nows:
        expected = await all_communities_scan(store, now, WINDOW, THRESHOLD)
        assert expected == await all_communities(store, now, WINDOW, THRESHOLD), now
    # Other windows (a reader of other settings): counted from scratch, then the first again.
    expected = await all_communities_scan(store, NOW, 2 * DAY, DAY)
    assert expected == await all_communities(store, NOW, 2 * DAY, DAY)
    # Left as of an instant of the first windows, which the next folds must keep up to date.
    last = NOW - rng.randrange(0, 20 * DAY)
    expected = await all_communities_scan(store, last, WINDOW, THRESHOLD)
    assert expected == await all_communities(store, last, WINDOW, THRESHOLD)


async def changes_held_to_the_oracle(settings: Settings, store: RedisStore) -> None:
    """Directory records and events in any order, compared with the member scan as they land
    (also run on a Redis Cluster: tests/cluster/test_cluster_community_health.py)."""
    rng = random.Random(15)
    directory = DirectoryStore(store)
    activity = Activity(settings, store)
    users = [f"u{n}" for n in range(45)]
    communities = [f"c{n}" for n in range(7)]
    records: list[ProfileV1 | MembershipV1] = []
    version = 0
    for user in users:
        for _ in range(rng.randrange(0, 3)):
            version += 1
            records.append(profile(user, version, rng.choice(["enabled", "disabled"])))
        for community in rng.sample(communities, rng.randrange(0, 4)):
            for role in rng.sample(ROLES, rng.randrange(1, 3)):
                for _ in range(rng.randrange(1, 3)):
                    version += 1
                    op = rng.choice(["add", "add", "remove"])
                    records.append(membership(user, community, role, op, version))
    rng.shuffle(records)

    def some_events(count: int) -> list[tuple[str, int]]:
        # Any time in the last 40 days, in no order: late events must not move last back.
        return [(rng.choice(users), NOW - rng.randrange(0, 40 * DAY)) for _ in range(count)]

    third = len(records) // 3
    await activity.fold(some_events(40))  # some users seen before any directory record
    await assert_health_exact(store, rng)
    await apply(directory, records[:third])
    await assert_health_exact(store, rng)
    await activity.fold(some_events(60))
    await apply(directory, records[third : 2 * third] + rng.sample(records, 20))
    await assert_health_exact(store, rng)
    await activity.fold(some_events(60))
    await activity.replay(1)
    await apply(directory, records[2 * third :])
    await assert_health_exact(store, rng)
    for _ in range(4):  # disables, re-enables, leaves and joins, with events between
        changes: list[ProfileV1 | MembershipV1] = []
        for user in rng.sample(users, 12):
            version += 1
            changes.append(profile(user, version, rng.choice(["enabled", "disabled"])))
            version += 1
            op = rng.choice(["add", "remove"])
            role = rng.choice(ROLES)
            changes.append(membership(user, rng.choice(communities), role, op, version))
        await apply(directory, changes + rng.sample(records, 10))  # and old ones again
        await activity.fold(some_events(30))
        await assert_health_exact(store, rng)
    figures = await all_communities(store, NOW, WINDOW, THRESHOLD)
    # Not a vacuous comparison: some people, some active, some orphaned, some not.
    assert sum(c.people for c in figures) > 20
    assert sum(c.active_members for c in figures) > 5
    assert {True, False} == {c.orphaned for c in figures}


class TestCommunityHealthIndex:
    async def test_the_index_equals_the_member_scan_through_every_change(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Directory records shuffled and redelivered, events out of order, batches replayed:
        people, active members, roles and orphaned are the member scan's at every instant."""
        await changes_held_to_the_oracle(settings, store)

    async def test_a_refused_directory_call_moves_no_entry(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A bad line found after good ones fails the call whole: no role set, no entry moved."""
        directory = DirectoryStore(store)
        await apply(directory, [membership("u0", "c0", "owner", "add", 1)])
        keys, args = directory._fold_call(0, [membership("u3", "c1", "member", "add", 2)])
        args[4] += "\n" + "0\tu3\tc1\tbad-role\tadd\t3"
        k = store.keys.partition(0)
        before = await snapshot(store, k)
        with pytest.raises(ResponseError, match=r"directory\.lua"):
            await store.client.eval(_directory_script(), len(keys), *keys, *args)
        assert before == await snapshot(store, k)
        assert not await store.client.hexists(k.community_people, "u3")
        assert not await store.client.exists(k.community_role("c1", "member"))


async def snapshot(store: RedisStore, k: PartitionKeys) -> list[object]:
    """What the partition keeps of community health."""
    return [
        await store.client.hgetall(k.community_people),
        await store.client.hgetall(k.community_counts),
        await store.client.hgetall(k.community_active),
        await store.client.zrange(k.community_active_people, 0, -1, withscores=True),
        await store.client.zrange(k.community_active_owners, 0, -1, withscores=True),
    ]


def _directory_script() -> str:
    return resources.files("stream.store").joinpath("directory.lua").read_text()


async def apply(directory: DirectoryStore, records: list[ProfileV1 | MembershipV1]) -> None:
    await directory.apply([(partition_of(r.user_id), r) for r in records])
