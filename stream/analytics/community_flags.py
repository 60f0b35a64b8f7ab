"""Orphaned and idle communities on esn.communities.flagged.v1, each change published once.

An evaluation compares every community's flags at the clock's now with the flags last committed
and commits the differences with a compare-and-set (store/community_flags.lua), which also numbers
the records in an outbox; the user-flag publisher then sends them in order, resuming from the
topic's last sequence number. Two evaluators racing commit each change once, and a crash between
commit and send only delays it. Only the worker that owns activity partition 0 evaluates, so one
publisher drains the single outbox.
"""

from __future__ import annotations

from typing import Any, Final

from stream import jsonutil
from stream.analytics.communities import CommunityHealth
from stream.analytics.days import iso_time
from stream.flags.publisher import FlagPublisher
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.community_flag_store import CommunityFlagStore
from stream.store.outbox_store import OutboxStore
from stream.topics import TopicNames

SCHEMA: Final = "esn.communities.flagged.v1"
#: flag -> (letter in the stored state, kind when it turns on, kind when it turns off)
FLAGS: Final = {
    "orphaned": ("o", "orphaned", "orphaned_resolved"),
    "idle": ("i", "idle", "idle_resolved"),
}


def state_of(health: CommunityHealth) -> str:
    """The flags string: "o" orphaned, "i" idle ("oi", "o", "i" or "")."""
    return ("o" if health.orphaned else "") + ("i" if health.idle else "")


def parse_stored(raw: str) -> tuple[str, int]:
    """A stored state "flags|version" as (flags, commits so far); before versions, "flags"."""
    flags, _, version = raw.partition("|")
    return flags, int(version) if version.isdigit() else 0


def change_records(
    health: CommunityHealth, old: str, now_ms: int, version: int = 0
) -> list[dict[str, Any]]:
    """The records of the flags that differ between ``old`` and the community's state now.

    Their event id names the community's commit (``version`` + 1), not the evaluation's time: an
    evaluation made again after Redis lost writes gives the same change the same id.
    """
    new = state_of(health)
    records = []
    for flag, (letter, on, off) in FLAGS.items():
        was, now = letter in old, letter in new
        if was == now:
            continue
        kind = on if now else off
        records.append(
            {
                "schema": SCHEMA,
                "kind": kind,
                "flag": flag,
                "community": health.community,
                "at": iso_time(now_ms),
                "owners": health.roles.get("owner", 0),
                "people": health.people,
                "active_members": health.active_members,
                "last_activity": iso_time(health.last_activity_ms),
                "event_id": f"{health.community}:{kind}:{version + 1}",
            }
        )
    return records


class CommunityFlagger:
    """Evaluates and publishes community flags for one deployment."""

    def __init__(self, settings: Settings, store: RedisStore) -> None:
        self.settings = settings
        self.store = store
        self.flags = CommunityFlagStore(store)
        self.publisher: FlagPublisher | None = None

    async def start(self) -> None:
        """Create and connect the publisher (its producer needs the running loop)."""
        self.publisher = FlagPublisher(
            self.settings,
            self.store,
            topic=TopicNames.from_settings(self.settings).communities_flagged,
            outbox=OutboxStore.communities(self.store),
            key_field="community",
        )
        await self.publisher.start()

    async def stop(self) -> None:
        """Flush and close the producer."""
        if self.publisher is not None:
            await self.publisher.stop()

    async def commit(self, communities: list[CommunityHealth], now_ms: int) -> int:
        """Commit the changes since the last evaluation; returns how many records were added."""
        stored = await self.flags.stored_states()
        lines = []
        for health in communities:
            old = stored.get(health.community, "")
            if "\t" in health.community or "\n" in health.community:
                continue  # cannot travel in the line format (ids come from producers)
            flags, version = parse_stored(old)
            new = f"{state_of(health)}|{version + 1}"
            for record in change_records(health, flags, now_ms, version):
                payload = jsonutil.dumps(record).decode()
                lines.append(f"{health.community}\t{old}\t{new}\t{record['event_id']}\t{payload}")
        return await self.flags.commit(lines)

    async def publish(self) -> list[dict[str, Any]]:
        """Send the committed records not yet on the topic (call start() first)."""
        assert self.publisher is not None, "CommunityFlagger.start() was not awaited"
        return await self.publisher.publish(0)
