"""Topic names, partition counts and dead-letter headers: the one place they are defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stream.settings import Settings

ACTIVITY: Final = "esn.activity.v1"
ACTIVITY_DLQ: Final = "esn.activity.v1.dlq"
DIRECTORY: Final = "esn.directory.v1"
DIRECTORY_DLQ: Final = "esn.directory.v1.dlq"
FLAGGED: Final = "esn.users.flagged.v1"
COMMUNITIES_FLAGGED: Final = "esn.communities.flagged.v1"
#: Header of a flagged-user record: its sequence number within its partition's outbox.
FLAG_SEQ: Final = "esn.seq"

#: Headers on a dead-lettered record; the value bytes stay exactly as received.
DLQ_REASON: Final = "esn.dlq.reason"
DLQ_DETAIL: Final = "esn.dlq.detail"
DLQ_TOPIC: Final = "esn.dlq.source.topic"
DLQ_PARTITION: Final = "esn.dlq.source.partition"
DLQ_OFFSET: Final = "esn.dlq.source.offset"
#: Only on ``internal_error`` dead letters: the exception class, for the bug report.
DLQ_EXCEPTION: Final = "esn.dlq.exception"


@dataclass(frozen=True)
class TopicNames:
    """Resolved topic names for one deployment (``ESN_TOPIC_PREFIX`` applied)."""

    activity: str
    activity_dlq: str
    directory: str
    directory_dlq: str
    flagged: str
    communities_flagged: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        """Apply the configured prefix to every topic name."""
        prefix = settings.topic_prefix
        return cls(
            activity=prefix + ACTIVITY,
            activity_dlq=prefix + ACTIVITY_DLQ,
            directory=prefix + DIRECTORY,
            directory_dlq=prefix + DIRECTORY_DLQ,
            flagged=prefix + FLAGGED,
            communities_flagged=prefix + COMMUNITIES_FLAGGED,
        )

    def partitions(self, settings: Settings) -> dict[str, int]:
        """Partition count per topic, for creating them."""
        # The directory is co-partitioned with activity (same key, same count), so a user's
        # profile and activity land on the same partition number. DLQs see only bad records.
        return {
            self.activity: settings.activity_partitions,
            self.activity_dlq: 3,
            self.directory: settings.activity_partitions,
            self.directory_dlq: 3,
            # Flags of activity partition p are published to partition p (exactly-once resume).
            self.flagged: settings.activity_partitions,
            # One evaluator publishes community flags, in order, to a single partition.
            self.communities_flagged: 1,
        }


def dlq_headers(
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    exception: str | None = None,
) -> list[tuple[str, bytes]]:
    """Headers that say why and where a record was rejected."""
    headers = [
        (DLQ_REASON, reason.encode()),
        (DLQ_DETAIL, detail[:1000].encode("utf-8", "replace")),
        (DLQ_TOPIC, topic.encode()),
        (DLQ_PARTITION, str(partition).encode()),
        (DLQ_OFFSET, str(offset).encode()),
    ]
    if exception is not None:
        headers.append((DLQ_EXCEPTION, exception.encode("utf-8", "replace")))
    return headers
