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

    def tier_day(self, tier: str, iso_day: str) -> str:
        """Exact set of a tier's users on a day: "a" active (the day set above), "p", "c"."""
        return self.day(iso_day) if tier == "a" else f"{self.prefix}tday:{tier}:{iso_day}"

    def tier_hll(self, tier: str, day_number: int) -> str:
        """HyperLogLog of a tier's users on a day (days since the epoch), for window counts."""
        return f"{self.prefix}hll:{tier}:{day_number}"

    @property
    def stats_prefix(self) -> str:
        """Prefix of the exact daily counters: hash day number -> users."""
        return self.prefix + "stats:"

    def stats(self, name: str) -> str:
        """Daily counter hash: "a" active, "p" participating, "c" contributing, "n" new users."""
        return self.stats_prefix + name

    def content(self, day_number: int) -> str:
        """Hash "type|object_type" -> events of one day (the content mix over time)."""
        return f"{self.prefix}content:{day_number}"

    def top_items(self, period: str, number: int) -> str:
        """Sorted set item -> interactions of period "d" (a day number); weeks sum their days."""
        return f"{self.prefix}top:{period}:{number}"

    @property
    def received_prefix(self) -> str:
        """Prefix of the received-interaction buckets: user -> "likes,mentions"."""
        return self.prefix + "r1:"

    def received(self, bucket: int) -> str:
        """One of ESN_USER_BUCKETS hashes of likes and mentions received."""
        return f"{self.received_prefix}{bucket}"

    @property
    def community_registry(self) -> str:
        """Set of every community a membership record named (analytics read it, no SCAN)."""
        return self.prefix + "communities"

    def tier_last(self, tier: str) -> str:
        """Sorted set user -> time (ms) of their last event of a tier ("a", "p", "c")."""
        return f"{self.prefix}last:{tier}"

    @property
    def community_last(self) -> str:
        """Hash community -> time (ms) of the last event that named it."""
        return self.prefix + "cact"

    @property
    def community_events(self) -> str:
        """Hash community -> events that named it."""
        return self.prefix + "cevents"

    @property
    def community_states(self) -> str:
        """Hash community -> "orphaned|idle" flags as last published."""
        return self.prefix + "cflags"

    @property
    def community_outbox(self) -> str:
        """List of "seq\tjson" community flag records waiting to be published."""
        return self.prefix + "coutbox"

    @property
    def community_outbox_seq(self) -> str:
        """Last sequence number given to a community flag record."""
        return self.prefix + "cseq"

    @property
    def community_flags_ahead(self) -> str:
        """Set of event ids the community flag topic holds beyond what Redis remembers."""
        return self.prefix + "cahead"

    @property
    def community_published_seq(self) -> str:
        """Highest sequence number the community flag publisher trimmed after a commit."""
        return self.prefix + "cpub"

    def flag_history(self, partition: int) -> str:
        """Hash user id -> "kind@ms,..." of the user's flag changes (for initiatives)."""
        return f"{self.prefix}hist:{partition}"

    def flag_minutes(self, kind: str, day_number: int) -> str:
        """Hash minute of the day -> users flagged (kind) at that minute of event time."""
        return f"{self.prefix}flagmin:{kind}:{day_number}"

    def day_progression(self, day_number: int) -> str:
        """Hash minute of the day -> users whose first activity that day was at that minute."""
        return f"{self.stats_prefix}m:{day_number}"

    @property
    def initiatives(self) -> str:
        """Hash initiative name -> JSON {name, start, users, created}."""
        return self.prefix + "init"

    def initiative_users(self, name: str) -> str:
        """Set of the users an initiative targets."""
        return f"{self.prefix}init:{name}:users"

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
        """Hash user id -> inactivity state (see stream/flags/state_codec.py) of one partition."""
        return f"{self.prefix}inact:{partition}"

    def due(self, partition: int) -> str:
        """Sorted set user id -> next crossing instant: what a sweep looks at."""
        return f"{self.prefix}due:{partition}"

    def outbox(self, partition: int) -> str:
        """List of "seq\tjson" flag records waiting to be published."""
        return f"{self.prefix}outbox:{partition}"

    def release_version(self, partition: int) -> str:
        """Commits of a partition's inactivity releases: the compare-and-set of a release."""
        return f"{self.prefix}relv:{partition}"

    def outbox_seq(self, partition: int) -> str:
        """Last sequence number given to a flag record of a partition."""
        return f"{self.prefix}seq:{partition}"

    def flags_ahead(self, partition: int) -> str:
        """Set of event ids the flag topic holds beyond what Redis remembers (after it lost
        writes): a release that makes one of them again commits it without a new record."""
        return f"{self.prefix}ahead:{partition}"

    def published_seq(self, partition: int) -> str:
        """Highest sequence number of a partition's flags trimmed after a commit: a stale
        publisher that renumbers the outbox from a lower one is refused."""
        return f"{self.prefix}pub:{partition}"

    @property
    def inactivity_counts(self) -> str:
        """Hash "inactive:<threshold ms>", "never_active", "enabled" -> users (for the gauges)."""
        return self.prefix + "inact:counts"

    @property
    def deployment(self) -> str:
        """Hash of what the stored state was built under: buckets, activity types, definitions."""
        return self.prefix + "deployment"

    @property
    def inactivity_definitions(self) -> str:
        """Hash partition -> "definitions\treleased_ms": what its inactivity states are under."""
        return self.prefix + "inact:defs"

    @property
    def fence_prefix(self) -> str:
        """Prefix of the applied-offset fences."""
        return self.prefix + "fence:"

    def fence(self, topic: str, partition: int) -> str:
        """Highest offset of ``topic``/``partition`` whose effects are in Redis."""
        return f"{self.fence_prefix}{topic}:{partition}"
