"""The Redis key layout, built in one place (fold.lua receives these prefixes as arguments)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    """Key names under one prefix (``ESN_REDIS_PREFIX``)."""

    prefix: str

    @property
    def user_prefix(self) -> str:
        """Prefix of the user-record buckets."""
        return self.prefix + "u1:"

    def user_bucket(self, bucket: int) -> str:
        """Hash user id -> packed record (see fold.lua), one of ESN_USER_BUCKETS."""
        return f"{self.user_prefix}{bucket}"

    @property
    def day_prefix(self) -> str:
        """Prefix of the per-day active-user sets."""
        return self.prefix + "day:"

    def day(self, iso_day: str) -> str:
        """Set of users active on a UTC day."""
        return self.day_prefix + iso_day

    @property
    def totals(self) -> str:
        """Hash "type|object_type" -> events."""
        return self.prefix + "totals"

    @property
    def unknown_types(self) -> str:
        """Hash raw type name -> events counted as "other"."""
        return self.prefix + "totals:unknown_types"

    @property
    def profile_prefix(self) -> str:
        """Prefix of the profile buckets: user id -> "updated\tstatus\tcreated\tdept\tname"."""
        return self.prefix + "p1:"

    def profile_bucket(self, bucket: int) -> str:
        """One of ESN_USER_BUCKETS hashes of profiles (same bucketing as user records)."""
        return f"{self.profile_prefix}{bucket}"

    @property
    def membership_prefix(self) -> str:
        """Prefix of the per-user membership hashes: "community\trole" -> "updated\top"."""
        return self.prefix + "m:"

    def memberships(self, user_id: str) -> str:
        """A user's memberships, latest record per community and role."""
        return self.membership_prefix + user_id

    @property
    def community_prefix(self) -> str:
        """Prefix of the community member sets."""
        return self.prefix + "c:"

    def community_role(self, community: str, role: str) -> str:
        """Set of users holding ``role`` (owner, member, follower) in ``community``."""
        return f"{self.community_prefix}{community}:{role}"

    def reorder_buffer(self, partition: int) -> str:
        """Sorted set of changes waiting for the watermark, scored by event time."""
        return f"{self.prefix}buf:{partition}"

    def watermark_source(self, partition: int) -> str:
        """Highest event time folded for a partition (the event clock's 'now')."""
        return f"{self.prefix}wm:{partition}"

    def inactivity_states(self, partition: int) -> str:
        """Hash user id -> inactivity state (see stream/sweep.py) of one partition."""
        return f"{self.prefix}inact:{partition}"

    def due(self, partition: int) -> str:
        """Sorted set user id -> next crossing instant: what a sweep looks at."""
        return f"{self.prefix}due:{partition}"

    def outbox(self, partition: int) -> str:
        """List of "seq\tjson" flag records waiting to be published."""
        return f"{self.prefix}outbox:{partition}"

    def outbox_seq(self, partition: int) -> str:
        """Last sequence number given to a flag record of a partition."""
        return f"{self.prefix}seq:{partition}"

    @property
    def inactivity_counts(self) -> str:
        """Hash "inactive:<threshold ms>", "never_active", "enabled" -> users (for the gauges)."""
        return self.prefix + "inact:counts"

    @property
    def fence_prefix(self) -> str:
        """Prefix of the applied-offset fences."""
        return self.prefix + "fence:"

    def fence(self, topic: str, partition: int) -> str:
        """Highest offset of ``topic``/``partition`` whose effects are in Redis."""
        return f"{self.fence_prefix}{topic}:{partition}"
