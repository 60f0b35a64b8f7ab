"""Redis writes and reads of the user directory: profiles and community memberships."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from stream.directory import MembershipV1, ProfileV1, updated_ms
from stream.events import epoch_ms
from stream.flags.machine import buffer_member_for_profile
from stream.store.keys import PartitionKeys
from stream.store.redis_store import RedisStore, run_scripts, text

_DIRECTORY_SCRIPT = resources.files("stream.store").joinpath("directory.lua").read_text()
_ENRICH_SCRIPT = resources.files("stream.store").joinpath("enrich.lua").read_text()
#: Users per enrichment call: bounds how long one call holds Redis (a few ms per thousand).
_ENRICH_CHUNK = 2000
ROLES = ("owner", "member", "follower")


@dataclass(frozen=True)
class Profile:
    """The winning profile record of a user."""

    user_id: str
    status: str
    created_ms: int
    updated_ms: int
    department: str | None
    display_name: str | None


#: A directory record and the partition it was read from (its user's partition).
PartitionRecord = tuple[int, ProfileV1 | MembershipV1]
#: A user's profile and their memberships as stored ("community\trole" -> "updated\top").
_Stored = tuple["Profile | None", dict[str, str]]


class DirectoryStore:
    """Profiles and memberships, sharing the activity store's client, keys and buckets.

    Each partition keeps the directory of its own users (the directory topic is keyed by user
    id like the activity); reads that do not know a user's partition ask every partition.
    """

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.keys = store.keys
        self._fold = store.client.register_script(_DIRECTORY_SCRIPT)
        self._enrich = store.client.register_script(_ENRICH_SCRIPT)

    async def apply(self, records: Sequence[PartitionRecord]) -> tuple[int, int]:
        """Fold a batch (latest update wins); returns (profiles changed, memberships changed)."""
        by_partition: dict[int, list[ProfileV1 | MembershipV1]] = {}
        for partition, record in records:
            by_partition.setdefault(partition, []).append(record)
        calls = [self._fold_call(p, batch) for p, batch in sorted(by_partition.items())]
        await self.store.register_partitions(by_partition)
        profiles = memberships = 0
        for reply in await run_scripts(self.store.client, self._fold, calls):
            if isinstance(reply, Exception):
                raise reply
            profiles += int(reply[0])
            memberships += int(reply[1])
        return profiles, memberships

    def _fold_call(
        self, partition: int, records: Sequence[ProfileV1 | MembershipV1]
    ) -> tuple[list[str], list[str]]:
        """The KEYS and ARGV of directory.lua for one partition's records."""
        k = self.keys.partition(partition)
        # The states and department counts: a profile change moves the counts (directory.lua);
        # the community people and health index: a role or an enabled status moves its entries.
        touched = dict.fromkeys(
            [
                k.community_registry,
                k.inactivity_states,
                k.department_counts,
                *self._community_health_keys(k),
            ]
        )
        profiles, memberships = [], []
        for record in records:
            if isinstance(record, ProfileV1):
                bucket = self.store.bucket_of(record.user_id)
                touched[k.profile_bucket(bucket)] = None
                touched[k.user_bucket(bucket)] = None
                fields = (
                    str(bucket),
                    record.user_id,
                    str(updated_ms(record)),
                    record.status,
                    str(epoch_ms(record.created)),
                    record.department or "",
                    record.display_name or "",
                )
                profiles.append("\t".join(fields))
            else:
                bucket = self.store.bucket_of(record.user_id)
                touched[k.memberships(record.user_id)] = None
                touched[k.community_role(record.community, record.role)] = None
                # The profile and last event decide the person's community health entries.
                touched[k.profile_bucket(bucket)] = None
                touched[k.user_bucket(bucket)] = None
                membership = (
                    str(bucket),
                    record.user_id,
                    record.community,
                    record.role,
                    record.op,
                    str(updated_ms(record)),
                )
                memberships.append("\t".join(membership))
        args = [
            k.profile_prefix,
            k.membership_prefix,
            k.community_prefix,
            "\n".join(profiles),
            "\n".join(memberships),
            k.inactivity_states,
            k.department_counts,
            k.user_prefix,
            *self._community_health_keys(k),
        ]
        return list(touched), args

    @staticmethod
    def _community_health_keys(k: PartitionKeys) -> list[str]:
        """What directory.lua keeps of community health, in its ARGV order (9 to 13)."""
        return [
            k.community_people,
            k.community_counts,
            k.community_active_people,
            k.community_active_owners,
            k.community_active,
        ]

    async def buffer_profiles(self, profiles: Sequence[tuple[int, ProfileV1]]) -> None:
        """Add (partition, profile) versions to their partitions' reorder buffers (idempotent)."""
        if not profiles:
            return
        async with self.store.client.pipeline(transaction=False) as pipe:
            for partition, profile in profiles:
                at = updated_ms(profile)
                member = buffer_member_for_profile(
                    at, profile.user_id, profile.status == "enabled", epoch_ms(profile.created)
                )
                pipe.zadd(self.keys.partition(partition).reorder_buffer, {member: at})
            await pipe.execute()

    async def profile(self, user_id: str) -> Profile | None:
        """The user's profile, or None when the directory does not know them."""
        return (await self.profiles_and_roles([user_id]))[user_id][0]

    async def roles(self, user_id: str) -> dict[str, list[str]]:
        """Communities per role the user currently holds (owner, member, follower)."""
        return (await self.profiles_and_roles([user_id]))[user_id][1]

    async def profiles_and_roles(
        self, user_ids: Sequence[str], partition: int | None = None
    ) -> dict[str, tuple[Profile | None, dict[str, list[str]]]]:
        """Profile and roles of many users, one script call per chunk of users and partition.

        ``partition``: the users' partition when the caller knows it (a release enriching its
        own flags); else every partition is asked and the latest record of each wins.
        """
        partitions = [partition] if partition is not None else await self.store.partitions()
        found: dict[str, _Stored] = {user_id: (None, {}) for user_id in user_ids}
        calls, chunks = [], []
        for p in partitions:
            k = self.keys.partition(p)
            for start in range(0, len(user_ids), _ENRICH_CHUNK):
                chunk = user_ids[start : start + _ENRICH_CHUNK]
                keys: dict[str, None] = {}
                args = [k.profile_prefix, k.membership_prefix]
                for user_id in chunk:
                    bucket = self.store.bucket_of(user_id)
                    keys[k.profile_bucket(bucket)] = None
                    keys[k.memberships(user_id)] = None
                    args += [str(bucket), user_id]
                calls.append((list(keys), args))
                chunks.append(chunk)
        replies = await run_scripts(self.store.client, self._enrich, calls)
        for chunk, reply in zip(chunks, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            for user_id, entry in zip(chunk, text(reply).split("\x1d"), strict=True):
                raw_profile, *memberships = entry.split("\x1f")
                stored = (
                    _profile(user_id, raw_profile or None),
                    dict(m.split("\x1e", 1) for m in memberships),
                )
                found[user_id] = _latest(found[user_id], stored)
        return {u: (profile, _roles(raw)) for u, (profile, raw) in found.items()}

    async def community_members(self, community: str, role: str) -> set[str]:
        """Users holding ``role`` in ``community`` (the union over partitions)."""
        async with self.store.client.pipeline(transaction=False) as pipe:
            for p in await self.store.partitions():
                pipe.smembers(self.keys.partition(p).community_role(community, role))
            replies = await pipe.execute()
        return {text(member) for members in replies for member in members}

    async def profiles(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """The profiles of those users the directory knows, in one round trip."""
        partitions = await self.store.partitions()
        async with self.store.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                bucket = self.store.bucket_of(user_id)
                for p in partitions:
                    pipe.hget(self.keys.partition(p).profile_bucket(bucket), user_id)
            replies = await pipe.execute()
        out: dict[str, Profile] = {}
        width = len(partitions)
        for index, user_id in enumerate(user_ids):
            for raw in replies[index * width : (index + 1) * width]:
                _keep_latest(out, _profile(user_id, raw))
        return out

    async def all_profiles(self) -> dict[str, Profile]:
        """Every profile (reads every bucket: analytics refreshes and reports)."""
        out: dict[str, Profile] = {}
        for p in await self.store.partitions():
            k = self.keys.partition(p)
            async with self.store.client.pipeline(transaction=False) as pipe:
                for bucket in range(self.store.user_buckets):
                    pipe.hgetall(k.profile_bucket(bucket))
                for records in await pipe.execute():
                    for user, raw in records.items():
                        _keep_latest(out, _profile(text(user), raw))
        return out

    async def all_communities(self) -> dict[str, dict[str, set[str]]]:
        """Community -> role -> users, for every community with a current member."""
        out: dict[str, dict[str, set[str]]] = {}
        for p in await self.store.partitions():
            k = self.keys.partition(p)
            names = sorted(text(c) for c in await self.store.client.smembers(k.community_registry))
            async with self.store.client.pipeline(transaction=False) as pipe:
                for community in names:
                    for role in ROLES:
                        pipe.smembers(k.community_role(community, role))
                replies = await pipe.execute()
            for index, community in enumerate(names):
                roles = out.setdefault(community, {role: set() for role in ROLES})
                for offset, role in enumerate(ROLES):
                    roles[role] |= {text(m) for m in replies[index * len(ROLES) + offset]}
        return {c: roles for c, roles in out.items() if any(roles.values())}


def _keep_latest(found: dict[str, Profile], profile: Profile | None) -> None:
    """Keep ``profile`` unless a later record of the user is already in ``found``."""
    if profile is not None and (
        profile.user_id not in found or profile.updated_ms > found[profile.user_id].updated_ms
    ):
        found[profile.user_id] = profile


def _latest(held: _Stored, other: _Stored) -> _Stored:
    """Two partitions' records of one user merged: the latest profile, the latest membership
    record per community and role (only a producer keying one user to two partitions makes two)."""
    profile, memberships = held
    other_profile, other_memberships = other
    if other_profile is not None and (
        profile is None or other_profile.updated_ms > profile.updated_ms
    ):
        profile = other_profile
    merged = dict(memberships)
    for field, value in other_memberships.items():
        if field not in merged or _updated(value) > _updated(merged[field]):
            merged[field] = value
    return profile, merged


def _updated(value: str) -> int:
    head = value.partition("\t")[0]
    return int(head) if head.lstrip("-").isdigit() else -1


def _profile(user_id: str, raw: bytes | str | None) -> Profile | None:
    if raw is None:
        return None
    updated, status, created, department, name = text(raw).split("\t")
    return Profile(user_id, status, int(created), int(updated), department or None, name or None)


def _roles(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {role: [] for role in ROLES}
    for field, value in raw.items():
        community, role = text(field).split("\t")
        if text(value).endswith("\tadd"):
            out[role].append(community)
    return {role: sorted(communities) for role, communities in out.items()}
