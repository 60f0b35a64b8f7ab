"""Redis access for the activity fold: fenced batch writes and the per-user read side."""

from __future__ import annotations

import asyncio
import enum
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from stream.events import COUNTED_TYPES
from stream.fold import PartitionDelta
from stream.redis_url import parse_redis_url
from stream.settings import Settings
from stream.store.connection import RedisClient, redis_client
from stream.store.fold_call import FoldPlan, fold_call, top_items_per_partition
from stream.store.keys import RedisKeys

#: Commands one cluster client keeps in flight at most when it cannot pipeline them (scripts,
#: multi-key reads): well below a node's pool of connections (redis-py's default is 100), past
#: which the pool raises MaxConnectionsError instead of waiting.
CLUSTER_IN_FLIGHT = 16
#: How often a process says again which partitions it writes (see register_partitions).
_REGISTER_EVERY_S = 5.0
#: How long one apply (a fetch's scripts) may take before it is given up and retried: far above
#: a fetch's script time (tens of milliseconds to seconds), so only a hung server reaches it.
_APPLY_TIMEOUT_S = 60.0
_FOLD_SCRIPT = resources.files("stream.store").joinpath("fold.lua").read_text()


class ApplyOutcome(enum.IntEnum):
    """What the fenced script did with a batch."""

    APPLIED = 1
    ALREADY_APPLIED = 0
    PARTIAL_OVERLAP = -1
    #: The fence is behind what the caller applied: Redis lost state; nothing was written.
    STATE_LOST = -2
    #: The script refused its arguments (a bug on our side); nothing was written.
    REFUSED = -3


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of one partition batch and the fence it found."""

    outcome: ApplyOutcome
    applied_before: int
    #: Why the script refused the batch (REFUSED only).
    error: str = ""


#: Error replies that mean the script itself refused or failed (not Redis being unavailable).
_SCRIPT_FAILURES = ("ESNFOLD", "user_script", "Error running script")


@dataclass(frozen=True)
class UserState:
    """What Redis knows about one user."""

    user_id: str
    first_seen_ms: int
    last_seen_ms: int
    counts: dict[str, int]


class RedisStore:
    """The fold's writes and reads over one Redis connection pool."""

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        retention_days: int,
        user_buckets: int,
        analytics_retention_days: int = 400,
        top_items_capacity: int = 1000,
        partitions: int = 12,
        fold_client: RedisClient | None = None,
    ) -> None:
        self.client = client
        #: The applies' own pool (see from_settings); the same as ``client`` unless given.
        self._fold_client = fold_client or client
        self.keys = keys
        self.retention_days = retention_days
        self.user_buckets = user_buckets
        self.analytics_retention_days = analytics_retention_days
        self.top_items_capacity = top_items_capacity
        self._plan = FoldPlan(
            user_buckets,
            retention_days,
            analytics_retention_days,
            top_items_per_partition(top_items_capacity, partitions),
        )
        self._fold = client.register_script(_FOLD_SCRIPT)
        #: partition -> when this process last registered it (see register_partitions).
        self._registered: dict[int, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        """A store on a new pool; connection errors surface on first use, not here."""
        options: dict[str, Any] = {
            "socket_connect_timeout": 2,
            "health_check_interval": 5,
            # A pooled connection dies with a Redis restart: reconnect once before failing, so
            # only a real outage reaches the caller's backoff.
            "retry": Retry(NoBackoff(), 1),
            "retry_on_error": [RedisConnectionError],
        }
        client = redis_client(settings, socket_timeout=10, **options)
        # The applies get a pool without a socket timeout: redis-py sends under one through
        # asyncio.wait_for, a task of its own that runs only once the loop is free, so a fold's
        # scripts went out after the next fetch had been decoded and folded, with Redis idle
        # meanwhile. Their whole call is bounded instead (apply).
        fold_client = None
        if not parse_redis_url(settings.redis_url).cluster:
            fold_client = redis_client(settings, socket_timeout=None, **options)
        return cls(
            client,
            RedisKeys(settings.redis_prefix),
            settings.daily_active_retention_days,
            settings.user_buckets,
            settings.analytics_retention_days,
            settings.top_items_capacity,
            settings.activity_partitions,
            fold_client,
        )

    def bucket_of(self, user_id: str) -> int:
        """The user-record bucket of a user id (stable across processes: CRC-32)."""
        return zlib.crc32(user_id.encode()) % self.user_buckets

    async def close(self) -> None:
        """Release the pools."""
        await self.client.aclose()
        if self._fold_client is not self.client:
            await self._fold_client.aclose()

    async def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(await self.client.ping())
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            return False

    async def run_id(self) -> str:
        """The Redis server's run id: it changes when the server restarts (or fails over).

        On a cluster, the run ids of all masters: any master restarting or replaced by its
        replica changes it.
        """
        if isinstance(self.client, RedisCluster):
            per_node = await self.client.info("server", target_nodes=RedisCluster.PRIMARIES)
            if "run_id" in per_node:  # a cluster of one master: its reply, not one per node
                per_node = {"": per_node}
            return ",".join(sorted(str(info.get("run_id", "")) for info in per_node.values()))
        info = await self.client.info("server")
        return str(info.get("run_id", ""))

    async def load_fences(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """Applied offset per partition; -1 where nothing was applied yet."""
        if not partitions:
            return {}
        # One GET per partition (each in its own slot), pipelined: MGET cannot cross slots.
        async with self.client.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.get(self.keys.partition(p).fence(topic))
            raw = await pipe.execute()
        return {p: int(v) if v is not None else -1 for p, v in zip(partitions, raw, strict=True)}

    async def partitions(self) -> list[int]:
        """The partitions that hold state, ascending: what an organisation-wide read merges."""
        raw = await self.client.smembers(self.keys.partitions)
        return sorted(int(text(p)) for p in raw if text(p).isdigit())

    def forget_registrations(self) -> None:
        """Redis restarted or failed over: say again which partitions hold state."""
        self._registered.clear()

    async def register_partitions(self, partitions: Iterable[int]) -> None:
        """Record that these partitions hold (or are about to hold) state.

        Said again at most every few seconds per partition rather than with every batch (a round
        trip each): a Redis that lost the set gets it back within that time.
        """
        command = self._registration(partitions)
        if command:
            await self.client.execute_command(*command)

    def _registration(self, partitions: Iterable[int]) -> list[Any]:
        """The SADD that registers those of ``partitions`` not said within the last few seconds
        (empty: none), counted as said."""
        now = time.monotonic()
        numbers = sorted(
            p for p in set(partitions) if now - self._registered.get(p, -1e9) > _REGISTER_EVERY_S
        )
        if not numbers:
            return []
        self._registered.update(dict.fromkeys(numbers, now))
        return ["SADD", self.keys.partitions, *numbers]

    async def apply(
        self, deltas: list[PartitionDelta], expected_fences: Mapping[int, int] | None = None
    ) -> list[ApplyResult]:
        """Apply each partition's delta with its fence, all in one pipelined round trip.

        ``expected_fences`` (partition -> the fence the caller believes) lets the script see a
        fence that went backwards; a partition missing from it is not checked.
        """
        if not deltas:
            return []
        expected = expected_fences or {}
        calls = []
        for delta in deltas:
            keys, args = self._script_call(delta)
            args.append(expected.get(delta.partition, ""))
            calls.append((keys, args))
        # Registered before the fold's writes, so a read never misses a partition with state. In
        # the scripts' own pipeline: a round trip of its own waited behind the script Redis was
        # running (an earlier fetch's, sent ahead), a whole script's time.
        registration = self._registration(delta.partition for delta in deltas)
        try:
            # A Redis that stops answering mid-call is a timeout the caller retries (the fences
            # make a repeat exact), as the socket timeout of the other pool would be.
            async with asyncio.timeout(_APPLY_TIMEOUT_S):
                replies = await run_scripts(
                    self._fold_client, self._fold, calls, first=registration
                )
        except BaseException:
            self._registered.clear()  # not known to have landed: said again with the next batch
            raise
        results = [_apply_result(reply) for reply in replies]
        for delta, result in zip(deltas, results, strict=True):
            if result.outcome is ApplyOutcome.STATE_LOST:
                # Redis lost state, the partitions set with it: said again at the next apply.
                self._registered.pop(delta.partition, None)
        return results

    def _script_call(self, delta: PartitionDelta) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of fold.lua for one delta (see stream/store/fold_call.py)."""
        return fold_call(delta, self.keys.partition(delta.partition), self._plan, int(time.time()))

    # --- read side -------------------------------------------------------------------------

    async def user_state(self, user_id: str) -> UserState | None:
        """First/last seen and counts per event type, or None for an unknown user."""
        return (await self.user_states([user_id])).get(user_id)

    async def user_states(self, user_ids: Sequence[str]) -> dict[str, UserState]:
        """The state of each of the users that have a record, in one round trip.

        A user's record is in the partition their events are keyed to; the reader does not assume
        the producer's partitioner, so it asks every partition (and merges, should a producer
        have keyed one user to two partitions).
        """
        if not user_ids:
            return {}
        partitions = await self.partitions()
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                bucket = self.bucket_of(user_id)
                for p in partitions:
                    pipe.hget(self.keys.partition(p).user_bucket(bucket), user_id)
            records = await pipe.execute()
        out: dict[str, UserState] = {}
        for index, user_id in enumerate(user_ids):
            found = records[index * len(partitions) : (index + 1) * len(partitions)]
            states = [decode_user_record(user_id, raw) for raw in found if raw is not None]
            if states:
                out[user_id] = merge_user_states(states)
        return out

    async def last_seen(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Last seen (event ms) of each of the users that have a record, in one round trip."""
        return {u: state.last_seen_ms for u, state in (await self.user_states(user_ids)).items()}

    async def daily_active_users(self, iso_day: str) -> set[str]:
        """The users active on a UTC day (exact, within the retention).

        Each partition keeps a bitmap of its users by index and the list of its users in index
        order: this reads both (a test oracle and small tools; it reads every user id).
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for p in await self.partitions():
                keys = self.keys.partition(p)
                pipe.get(keys.day(iso_day))
                pipe.lrange(keys.user_index, 0, -1)
            replies = await pipe.execute()
        out: set[str] = set()
        for bitmap, ids in zip(replies[::2], replies[1::2], strict=True):
            out.update(text(ids[index]) for index in bits_set(bitmap))
        return out

    async def totals(self) -> dict[tuple[str, str], int]:
        """Events per (type, object_type) since the beginning."""
        out: dict[tuple[str, str], int] = {}
        for field, count in (await self.summed_partition_hashes("totals")).items():
            event_type, _, object_type = field.partition("|")
            out[event_type, object_type] = count
        return out

    async def unknown_type_totals(self) -> dict[str, int]:
        """Events per raw type name that was counted as "other"."""
        return await self.summed_partition_hashes("unknown_types")

    async def summed_partition_hashes(self, name: str) -> dict[str, int]:
        """A per-partition counter hash (a PartitionKeys property), summed over partitions."""
        async with self.client.pipeline(transaction=False) as pipe:
            for p in await self.partitions():
                pipe.hgetall(getattr(self.keys.partition(p), name))
            replies = await pipe.execute()
        out: dict[str, int] = {}
        for raw in replies:
            for field, value in raw.items():
                out[text(field)] = out.get(text(field), 0) + int(value)
        return out

    async def all_user_states(self) -> dict[str, UserState]:
        """Every user's state (for tests and small tools: reads every bucket)."""
        found: dict[str, list[UserState]] = {}
        for p in await self.partitions():
            keys = self.keys.partition(p)
            async with self.client.pipeline(transaction=False) as pipe:
                for bucket in range(self.user_buckets):
                    pipe.hgetall(keys.user_bucket(bucket))
                for records in await pipe.execute():
                    for user, raw in records.items():
                        state = decode_user_record(text(user), raw)
                        found.setdefault(state.user_id, []).append(state)
        return {user: merge_user_states(states) for user, states in found.items()}


async def run_scripts(
    client: Any,
    script: AsyncScript,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    first: Sequence[Any] = (),
) -> list[Any]:
    """Run ``script`` once per (keys, args) call, all in flight at once; replies (errors as
    values, like a pipeline's ``raise_on_error=False``). ``first``: a command run before them
    (its error is raised, its reply dropped).

    One server: one pipeline (a round trip). A Redis Cluster refuses scripts in its pipelines,
    so each call goes on its own, concurrently, routed by its keys' slot. A call answered
    NOSCRIPT (a restarted Redis, or a replica promoted by a failover, has an empty script cache)
    ran nothing: the script is loaded (on a cluster, on every master) and the call run again.
    """
    if not calls:
        return []
    if isinstance(client, RedisCluster):
        if first:
            await client.execute_command(*first)
        return await _run_scripts_on_cluster(client, script, calls)

    # EVALSHA sent as a plain command: a script object in a pipeline first asks SCRIPT EXISTS in
    # a round trip of its own, which waits behind whatever script Redis is running (an earlier
    # fetch's, sent ahead): the whole pipeline then went out a script's time late. A call
    # answered NOSCRIPT (a restarted or failed-over Redis) ran nothing: loaded, it goes again.
    async def run_round(pending: list[int], first_round: bool) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            if first and first_round:
                pipe.execute_command(*first)
            for index in pending:
                keys, args = calls[index]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            answers = list(await pipe.execute(raise_on_error=False))
        if first and first_round:
            if isinstance(answers[0], Exception):
                raise answers[0]
            del answers[0]
        return answers

    return await _reloading_on_noscript(client, script, len(calls), run_round)


async def _reloading_on_noscript(
    client: Any,
    script: AsyncScript,
    count: int,
    run_round: Callable[[list[int], bool], Awaitable[list[Any]]],
) -> list[Any]:
    """The replies of ``count`` script calls run by ``run_round`` (the calls' indexes, whether it
    is the first round); those answered NOSCRIPT ran nothing and go again after one SCRIPT LOAD,
    at most three rounds in all."""
    replies: list[Any] = [None] * count
    pending = list(range(count))
    for attempt in range(3):
        answers = await run_round(pending, attempt == 0)
        missing = []
        for index, answer in zip(pending, answers, strict=True):
            replies[index] = answer
            if isinstance(answer, NoScriptError):
                missing.append(index)
        if not missing or attempt == 2:
            break
        await client.script_load(script.script)
        pending = missing
    return replies


async def _run_scripts_on_cluster(
    client: RedisCluster, script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """EVALSHA each call, a bounded number in flight; those answered NOSCRIPT go again after one
    SCRIPT LOAD on every master (the script object's own load-and-retry, run by many calls at
    once, loads it many times over and leaves redis-py's connections in a broken state)."""
    # A fresh cluster client given many commands at once, before it learnt the slots, sends
    # some on connections still being set up (redis-py: 'NoneType' object has no attribute
    # 'writelines', 29 of 600 calls here): learn them first (a no-op once done).
    await client.initialize()
    gate = asyncio.Semaphore(CLUSTER_IN_FLIGHT)

    async def one(keys: Sequence[Any], args: Sequence[Any]) -> Any:
        async with gate:
            return await client.evalsha(script.sha, len(keys), *keys, *args)

    async def run_round(pending: list[int], first_round: bool) -> list[Any]:
        return await asyncio.gather(
            *(one(*calls[index]) for index in pending), return_exceptions=True
        )

    return await _reloading_on_noscript(client, script, len(calls), run_round)


def merge_user_states(states: Sequence[UserState]) -> UserState:
    """One user's records from several partitions as one (a single record is returned as is)."""
    if len(states) == 1:
        return states[0]
    counts: dict[str, int] = {}
    for state in states:
        for name, count in state.counts.items():
            counts[name] = counts.get(name, 0) + count
    return UserState(
        states[0].user_id,
        min(s.first_seen_ms for s in states),
        max(s.last_seen_ms for s in states),
        counts,
    )


def _apply_result(reply: Any) -> ApplyResult:
    """One script reply; an unavailable Redis (OOM, read-only replica...) raises for a retry."""
    if isinstance(reply, ResponseError):
        message = str(reply)
        if any(marker in message for marker in _SCRIPT_FAILURES):
            return ApplyResult(ApplyOutcome.REFUSED, -1, message)
        raise reply
    if isinstance(reply, Exception):
        raise reply
    status, before = reply
    return ApplyResult(ApplyOutcome(int(status)), int(before))


def decode_user_record(user_id: str, raw: bytes) -> UserState:
    """Unpack the binary record fold.lua writes: first_ms, last_ms (u48), index (u32), the counts'
    width (u8: 2 or 4), then a count per counted type (u16 or u32), little-endian."""
    first = int.from_bytes(raw[0:6], "little")
    last = int.from_bytes(raw[6:12], "little")
    width = raw[16]
    slots = struct.unpack_from(f"<{(len(raw) - 17) // width}{'H' if width == 2 else 'I'}", raw, 17)
    counts = {COUNTED_TYPES[index]: n for index, n in enumerate(slots) if n}
    return UserState(user_id, first, last, counts)


def bits_set(bitmap: bytes | None) -> list[int]:
    """Offsets of the bits set in a Redis bitmap (bit 0 is the first byte's highest bit)."""
    if not bitmap:
        return []
    value = int.from_bytes(bitmap, "big")
    width = len(bitmap) * 8
    out = []
    while value:
        low = value & -value
        out.append(width - low.bit_length())
        value ^= low
    out.reverse()
    return out


def text(value: bytes | str) -> str:
    """Redis replies are bytes here (no decode_responses); typed as either by redis-py."""
    return value.decode() if isinstance(value, bytes) else value
