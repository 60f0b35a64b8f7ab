"""Redis writes and reads of the user directory: profiles and community memberships."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from stream.directory import MembershipV1, ProfileV1, updated_ms
from stream.events import epoch_ms
from stream.flags.machine import buffer_member_for_profile
from stream.store.redis_store import RedisStore, text

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


class DirectoryStore:
    """Profiles and memberships, sharing the activity store's client, keys and buckets."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.keys = store.keys
        self._fold = store.client.register_script(_DIRECTORY_SCRIPT)
        self._enrich = store.client.register_script(_ENRICH_SCRIPT)

    async def apply(self, records: Sequence[ProfileV1 | MembershipV1]) -> tuple[int, int]:
        """Fold a batch (latest update wins); returns (profiles changed, memberships changed)."""
        profiles, memberships = [], []
        for record in records:
            if isinstance(record, ProfileV1):
                fields = (
                    str(self.store.bucket_of(record.user_id)),
                    record.user_id,
                    str(updated_ms(record)),
                    record.status,
                    str(epoch_ms(record.created)),
                    record.department or "",
                    record.display_name or "",
                )
                profiles.append("\t".join(fields))
            else:
                membership = (
                    record.user_id,
                    record.community,
                    record.role,
                    record.op,
                    str(updated_ms(record)),
                )
                memberships.append("\t".join(membership))
        k = self.keys
        args = [
            k.profile_prefix,
            k.membership_prefix,
            k.community_prefix,
            "\n".join(profiles),
            "\n".join(memberships),
            k.community_registry,
        ]
        changed_profiles, changed_memberships = await self._fold(keys=[], args=args)
        return int(changed_profiles), int(changed_memberships)

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
                pipe.zadd(self.keys.reorder_buffer(partition), {member: at})
            await pipe.execute()

    async def profile(self, user_id: str) -> Profile | None:
        """The user's profile, or None when the directory does not know them."""
        return (await self.profiles_and_roles([user_id]))[user_id][0]

    async def roles(self, user_id: str) -> dict[str, list[str]]:
        """Communities per role the user currently holds (owner, member, follower)."""
        return (await self.profiles_and_roles([user_id]))[user_id][1]

    async def profiles_and_roles(
        self, user_ids: Sequence[str]
    ) -> dict[str, tuple[Profile | None, dict[str, list[str]]]]:
        """Profile and roles of many users, one script call per chunk of users."""
        out: dict[str, tuple[Profile | None, dict[str, list[str]]]] = {}
        k = self.keys
        for start in range(0, len(user_ids), _ENRICH_CHUNK):
            chunk = user_ids[start : start + _ENRICH_CHUNK]
            args = [k.profile_prefix, k.membership_prefix]
            for user_id in chunk:
                args += [str(self.store.bucket_of(user_id)), user_id]
            entries = text(await self._enrich(keys=[], args=args)).split("\x1d")
            for user_id, entry in zip(chunk, entries, strict=True):
                raw_profile, *memberships = entry.split("\x1f")
                raw_roles = dict(m.split("\x1e", 1) for m in memberships)
                out[user_id] = (_profile(user_id, raw_profile or None), _roles(raw_roles))
        return out

    async def community_members(self, community: str, role: str) -> set[str]:
        """Users holding ``role`` in ``community``."""
        members = await self.store.client.smembers(self.keys.community_role(community, role))
        return {text(member) for member in members}

    async def profiles(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """The profiles of those users the directory knows, in one round trip."""
        async with self.store.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hget(self.keys.profile_bucket(self.store.bucket_of(user_id)), user_id)
            replies = await pipe.execute()
        found = (_profile(u, raw) for u, raw in zip(user_ids, replies, strict=True))
        return {profile.user_id: profile for profile in found if profile is not None}

    async def all_profiles(self) -> dict[str, Profile]:
        """Every profile (reads every bucket: analytics refreshes and reports)."""
        out: dict[str, Profile] = {}
        async with self.store.client.pipeline(transaction=False) as pipe:
            for bucket in range(self.store.user_buckets):
                pipe.hgetall(self.keys.profile_bucket(bucket))
            for records in await pipe.execute():
                for user, raw in records.items():
                    profile = _profile(text(user), raw)
                    if profile is not None:
                        out[profile.user_id] = profile
        return out

    async def all_communities(self) -> dict[str, dict[str, set[str]]]:
        """Community -> role -> users, for every community with a current member."""
        names = sorted(
            text(c) for c in await self.store.client.smembers(self.keys.community_registry)
        )
        async with self.store.client.pipeline(transaction=False) as pipe:
            for community in names:
                for role in ROLES:
                    pipe.smembers(self.keys.community_role(community, role))
            replies = await pipe.execute()
        out: dict[str, dict[str, set[str]]] = {}
        for index, community in enumerate(names):
            roles = {
                role: {text(m) for m in replies[index * len(ROLES) + offset]}
                for offset, role in enumerate(ROLES)
            }
            if any(roles.values()):
                out[community] = roles
        return out


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
