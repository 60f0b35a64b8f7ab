"""Rebuilding a deployment's derived state from Kafka (``esn-pulse rebuild``).

Every key under ``ESN_REDIS_PREFIX`` except what Kafka cannot give back (initiatives) is deleted,
both consumer groups go back to the first retained record of their topics, and the flag outboxes
continue the numbering their topics already carry. The next worker then replays the activity and
directory topics from the beginning. What retention dropped is gone: :func:`plan_rebuild` counts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from stream.clients import new_admin, new_consumer
from stream.flags.publisher import FlagPublisher
from stream.settings import Settings
from stream.store import RedisStore, StateAdmin
from stream.store.definitions_store import DefinitionsStore
from stream.topics import TopicNames


@dataclass(frozen=True)
class Lost:
    """Records of a topic partition that retention deleted: offsets before ``first_offset``."""

    topic: str
    partition: int
    first_offset: int


@dataclass
class RebuildPlan:
    """What a rebuild would do, and what it cannot bring back."""

    #: consumer group -> members now (a rebuild needs every worker stopped).
    members: dict[str, int] = field(default_factory=dict)
    #: group -> topic whose offsets go back to its first retained record.
    groups: dict[str, str] = field(default_factory=dict)
    lost: list[Lost] = field(default_factory=list)
    deleted_keys: int = 0
    kept_keys: int = 0
    #: flagged partition -> last published sequence number (0 when none).
    flag_seqs: dict[int, int] = field(default_factory=dict)
    community_seq: int = 0
    #: topic -> partitions on the broker (0 when the topic does not exist).
    partitions: dict[str, int] = field(default_factory=dict)
    #: The key layout the stored state is in (None: no deployment record).
    stored_layout: int | None = None

    def topic_partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of a topic."""
        return [TopicPartition(topic, p) for p in range(self.partitions.get(topic, 0))]

    @property
    def lost_records(self) -> int:
        """How many records retention dropped in all (their effects cannot be rebuilt)."""
        return sum(lost.first_offset for lost in self.lost)


def groups_of(settings: Settings) -> dict[str, str]:
    """The deployment's consumer groups and the topic each replays: the ingest's and Faust's."""
    topics = TopicNames.from_settings(settings)
    return {f"{settings.app_id}-activity": topics.activity, settings.app_id: topics.directory}


async def plan_rebuild(settings: Settings, store: RedisStore) -> RebuildPlan:
    """Read (nothing written) what a rebuild of this deployment would do."""
    plan = RebuildPlan(groups=groups_of(settings))
    topics = TopicNames.from_settings(settings)
    names = [topics.activity, topics.directory, topics.flagged, topics.communities_flagged]
    admin = new_admin(settings)
    await admin.start()
    try:
        plan.members = await _members(admin, list(plan.groups))
        plan.partitions = await _partition_counts(admin, names)
    finally:
        await admin.close()
    consumer = new_consumer(settings)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
    try:
        for topic in (topics.activity, topics.directory):
            tps = plan.topic_partitions(topic)
            for tp, first in (await consumer.beginning_offsets(tps)).items():
                if first > 0:
                    plan.lost.append(Lost(topic, tp.partition, first))
    finally:
        await consumer.stop()
    plan.flag_seqs = await _last_seqs(
        settings, store, topics.flagged, plan.partitions[topics.flagged]
    )
    community = await _last_seqs(
        settings, store, topics.communities_flagged, plan.partitions[topics.communities_flagged]
    )
    plan.community_seq = community.get(0, 0)
    plan.deleted_keys, plan.kept_keys = await StateAdmin(store).count_keys()
    stored = await DefinitionsStore(store).stored()
    plan.stored_layout = stored.layout if stored is not None else None
    return plan


async def rebuild(settings: Settings, store: RedisStore, plan: RebuildPlan) -> int:
    """Reset the groups, delete the derived keys, keep the flag numbering; returns keys deleted.

    Each step can be repeated: a rebuild interrupted half-way is finished by running it again.
    """
    for group, topic in plan.groups.items():
        await _rewind_group(settings, group, plan.topic_partitions(topic))
    admin = StateAdmin(store)
    deleted = await admin.delete_derived()
    # A state of layout 1 (before the hash tags) keeps its initiatives under the old names.
    await admin.move_layout1_initiatives()
    # The flag topics keep their records: new ones continue their numbering, so the publisher
    # neither skips them as already sent nor repeats a number a consumer has seen.
    await admin.continue_numbering(plan.flag_seqs, plan.community_seq)
    return deleted


async def _members(admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, int]:
    out = dict.fromkeys(groups, 0)
    # One group per request: aiokafka 0.14 asks for DescribeGroups v3 but reads the reply as v2,
    # which only holds for the last (here: the only) group of a reply.
    for group in groups:
        for response in await admin.describe_consumer_groups([group]):
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                out[described[1]] = len(described[5])
    return out


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    out = dict.fromkeys(topics, 0)
    for described in await admin.describe_topics(topics):
        if described["error_code"] == 0:
            out[described["topic"]] = len(described["partitions"])
    return out


async def _last_seqs(
    settings: Settings, store: RedisStore, topic: str, partitions: int
) -> dict[int, int]:
    """partition -> ``esn.seq`` of its last committed record, read as the publisher reads it."""
    publisher = FlagPublisher(settings, store, topic=topic)
    try:
        return {p: await publisher.last_published_seq(p) for p in range(partitions)}
    finally:
        await publisher.stop()


async def _rewind_group(settings: Settings, group: str, tps: list[TopicPartition]) -> None:
    """Commit the first retained offset of every partition for ``group`` (it has no members)."""
    consumer = new_consumer(settings, group_id=group, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        if not tps:
            return
        consumer.assign(tps)
        firsts = await consumer.beginning_offsets(tps)
        offsets: dict[TopicPartition, Any] = {
            tp: OffsetAndMetadata(first, "") for tp, first in firsts.items()
        }
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
