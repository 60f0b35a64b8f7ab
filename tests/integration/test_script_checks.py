"""Every Redis script of the flag lifecycle and the directory checks all its input before its first
write: a call made to fail on purpose leaves every key of the deployment as it was (DUMP equal)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from redis.exceptions import ResponseError

from stream.events import Activity
from stream.flags.definitions import encode_definitions
from stream.flags.machine import definitions_from
from stream.fold import PartitionDelta
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.store.directory_store import ROLES
from stream.store.outbox_store import BehindPublished, OutboxStore
from stream.store.release_store import ReleaseStore

pytestmark = pytest.mark.integration

STATE = "1000|1000|1|5000|1|0|"


async def snapshot(store: RedisStore, prefix: str) -> dict[bytes, tuple[bytes | None, int]]:
    """DUMP and PTTL of every key under the deployment's prefix."""
    out: dict[bytes, tuple[bytes | None, int]] = {}
    async for key in store.client.scan_iter(match=prefix + "*", count=1000):
        out[key] = (await store.client.dump(key), await store.client.pttl(key))
    return out


def release_keys(release: ReleaseStore) -> list[str]:
    """Partition 0's keys of a release, with the minute hash and profile buckets release_args
    names."""
    return release.commit_keys(0, ["{p0}flagmin-key", "{p0}profiles-0", "{p0}profiles-1"])


def release_args(encoded: str, **bad: str) -> list[Any]:
    """A valid release of one user, with ``bad`` replacing arguments (by 1-based index)."""
    args: list[Any] = [
        f"u1\t{STATE}\nu2\t{STATE}",
        "u1\t9000\nu2\t9000",
        "u3",
        "5000\tu1",
        '{"kind": "inactive"}',
        "inactive:30d\t1",
        "u1\ti@9000",
        "{p0}flagmin-key\t12\t1\t4102444800",
        "0",
        encoded,
        encoded,
        "9000",
        "",  # no release-version check unless a test asks for one
        "u1:inactive:2592000000:9000",
        "{p0}profiles-0\n{p0}profiles-1",  # the profile bucket of each state's user
    ]
    for index, value in bad.items():
        args[int(index.removeprefix("a")) - 1] = value
    return args


class TestFoldScript:
    async def test_a_key_left_undeclared_writes_nothing(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A fold call without one of the keys it would write is refused whole (a Redis Cluster
        routes a script by its declared keys, so an undeclared one may live on another node)."""
        delta = PartitionDelta("topic", 0, first_offset=0, last_offset=1)
        for event_id, at in (("e1", 1_780_000_000_000), ("e2", 1_780_000_060_000)):
            delta.add(
                Activity(event_id, "u1", at, "like", "post", "like", "post:item-1", "c1", "u2")
            )
        keys, args = store._script_call(delta)
        args.append("")
        before = snapshot(store, settings.redis_prefix)
        assert len(keys) > 11 + 5, "user and received buckets, stats, day set, HLL, top items..."
        for missing in keys[11:]:
            with pytest.raises(ResponseError, match="undeclared key"):
                await store._fold(keys=[k for k in keys if k != missing], args=args)
        assert await before == await snapshot(store, settings.redis_prefix)


class TestReleaseScript:
    @pytest.mark.parametrize(
        "bad",
        [
            {"a1": f"u1\t{STATE}\nu2\tnot|a|state"},  # the last state line
            {"a2": "u1\t9000\nu2\tsoon"},  # a crossing that is not a number
            {"a6": "inactive:30d\t1\nnever_active\tone"},  # a count delta
            {"a7": "u1\ti@9000\nu2\tx@1"},  # a history code
            {"a8": "k\t1\t1\t1\nk\t1441\t1\t1"},  # a minute past the day
            {"a9": "p0"},  # the partition
            {"a11": ""},  # the definitions stored after
            {"a12": "later"},  # the released instant
            {"a13": "v2"},  # the release version
            {"a14": ""},  # an event id per record
            {"a15": "{p0}profiles-0"},  # a profile bucket per state
            {"a15": "{p0}profiles-0\n{p0}profiles-9"},  # an undeclared profile bucket
        ],
    )
    async def test_a_bad_argument_writes_nothing(
        self, settings: Settings, store: RedisStore, bad: dict[str, str]
    ) -> None:
        """Earlier valid lines are not written when a later one is bad; the error says which."""
        release = ReleaseStore(store)
        keys, encoded = release_keys(release), encode_definitions(definitions_from(settings))
        await release._commit(keys=keys, args=release_args(encoded))  # some state to keep
        before = await snapshot(store, settings.redis_prefix)
        with pytest.raises(ResponseError, match=r"release\.lua"):
            await release._commit(keys=keys, args=release_args(encoded, **bad))
        assert before == await snapshot(store, settings.redis_prefix)

    async def test_too_few_arguments_write_nothing(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A caller of an old layout (8 arguments) is refused, not half applied."""
        release = ReleaseStore(store)
        encoded = encode_definitions(definitions_from(settings))
        keys = release_keys(release)
        await release._commit(keys=keys, args=release_args(encoded))
        before = await snapshot(store, settings.redis_prefix)
        with pytest.raises(ResponseError, match="expects at least 11 keys and 15 arguments"):
            await release._commit(keys=keys, args=release_args(encoded)[:8])
        assert before == await snapshot(store, settings.redis_prefix)

    async def test_other_stored_definitions_write_nothing(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A release computed under definitions the partition is no longer under is dropped."""
        release = ReleaseStore(store)
        encoded = encode_definitions(definitions_from(settings))
        keys = release_keys(release)
        await release._commit(keys=keys, args=release_args(encoded))
        before = await snapshot(store, settings.redis_prefix)
        stale = release_args(encoded, a10="v1;t=1;g=1")
        assert -1 == await release._commit(keys=keys, args=stale)
        assert before == await snapshot(store, settings.redis_prefix)

    async def test_a_release_read_before_another_commit_writes_nothing(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """A zombie's release, read before the new owner's commit, cannot commit it again."""
        release = ReleaseStore(store)
        encoded = encode_definitions(definitions_from(settings))
        keys = release_keys(release)
        # The partition under these definitions, as after its first release.
        await release._commit(keys=keys, args=release_args(encoded, a10=""))
        read_by_both = await release.version(0)
        first = release_args(encoded, a13=read_by_both)
        assert 0 < await release._commit(keys=keys, args=first)
        before = await snapshot(store, settings.redis_prefix)
        again = release_args(encoded, a13=read_by_both)
        assert -1 == await release._commit(keys=keys, args=again)
        assert before == await snapshot(store, settings.redis_prefix)


def directory_keys(store: RedisStore) -> list[str]:
    """Partition 0's registry, then every key directory_args' lines can touch (u1-u4, c1, c2)."""
    k = store.keys.partition(0)
    keys = [k.community_registry, k.profile_bucket(0), k.profile_bucket(1)]
    keys += [k.user_bucket(0), k.user_bucket(1), k.community_people, k.community_counts]
    keys += [k.community_active_people, k.community_active_owners, k.community_active]
    keys += [k.inactivity_states, k.department_counts]
    keys += [k.memberships(f"u{n}") for n in range(1, 5)]
    return keys + [k.community_role(c, role) for c in ("c1", "c2") for role in ROLES]


def directory_args(store: RedisStore, **bad: str) -> list[str]:
    k = store.keys.partition(0)
    args = [
        k.profile_prefix,
        k.membership_prefix,
        k.community_prefix,
        "0\tu1\t2000\tenabled\t1000\tSales\tAda\n1\tu2\t2000\tenabled\t1000\t\t",
        "0\tu1\tc1\tmember\tadd\t2000\n1\tu2\tc1\towner\tadd\t2000",
        k.inactivity_states,
        k.department_counts,
        k.user_prefix,
        k.community_people,
        k.community_counts,
        k.community_active_people,
        k.community_active_owners,
        k.community_active,
    ]
    for index, value in bad.items():
        args[int(index.removeprefix("a")) - 1] = value
    return args


class TestDirectoryScript:
    @pytest.mark.parametrize(
        "bad",
        [
            {"a4": "0\tu3\t3000\tenabled\t1000\t\t\n0\tu4\t3000\tsuspended\t1000\t\t"},
            {"a4": "0\tu3\t3000\tenabled\t1000\t\t\n0\tu4\tsoon\tenabled\t1000\t\t"},
            {"a5": "0\tu3\tc2\tmember\tadd\t3000\n0\tu4\tc2\tadmin\tadd\t3000"},
            {"a5": "0\tu3\tc2\tmember\tadd\t3000\n0\tu4\tc2\tmember\tjoin\t3000"},
            {"a5": "0\tu3\tc2\tmember\tadd\t3000\n0\tu4\tc2\tmember"},
            # a key the call did not declare (another partition's user and community)
            {"a5": "0\tu3\tc2\tmember\tadd\t3000\n0\tu9\tc9\tmember\tadd\t3000"},
            # a user bucket the call did not declare (the user's profile and last event)
            {"a5": "0\tu3\tc2\tmember\tadd\t3000\n5\tu4\tc2\tmember\tadd\t3000"},
            {"a4": "0\tu3\t3000\tenabled\t1000\t\t\n7\tu4\t3000\tenabled\t1000\t\t"},
        ],
    )
    async def test_a_bad_argument_writes_nothing(
        self, settings: Settings, store: RedisStore, bad: dict[str, str]
    ) -> None:
        """A bad profile or membership line after good ones: nothing of the batch is folded."""
        directory = DirectoryStore(store)
        keys = directory_keys(store)
        await directory._fold(keys=keys, args=directory_args(store))
        before = await snapshot(store, settings.redis_prefix)
        good = directory_args(store)
        args = directory_args(store, **bad)
        # Good lines come first where the bad one is in the same argument, and the other
        # argument carries new good lines too.
        if "a4" in bad:
            args[4] = "0\tu3\tc2\tmember\tadd\t3000"
        elif "a5" in bad:
            args[3] = "0\tu3\t3000\tenabled\t1000\t\t"
        assert good != args
        with pytest.raises(ResponseError, match=r"directory\.lua"):
            await directory._fold(keys=keys, args=args)
        assert before == await snapshot(store, settings.redis_prefix)


class TestCommunityFlagsScript:
    @pytest.mark.parametrize(
        "bad",
        [
            'c1\t\ti|1\tc1:idle:1\t{"kind": "idle"}\nc2\t\ti|1\tc2:idle:1',  # no record
            'c1\t\ti|1\tc1:idle:1\t{"kind": "idle"}\nc2\t\ti|1\tc2:idle:1\tnot json',
            'c1\t\ti|1\tc1:idle:1\t{"kind": "idle"}\nc2\t\ti|1\t\t{"kind": "idle"}',  # no id
            # no community
            'c1\t\ti|1\tc1:idle:1\t{"kind": "idle"}\n\t\ti|1\tx:idle:1\t{"kind": "idle"}',
        ],
    )
    async def test_a_bad_line_writes_nothing(
        self, settings: Settings, store: RedisStore, bad: str
    ) -> None:
        """The first line would win its compare-and-set; the bad second one stops the call."""
        script = resources.files("stream.store").joinpath("community_flags.lua").read_text()
        commit = store.client.register_script(script)
        k = store.keys
        keys = [
            k.community_states,
            k.community_outbox,
            k.community_outbox_seq,
            k.community_flags_ahead,
        ]
        await commit(keys=keys, args=['c0\t\to|1\tc0:orphaned:1\t{"kind": "orphaned"}'])
        before = await snapshot(store, settings.redis_prefix)
        with pytest.raises(ResponseError, match=r"community_flags\.lua"):
            await commit(keys=keys, args=[bad])
        assert before == await snapshot(store, settings.redis_prefix)


class TestOutboxReconcileScript:
    @pytest.mark.parametrize(
        "bad",
        [
            {"tail": "x"},  # the topic's tail
            {"from_seq": "-1"},  # where the given ids start
            {"entry": '4\t{"kind": "inactive"}'},  # an outbox entry without its event id
            {"entry": "4\tnot json"},
            {"entry": "no seq"},
        ],
    )
    async def test_a_bad_argument_or_entry_writes_nothing(
        self, settings: Settings, store: RedisStore, bad: dict[str, str]
    ) -> None:
        """Entries before the bad one would be dropped or renumbered: none is, nothing changes."""
        outbox = OutboxStore.users(store)
        k = store.keys.partition(0)
        for seq, user in ((2, "a"), (3, "b")):
            await store.client.rpush(k.outbox, f'{seq}\t{{"event_id": "{user}"}}')
        if "entry" in bad:
            await store.client.rpush(k.outbox, bad["entry"])
        await store.client.sadd(k.flags_ahead, "z")
        before = await snapshot(store, settings.redis_prefix)
        with pytest.raises(ResponseError, match=r"outbox_reconcile\.lua"):
            await outbox._reconcile(
                keys=[k.outbox, k.outbox_seq, k.flags_ahead, k.published_seq],
                args=[bad.get("tail", "3"), bad.get("from_seq", "2"), "a\nb", "event_id", 60],
            )
        assert before == await snapshot(store, settings.redis_prefix)

    async def test_a_stale_tail_writes_nothing(self, settings: Settings, store: RedisStore) -> None:
        """A caller whose tail is below what was committed and trimmed is refused."""
        outbox = OutboxStore.users(store)
        await store.client.rpush(store.keys.partition(0).outbox, '6\t{"event_id": "f"}')
        await outbox.trim(0, 5)  # the owner committed up to 5
        before = await snapshot(store, settings.redis_prefix)
        assert BehindPublished(5) == await outbox.reconcile(0, 3, 3, [])
        assert before == await snapshot(store, settings.redis_prefix)
