"""Redis reads and the atomic commit of an inactivity release (release.lua), for one partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from stream.store.redis_store import RedisStore, run_scripts, text

_RELEASE_SCRIPT = resources.files("stream.store").joinpath("release.lua").read_text()


@dataclass(frozen=True)
class FlagMinute:
    """Users flagged (kind) at one minute of event time, counted for the spike alert."""

    kind: str
    day_number: int
    minute: int
    count: int
    expire_at: int


@dataclass(frozen=True)
class ReleaseCommit:
    """Everything one release (or migration) commits; see release.lua for the checks."""

    #: The definitions the caller read the states under ('' when none stored) and after.
    definitions_read: str
    definitions_after: str
    #: The instant released up to ('' for a migration: it keeps the stored one).
    released_to: str
    #: The release version the caller read before it read the states ('' skips the check).
    version: str
    states: Mapping[str, str] = field(default_factory=dict)
    due: Mapping[str, int] = field(default_factory=dict)
    not_due: Sequence[str] = ()
    released_members: Sequence[str] = ()
    #: Flag records (JSON text) and their event ids, in the same order.
    records: Sequence[str] = ()
    event_ids: Sequence[str] = ()
    #: "field\tdelta" lines of the gauges' counts, "user\tkind@ms" lines of the flag history.
    count_deltas: Sequence[str] = ()
    history: Sequence[str] = ()
    minutes: Sequence[FlagMinute] = ()


class ReleaseStore:
    """What a release reads of a partition, and its one-call commit."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client = store.client
        self._commit = store.client.register_script(_RELEASE_SCRIPT)

    async def buffered(self, partition: int, up_to_ms: int, limit: int) -> list[str]:
        """Reorder-buffer members at or before ``up_to_ms``, oldest first, at most ``limit``."""
        raw: list[Any] = await self.client.zrangebyscore(
            self.store.keys.partition(partition).reorder_buffer, "-inf", up_to_ms, 0, limit
        )
        return [text(m) for m in raw]

    async def due(self, partition: int, up_to_ms: int) -> dict[str, int]:
        """Users whose next crossing is at or before ``up_to_ms``, with it."""
        raw: list[Any] = await self.client.zrangebyscore(
            self.store.keys.partition(partition).due, "-inf", up_to_ms, withscores=True
        )
        return {text(user): int(score) for user, score in raw}

    async def states(self, partition: int, users: Sequence[str]) -> dict[str, str]:
        """The encoded inactivity states of those users that have one."""
        if not users:
            return {}
        stored = await self.client.hmget(
            self.store.keys.partition(partition).inactivity_states, list(users)
        )
        return {u: text(raw) for u, raw in zip(users, stored, strict=True) if raw}

    async def version(self, partition: int) -> str:
        """The partition's release version, read before its states (the commit's check)."""
        raw = await self.client.get(self.store.keys.partition(partition).release_version)
        return text(raw) if raw is not None else "0"

    def commit_keys(self, partition: int, named_keys: Sequence[str] = ()) -> list[str]:
        """KEYS of release.lua, in its order: the partition's eleven, then the keys its
        arguments name (minute hashes, profile buckets)."""
        k = self.store.keys.partition(partition)
        return [
            k.inactivity_states,
            k.due,
            k.reorder_buffer,
            k.outbox,
            k.outbox_seq,
            k.inactivity_counts,
            k.flag_history,
            k.inactivity_definitions,
            k.release_version,
            k.flags_ahead,
            k.department_counts,
            *dict.fromkeys(named_keys),
        ]

    async def commit(self, partition: int, commit: ReleaseCommit) -> int:
        """Commit atomically: the last outbox number, or -1 (nothing written) on a lost race."""
        k = self.store.keys.partition(partition)
        minute_keys = {m: k.flag_minutes(m.kind, m.day_number) for m in commit.minutes}
        # Each state's profile bucket: release.lua moves the department counts by the profile.
        buckets = [k.profile_bucket(self.store.bucket_of(user)) for user in commit.states]
        keys = self.commit_keys(partition, [*minute_keys.values(), *buckets])
        args = [
            "\n".join(f"{u}\t{s}" for u, s in commit.states.items()),
            "\n".join(f"{u}\t{at}" for u, at in commit.due.items()),
            "\n".join(commit.not_due),
            "\n".join(commit.released_members),
            "\n".join(commit.records),
            "\n".join(commit.count_deltas),
            "\n".join(commit.history),
            "\n".join(
                f"{key}\t{m.minute}\t{m.count}\t{m.expire_at}" for m, key in minute_keys.items()
            ),
            str(partition),
            commit.definitions_read,
            commit.definitions_after,
            commit.released_to,
            commit.version,
            "\n".join(commit.event_ids),
            "\n".join(buckets),
        ]
        (reply,) = await run_scripts(self.client, self._commit, [(keys, args)])
        if isinstance(reply, Exception):
            raise reply
        return int(reply)
