"""Creating the project's topics on a broker (idempotent: existing topics are left as they are).

New topics get ``ESN_TOPIC_REPLICATION_FACTOR`` replicas and ``ESN_TOPIC_MIN_INSYNC_REPLICAS``,
checked against the cluster's broker count first; an existing topic with fewer replicas than
wanted is kept as it is, with a warning (changing it is a partition reassignment, not ours to do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.cli_errors import BadConfig
from stream.clients import new_admin
from stream.settings import Settings
from stream.topics import TopicNames

log = logging.getLogger(__name__)

#: The replication factor when the setting is 0 (auto): three copies survive one broker down
#: for maintenance while another fails, the usual production choice.
_AUTO_REPLICAS = 3


@dataclass(frozen=True)
class Replication:
    """Replicas and min.insync.replicas of the topics ESN Pulse creates."""

    factor: int
    min_insync: int


def replication_for(settings: Settings, brokers: int) -> Replication:
    """The replication wanted on a cluster of ``brokers``; BadConfig when it cannot hold it."""
    factor = settings.topic_replication_factor or min(_AUTO_REPLICAS, brokers)
    if factor > brokers:
        raise BadConfig(
            f"ESN_TOPIC_REPLICATION_FACTOR={factor} but the cluster at "
            f"{settings.kafka_bootstrap} has {brokers} broker(s)",
            "lower it (0 picks min(3, brokers)) or add brokers",
        )
    min_insync = settings.topic_min_insync_replicas or max(1, factor - 1)
    if min_insync > factor:
        raise BadConfig(
            f"ESN_TOPIC_MIN_INSYNC_REPLICAS={min_insync} exceeds the replication factor "
            f"{factor}: every acknowledged write would fail",
            "lower it (0 picks the factor minus one) or raise ESN_TOPIC_REPLICATION_FACTOR",
        )
    return Replication(factor, min_insync)


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create any missing topic of this deployment; returns the wanted partitions per topic."""
    wanted = TopicNames.from_settings(settings).partitions(settings)
    admin = new_admin(settings)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replication = replication_for(settings, len(cluster["brokers"]))
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=count,
                replication_factor=replication.factor,
                topic_configs={"min.insync.replicas": str(replication.min_insync)},
            )
            for name, count in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another worker may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info(
                "Created topics %s (replication factor %d, min.insync.replicas %d)",
                [t.name for t in missing],
                replication.factor,
                replication.min_insync,
            )
        described = await _wait_visible(admin, wanted)
        _warn_under_replicated(described, replication.factor, existing)
    finally:
        await admin.close()
    return wanted


def _warn_under_replicated(described: list[Any], factor: int, existing: set[str]) -> None:
    """One warning line per existing topic that has fewer replicas than wanted."""
    for topic in described:
        if topic["topic"] not in existing:
            continue
        replicas = min((len(p["replicas"]) for p in topic["partitions"]), default=factor)
        if replicas < factor:
            log.warning(
                "Topic %s has replication factor %d, below the %d wanted "
                "(ESN_TOPIC_REPLICATION_FACTOR): a broker loss can lose its records; raise it "
                "with kafka-reassign-partitions (see docs/operations/security.md)",
                topic["topic"],
                replicas,
                factor,
            )


async def _wait_visible(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], timeout: float = 30
) -> list[Any]:
    """Wait until the broker serves every topic with all partitions led; their descriptions.

    A consumer that joins its group before a new topic shows in the metadata is assigned
    nothing and stays so (seen with Faust's agents), so creation is not done until then.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described: list[Any] = await admin.describe_topics(list(wanted))
        ready = all(
            topic["error_code"] == 0
            and len(topic["partitions"]) == wanted[topic["topic"]]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        )
        if ready:
            return described
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics not visible after {timeout:.0f}s: {described}")
        await asyncio.sleep(0.1)
