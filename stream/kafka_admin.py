"""Creating the project's topics on a broker (idempotent: existing topics are left as they are)."""

from __future__ import annotations

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
    finally:
        await admin.close()
    return wanted
