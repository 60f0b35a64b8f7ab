"""The Kafka ACLs of docs/operations/security.md name every topic, group and transactional id."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stream.flags.publisher import FlagPublisher
from stream.rebuild import groups_of
from stream.settings import Settings
from stream.topics import TopicNames

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations" / "security.md"


def acl_lines() -> list[str]:
    """The documented ``kafka-acls.sh`` command lines."""
    return [line for line in DOC.read_text().splitlines() if line.startswith("kafka-acls.sh ")]


def granted(operation: str, resource: str, name: str) -> bool:
    """True when one documented line grants ``operation`` on ``--resource name``."""
    return any(
        f"--operation {operation} " in line + " " and f"--{resource} {name} " in line + " "
        for line in acl_lines()
    )


class TestKafkaAclDoc:
    def test_every_topic_has_its_operations(self) -> None:
        """Read and Write where the pipeline reads and writes, Create for the worker's creation."""
        topics = TopicNames.from_settings(Settings())
        wanted = {
            topics.activity: ("Read", "Write", "Describe", "Create"),
            topics.directory: ("Read", "Write", "Describe", "Create"),
            topics.activity_dlq: ("Write", "Read", "Describe", "Create"),
            topics.directory_dlq: ("Write", "Read", "Describe", "Create"),
            topics.flagged: ("Write", "Read", "Describe", "Create"),
            topics.communities_flagged: ("Write", "Read", "Describe", "Create"),
        }
        missing = [
            (topic, op) for topic, ops in wanted.items() for op in ops
            if not granted(op, "topic", topic)
        ]  # fmt: skip
        assert [] == missing

    def test_every_consumer_group_and_the_transactional_ids(self) -> None:
        """The ingest's and Faust's groups, and the flag publisher's transactional id prefix."""
        settings = Settings()
        for group in groups_of(settings):
            assert granted("Read", "group", group), group
        prefix = f"{settings.app_id}-flags-"
        flagged = TopicNames.from_settings(settings).flagged
        publisher: Any = SimpleNamespace(settings=settings, topic=flagged)
        assert FlagPublisher.transactional_id(publisher, 3).startswith(prefix)
        assert granted("Write", "transactional-id", prefix)
        assert any("--resource-pattern-type prefixed" in line for line in acl_lines())
