"""Redis access for the activity fold: fenced batch writes and the per-user read side."""

from __future__ import annotations

import asyncio
import enum
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
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
from stream.fold import MS_PER_DAY, PartitionDelta
from stream.settings import Settings
from stream.store.connection import RedisClient, redis_client
from stream.store.keys import RedisKeys

#: 1-based slot of each counted type in a packed user record.
_SLOT = {name: index + 1 for index, name in enumerate(COUNTED_TYPES)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: A backfill writes days older than their retention; their keys live this long after the last
#: write so that the exact daily counters (built on the sets' SADD replies) stay exact meanwhile.
_BACKFILL_GRACE_S = 2 * 86_400
#: Commands one cluster client keeps in flight at most when it cannot pipeline them (scripts,
#: multi-key reads): well below a node's pool of connections (redis-py's default is 100), past
#: which the pool raises MaxConnectionsError instead of waiting.
CLUSTER_IN_FLIGHT = 16
#: How often a process says again which partitions it writes (see register_partitions).
_REGISTER_EVERY_S = 5.0
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
    ) -> None:
        self.client = client
        self.keys = keys
        self.retention_days = retention_days
        self.user_buckets = user_buckets
        self.analytics_retention_days = analytics_retention_days
        self.top_items_capacity = top_items_capacity
        self._fold = client.register_script(_FOLD_SCRIPT)
        #: partition -> when this process last registered it (see register_partitions).
        self._registered: dict[int, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        """A store on a new pool; connection errors surface on first use, not here."""
        client = redis_client(
            settings,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=5,
            # A pooled connection dies with a Redis restart: reconnect once before failing, so
            # only a real outage reaches the caller's backoff.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        return cls(
            client,
            RedisKeys(settings.redis_prefix),
            settings.daily_active_retention_days,
            settings.user_buckets,
            settings.analytics_retention_days,
            settings.top_items_capacity,
        )

    def bucket_of(self, user_id: str) -> int:
        """The user-record bucket of a user id (stable across processes: CRC-32)."""
        return zlib.crc32(user_id.encode()) % self.user_buckets

    async def close(self) -> None:
        """Release the pool."""
        await self.client.aclose()

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
        now = time.monotonic()
        numbers = sorted(
            p for p in set(partitions) if now - self._registered.get(p, -1e9) > _REGISTER_EVERY_S
        )
        if numbers:
            await self.client.sadd(self.keys.partitions, *numbers)
            self._registered.update(dict.fromkeys(numbers, now))

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
        # Registered before the fold's writes, so a read never misses a partition with state.
        await self.register_partitions(delta.partition for delta in deltas)
        replies = await run_scripts(self.client, self._fold, calls)
        results = [_apply_result(reply) for reply in replies]
        for delta, result in zip(deltas, results, strict=True):
            if result.outcome is ApplyOutcome.STATE_LOST:
                # Redis lost state, the partitions set with it: said again at the next apply.
                self._registered.pop(delta.partition, None)
        return results

    def _script_call(self, delta: PartitionDelta) -> tuple[list[str], list[Any]]:
        """Flatten a delta into the KEYS and ARGV layout documented in fold.lua.

        Every key the script will touch is declared (they all share the partition's hash slot).
        """
        k = self.keys.partition(delta.partition)
        buckets = self.user_buckets
        keys = [
            k.fence(delta.topic),
            k.totals,
            k.unknown_types,
            k.reorder_buffer,
            k.watermark_source,
            k.community_last,
            k.community_events,
        ]
        # A dict keeps the declared keys unique and in a stable order.
        touched: dict[str, None] = {}
        user_lines = []
        for user_id, user in delta.users.items():
            bucket = zlib.crc32(user_id.encode()) % buckets
            touched[k.user_bucket(bucket)] = None
            user_lines.append(
                f"{bucket}\t{user_id}\t{user.first_ms}\t{user.last_ms}\t"
                + ",".join(f"{_SLOT[t]}={c}" for t, c in user.counts.items())
            )
        if user_lines:
            touched[k.stats("n")] = None
        floor = int(time.time()) + _BACKFILL_GRACE_S
        # Active members carry the minute of their first event ("user@minute"): the day's
        # progression is what the active-users-drop alert compares with a week earlier.
        tiers: list[tuple[str, str, Iterable[str]]] = [
            ("a", day, (f"{user}@{minute}" for user, minute in members.items()))
            for day, members in delta.day_actives.items()
        ]
        tiers += [(tier, day, members) for (tier, day), members in delta.day_tiers.items()]
        tier_lines = []
        for tier, day, members in tiers:
            number = day_number(day)
            # Only the active tier has window trends (wau, mau): the others need no HyperLogLog.
            hll = k.tier_hll(tier, number) if tier == "a" else ""
            touched[k.tier_day(tier, day)] = None
            touched[k.stats(tier)] = None
            if hll:
                touched[hll] = None
                touched[k.day_progression(number)] = None
            tier_lines.append(
                f"{tier}\t{number}\t{k.tier_day(tier, day)}\t"
                f"{max(floor, _expire_at(number, self.retention_days))}\t"
                f"{hll}\t{self._analytics_expire_at(number, floor)}\t" + "\t".join(members)
            )
        by_day: dict[int, list[str]] = {}
        for (day, mix), count in delta.day_content.items():
            by_day.setdefault(day_number(day), []).append(f"{mix}={count}")
        content_lines = []
        for number, fields in by_day.items():
            touched[k.content(number)] = None
            content_lines.append(
                f"{k.content(number)}\t{self._analytics_expire_at(number, floor)}\t"
                + "\t".join(fields)
            )
        periods: dict[tuple[str, int], list[str]] = {}
        for (day, item), count in delta.day_objects.items():
            periods.setdefault(("d", day_number(day)), []).append(f"{count}\t{item}")
        # Weeks are the union of their days' sketches, taken when asked (half the writes).
        top_lines = []
        for (period, number), items in periods.items():
            touched[k.top_items(period, number)] = None
            touched[k.top_items_evicted(period, number)] = None
            top_lines.append(
                f"{k.top_items(period, number)}\t{self._analytics_expire_at(number, floor)}\t"
                + "\t".join(items)
            )
        received_lines = []
        for receiver, (likes, mentions) in delta.received.items():
            bucket = zlib.crc32(receiver.encode()) % buckets
            touched[k.received(bucket)] = None
            received_lines.append(f"{bucket}\t{receiver}\t{likes}\t{mentions}")
        communities = "\n".join(
            f"{community}\t{last_ms}\t{events}"
            for community, (last_ms, events) in delta.communities.items()
        )
        last_lines = []
        for tier, last in delta.tier_last.items():
            if last:
                touched[k.tier_last(tier)] = None
                last_lines.append(
                    f"{k.tier_last(tier)}\t"
                    + "\t".join(f"{at}\t{user}" for user, at in last.items())
                )
        buffered = "\n".join(f"{at}\t{user}" for at, user in delta.activity_times)
        args: list[Any] = [
            k.user_prefix,
            k.stats_prefix,
            delta.first_offset,
            delta.last_offset,
            "\n".join(user_lines),
            "\n".join(tier_lines),
            buffered,
            "" if delta.max_event_ms is None else delta.max_event_ms,
            "\n".join(content_lines),
            "\n".join(top_lines),
            self.top_items_capacity,
            "\n".join(received_lines),
            k.received_prefix,
            communities,
            "\n".join(last_lines),
        ]
        args.append("\n".join(f"{t}|{o}\t{c}" for (t, o), c in delta.totals.items()))
        args.append("\n".join(f"{name}\t{c}" for name, c in delta.unknown_types.items()))
        return keys + list(touched), args

    def _analytics_expire_at(self, number: int, floor: int) -> int:
        return max(floor, _expire_at(number, self.analytics_retention_days))

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
        """The users active on a UTC day (exact, within the retention)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for p in await self.partitions():
                pipe.smembers(self.keys.partition(p).day(iso_day))
            replies = await pipe.execute()
        return {text(m) for members in replies for m in members}

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
    client: Any, script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """Run ``script`` once per (keys, args) call, all in flight at once; replies (errors as
    values, like a pipeline's ``raise_on_error=False``).

    One server: one pipeline (a round trip). A Redis Cluster refuses scripts in its pipelines,
    so each call goes on its own, concurrently, routed by its keys' slot; a call answered
    NOSCRIPT (a replica promoted by a failover has an empty script cache) is loaded on every
    master and run again by the script object itself.
    """
    if not calls:
        return []
    if isinstance(client, RedisCluster):
        return await _run_scripts_on_cluster(client, script, calls)
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        return list(await pipe.execute(raise_on_error=False))


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

    replies: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(3):
        answers = await asyncio.gather(
            *(one(*calls[index]) for index in pending), return_exceptions=True
        )
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


@lru_cache(maxsize=4096)
def day_number(iso_day: str) -> int:
    """Days since the epoch of an ISO date."""
    return date.fromisoformat(iso_day).toordinal() - _EPOCH_ORDINAL


def _expire_at(number: int, retention_days: int) -> int:
    """Epoch seconds when data of a day expires: the end of that day plus the retention."""
    return (number + 1 + retention_days) * (MS_PER_DAY // 1000)


def decode_user_record(user_id: str, raw: bytes | str) -> UserState:
    """Unpack "first,last,count..." (decimal, empty for zero) as written by fold.lua."""
    parts = text(raw).split(",")
    first, last = int(parts[0]), int(parts[1])
    counts = {COUNTED_TYPES[index]: int(part) for index, part in enumerate(parts[2:]) if part}
    return UserState(user_id, first, last, counts)


def text(value: bytes | str) -> str:
    """Redis replies are bytes here (no decode_responses); typed as either by redis-py."""
    return value.decode() if isinstance(value, bytes) else value
