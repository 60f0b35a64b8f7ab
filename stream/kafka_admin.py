"""Creating the project's topics on a broker (idempotent: existing topics are left as they are)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.settings import Settings
from stream.topics import TopicNames

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create any missing topic of this deployment; returns the wanted partitions per topic."""
    wanted = TopicNames.from_settings(settings).partitions(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=1)
            for name, count in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another worker may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("Created topics %s", [t.name for t in missing])
        await _wait_visible(admin, wanted)
    finally:
        await admin.close()
    return wanted


async def _wait_visible(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], timeout: float = 30
) -> None:
    """Wait until the broker serves every topic with all partitions led.

    A consumer that joins its group before a new topic shows in the metadata is assigned
    nothing and stays so (seen with Faust's agents), so creation is not done until then.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(list(wanted))
        ready = all(
            topic["error_code"] == 0
            and len(topic["partitions"]) == wanted[topic["topic"]]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        )
        if ready:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics not visible after {timeout:.0f}s: {described}")
        await asyncio.sleep(0.1)
