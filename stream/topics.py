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
#: Only on a dead letter whose key or value was cut to fit the topic: the original byte sizes.
DLQ_TRUNCATED: Final = "esn.dlq.truncated"
#: A dead letter keeps its record whole up to this size (key and value): under Kafka's default
#: 1 MB message limit with room for the headers, so what the activity topic took, the DLQ takes.
DLQ_WHOLE_BYTES: Final = 900 * 1024
#: Key and value bytes a dead letter keeps of a larger record (a too_large one).
DLQ_KEEP_BYTES: Final = 64 * 1024


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


def dead_letter_payload(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> tuple[bytes | None, bytes | None]:
    """Key and value as the DLQ keeps them: whole, or cut (and said so) when too large.

    A record over the contract's size would also be over what the DLQ topic accepts, and a dead
    letter that cannot be written would stop the partition it was meant to unblock.
    """
    sizes = (len(key or b""), len(value or b""))
    if sum(sizes) <= DLQ_WHOLE_BYTES:
        return key, value
    headers.append((DLQ_TRUNCATED, f"key={sizes[0]},value={sizes[1]}".encode()))
    return (
        key[:DLQ_KEEP_BYTES] if key is not None else None,
        value[:DLQ_KEEP_BYTES] if value is not None else None,
    )
