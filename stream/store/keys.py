"""The Redis key layout, built in one place: a hash tag per Kafka partition, so that everything one
partition's scripts touch shares a hash slot (one Redis or a Redis Cluster, the same layout).

Per-partition keys are ``<prefix>{p<partition>}:<name>``; figures of the whole organisation are
merged on read over the partitions (their users are disjoint: the activity and directory topics
are keyed by user id). A few keys of the whole deployment live outside every partition; the
community flags share the tag ``{c}`` because their script commits them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

#: The version of this layout, stored in the deployment record: a deployment whose state is in
#: another one must be rebuilt (replayed), see docs/reference/redis.md. Layout 4 added the
#: community health counts (``community_people``, ``community_counts``, ``community_active*``).
LAYOUT = 4


@dataclass(frozen=True)
class RedisKeys:
    """Key names under one prefix (``ESN_REDIS_PREFIX``): the deployment's own keys, and each
    partition's through :meth:`partition`."""

    prefix: str

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            # A brace in the prefix would become the hash tag and put every key in one slot.
            raise ValueError(f"ESN_REDIS_PREFIX must not hold '{{' or '}}': {self.prefix!r}")

    def partition(self, partition: int) -> PartitionKeys:
        """The keys of one Kafka partition (all in one hash slot)."""
        return _partition_keys(self.prefix, partition)

    @property
    def partitions(self) -> str:
        """Set of the partitions that hold state: what a read merges over."""
        return self.prefix + "partitions"

    @property
    def deployment(self) -> str:
        """Hash of what the stored state was built under: layout, buckets, activity types,
        definitions."""
        return self.prefix + "deployment"

    @property
    def initiatives(self) -> str:
        """Hash initiative name -> JSON {name, start, users, created}."""
        return self.prefix + "{init}:all"

    def initiative_users(self, name: str) -> str:
        """Set of the users an initiative targets (same slot as the initiatives hash)."""
        return f"{self.prefix}{{init}}:{name}:users"

    @property
    def community_states(self) -> str:
        """Hash community -> "orphaned|idle|version" flags as last committed."""
        return self.prefix + "{c}:flags"

    @property
    def community_outbox(self) -> str:
        """List of "seq\tjson" community flag records waiting to be published."""
        return self.prefix + "{c}:outbox"

    @property
    def community_outbox_seq(self) -> str:
        """Last sequence number given to a community flag record."""
        return self.prefix + "{c}:seq"

    @property
    def community_flags_ahead(self) -> str:
        """Set of event ids the community flag topic holds beyond what Redis remembers."""
        return self.prefix + "{c}:ahead"

    @property
    def community_published_seq(self) -> str:
        """Highest sequence number the community flag publisher trimmed after a commit."""
        return self.prefix + "{c}:pub"

    def nudge(self, dry_run: bool = False) -> NudgeKeys:
        """The nudge service's keys (tag ``{nudge}``; a dry run's under ``{nudge-dry}``)."""
        return NudgeKeys(self.prefix + ("{nudge-dry}:" if dry_run else "{nudge}:"))

    @property
    def nudge_addresses(self) -> str:
        """Hash person (pseudonym) -> JSON {updated, status, email, name, language, opt_out}:
        the nudge service's own address book, folded from the directory topic."""
        return self.prefix + "{nudge-ab}:addr"

    @property
    def nudge_address_positions(self) -> str:
        """Hash directory partition -> next offset the address book reads."""
        return self.prefix + "{nudge-ab}:pos"


@dataclass(frozen=True)
class NudgeKeys:
    """The keys of the nudge service's deliveries, all in one hash slot (one script commits
    the delivery, the person's window, the channel's cap, the audit entry and the effect)."""

    base: str

    @property
    def fences(self) -> str:
        """Hash flagged-topic partition -> highest offset taken in."""
        return self.base + "fence"

    @property
    def deliveries(self) -> str:
        """Hash delivery id ("event_id|channel") -> JSON delivery state (nudge_store.py)."""
        return self.base + "d"

    @property
    def due(self) -> str:
        """Sorted set delivery id -> when it is next looked at (pending, or a send's lease)."""
        return self.base + "due"

    def open(self, person: str) -> str:
        """Set of a person's deliveries not settled yet (what a reactivation cancels)."""
        return f"{self.base}open:{person}"

    @property
    def last_nudged(self) -> str:
        """Hash person -> "event_id\tms" of the last nudge claimed (the window)."""
        return self.base + "last"

    def cap(self, channel: str, iso_day: str) -> str:
        """Counter of a channel's sends on a UTC day (the daily cap)."""
        return f"{self.base}cap:{channel}:{iso_day}"

    @property
    def audit(self) -> str:
        """Stream of every delivery and suppression (field "e": JSON), for `nudge log`."""
        return self.base + "audit"

    @property
    def effect(self) -> str:
        """Hash flag event id -> JSON {person, kind, decided, group, reactivated}."""
        return self.base + "effect"

    def person_effects(self, person: str) -> str:
        """Set of a person's effect entries still waiting for a reactivation."""
        return f"{self.base}peff:{person}"


@lru_cache(maxsize=4096)
def _partition_keys(prefix: str, partition: int) -> PartitionKeys:
    return PartitionKeys(f"{prefix}{{p{partition}}}:", partition)


@dataclass(frozen=True)
class PartitionKeys:
    """The keys of one partition: ``base`` is ``<prefix>{p<partition>}:``, the hash tag."""

    base: str
    number: int

    # --- the activity fold ------------------------------------------------------------------

    def fence(self, topic: str) -> str:
        """Highest offset of ``topic`` (this partition) whose effects are in Redis."""
        return f"{self.base}fence:{topic}"

    @property
    def user_prefix(self) -> str:
        """Prefix of the user-record buckets."""
        return self.base + "u1:"

    def user_bucket(self, bucket: int) -> str:
        """Hash user id -> JSON record (see fold.lua), one of ESN_USER_BUCKETS."""
        return f"{self.user_prefix}{bucket}"

    @property
    def user_index(self) -> str:
        """List of this partition's user ids by their dense index (their bit in the day bitmaps)."""
        return self.base + "ids"

    def day(self, iso_day: str) -> str:
        """Bitmap of the users (by index) active on a UTC day."""
        return f"{self.base}day:{iso_day}"

    def tier_day(self, tier: str, iso_day: str) -> str:
        """Bitmap of a tier's users on a day: "a" active (the day bitmap above), "p", "c"."""
        return self.day(iso_day) if tier == "a" else f"{self.base}tday:{tier}:{iso_day}"

    def tier_hll(self, tier: str, day_number: int) -> str:
        """HyperLogLog of a tier's users on a day (days since the epoch), for window counts."""
        return f"{self.base}hll:{tier}:{day_number}"

    @property
    def stats_prefix(self) -> str:
        """Prefix of the exact daily counters: hash day number -> users."""
        return self.base + "stats:"

    def stats(self, name: str) -> str:
        """Daily counter hash: "a" active, "p" participating, "c" contributing, "n" new users."""
        return self.stats_prefix + name

    def day_progression(self, day_number: int) -> str:
        """u8 per minute of the day (BITFIELD): users whose first activity that day was then."""
        return f"{self.stats_prefix}m:{day_number}"

    def day_progression_spill(self, day_number: int) -> str:
        """Hash minute -> a minute's users past the progression's u8 (255; rarely exists)."""
        return self.day_progression(day_number) + ":x"

    def content(self, day_number: int) -> str:
        """Hash "type|object_type" -> events of one day (the content mix over time)."""
        return f"{self.base}content:{day_number}"

    def top_items(self, period: str, number: int) -> str:
        """JSON [bound, item, count, ...] of period "d" (a day number): the items kept and the
        highest count dropped; weeks sum their days."""
        return f"{self.base}top:{period}:{number}"

    @property
    def received_prefix(self) -> str:
        """Prefix of the received-interaction buckets: user -> "likes,mentions"."""
        return self.base + "r1:"

    def received(self, bucket: int) -> str:
        """One of ESN_USER_BUCKETS hashes of likes and mentions received."""
        return f"{self.received_prefix}{bucket}"

    @property
    def scratch(self) -> str:
        """Working key of a read script (tier_windows.lua): written and deleted by one call."""
        return self.base + "scratch"

    @property
    def community_activity(self) -> str:
        """Hash community -> "last_ms,events" of this partition's events that named it."""
        return self.base + "comm"

    @property
    def totals(self) -> str:
        """Hash "type|object_type" -> events."""
        return self.base + "totals"

    @property
    def unknown_types(self) -> str:
        """Hash raw type name -> events counted as "other"."""
        return self.base + "totals:unknown_types"

    # --- the directory ----------------------------------------------------------------------

    @property
    def profile_prefix(self) -> str:
        """Prefix of the profile buckets: user id -> "updated\tstatus\tcreated\tdept\tname"."""
        return self.base + "p1:"

    def profile_bucket(self, bucket: int) -> str:
        """One of ESN_USER_BUCKETS hashes of profiles (same bucketing as user records)."""
        return f"{self.profile_prefix}{bucket}"

    @property
    def membership_prefix(self) -> str:
        """Prefix of the per-user membership hashes: "community\trole" -> "updated\top"."""
        return self.base + "m:"

    def memberships(self, user_id: str) -> str:
        """A user's memberships, latest record per community and role."""
        return self.membership_prefix + user_id

    @property
    def community_prefix(self) -> str:
        """Prefix of the community member sets."""
        return self.base + "c:"

    def community_role(self, community: str, role: str) -> str:
        """Set of this partition's users holding ``role`` (owner, member, follower)."""
        return f"{self.community_prefix}{community}:{role}"

    @property
    def community_registry(self) -> str:
        """Set of every community a membership record of this partition named (no SCAN)."""
        return self.base + "communities"

    @property
    def community_people(self) -> str:
        """Hash user -> "enabled\tcommunity\troles..." of every user holding a role: what the
        fold reads to move the user's community health entries."""
        return self.base + "cpeople"

    @property
    def community_counts(self) -> str:
        """Hash community -> "owners,members,followers,people" (kept by directory.lua)."""
        return self.base + "ccount"

    @property
    def community_active_people(self) -> str:
        """Sorted set "community\tuser" -> last event time, of every enabled person of a
        community who was ever seen."""
        return self.base + "cact"

    @property
    def community_active_owners(self) -> str:
        """Sorted set "community\tuser" -> last event time, of every enabled owner ever seen."""
        return self.base + "cown"

    @property
    def community_active(self) -> str:
        """Hash community -> "active people,active owners" as of the instant and windows in its
        fields "\tasof", "\tw" and "\tt" (community_health.lua moves it to the instant read)."""
        return self.base + "cactive"

    # --- the inactivity engine and its outbox -----------------------------------------------

    @property
    def reorder_buffer(self) -> str:
        """Sorted set of changes waiting for the watermark, scored by event time."""
        return self.base + "buf"

    @property
    def watermark_source(self) -> str:
        """Highest event time folded (the event clock's 'now')."""
        return self.base + "wm"

    @property
    def inactivity_states(self) -> str:
        """Hash user id -> inactivity state (see stream/flags/state_codec.py)."""
        return self.base + "inact"

    @property
    def due(self) -> str:
        """Sorted set user id -> next crossing instant: what a sweep looks at."""
        return self.base + "due"

    @property
    def inactivity_counts(self) -> str:
        """Hash "inactive:<threshold ms>", "never_active", "enabled" -> users (the gauges)."""
        return self.base + "inact:counts"

    @property
    def inactivity_definitions(self) -> str:
        """Hash partition -> "definitions\treleased_ms": what the states are under."""
        return self.base + "inact:defs"

    @property
    def department_counts(self) -> str:
        """Hash "<department>\t<figure>" -> enabled profiles of the department that are enabled,
        active, inactive, never_active ("built" once counted from scratch): release.lua and
        directory.lua keep it, department_counts.lua builds it."""
        return self.base + "dept"

    @property
    def release_version(self) -> str:
        """Commits of the inactivity releases: the compare-and-set of a release."""
        return self.base + "relv"

    @property
    def flag_history(self) -> str:
        """Hash user id -> "kind@ms,..." of the user's flag changes (for initiatives)."""
        return self.base + "hist"

    def flag_minutes(self, kind: str, day_number: int) -> str:
        """Hash minute of the day -> users flagged (kind) at that minute of event time."""
        return f"{self.base}flagmin:{kind}:{day_number}"

    @property
    def outbox(self) -> str:
        """List of "seq\tjson" flag records waiting to be published."""
        return self.base + "outbox"

    @property
    def outbox_seq(self) -> str:
        """Last sequence number given to a flag record."""
        return self.base + "seq"

    @property
    def flags_ahead(self) -> str:
        """Set of event ids the flag topic holds beyond what Redis remembers (after it lost
        writes): a release that makes one of them again commits it without a new record."""
        return self.base + "ahead"

    @property
    def published_seq(self) -> str:
        """Highest sequence number of the flags trimmed after a commit: a stale publisher that
        renumbers the outbox from a lower one is refused."""
        return self.base + "pub"
