"""A KRaft Kafka node from Maven Central jars: fetching the jars, its java command line, its
server.properties, formatting its storage, and the check that it serves metadata.

The single-node stack (stream/stack.py) and the three-broker cluster (kafka_cluster.py) both run
their brokers through here, so both run the same jars the same way.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from stream.clients import new_admin
from stream.local.processes import StackError
from stream.local.resources import install
from stream.settings import Settings


def ensure_kafka_jars(kafka_home: Path, version: str) -> Path:
    """The directory of Kafka ``version``'s jars under ``kafka_home``, fetched by Maven once."""
    libs = kafka_home / f"libs-{version}"
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    if not shutil.which("mvn") or not shutil.which("java"):
        raise StackError(
            "Kafka needs Java 17+ and Maven: apt-get install -y openjdk-17-jre-headless maven"
        )
    staging = libs.with_suffix(".part")
    shutil.rmtree(staging, ignore_errors=True)
    # The shipped pom, copied beside the jars: Maven needs a file, the package may be a wheel.
    pom = install("kafka/pom.xml", kafka_home)
    command = [
        "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(
            "Maven could not fetch org.apache.kafka:kafka_2.13:"
            f"{version}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    staging.rename(libs)
    return libs


def java_command(
    kafka_home: Path, libs: Path, log_file: Path, heap: tuple[str, str] = ("256m", "1g")
) -> list[str]:
    """``java`` with the broker's classpath, heap (initial, maximum) and Log4j file."""
    log_config = install("kafka/log4j2.properties", kafka_home)
    return [
        "java",
        f"-Xms{heap[0]}",
        f"-Xmx{heap[1]}",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={log_config}",
        f"-Dkafka.logs.file={log_file}",
        "-cp",
        f"{libs}/*",
    ]


def node_properties(
    *,
    node_id: int,
    voters: str,
    listeners: str,
    controller_port: int,
    protocols: str,
    extra: list[str],
    data: Path,
    partitions: int,
    internal_replicas: int,
) -> str:
    """server.properties of a combined broker+controller node on loopback.

    ``voters`` is ``controller.quorum.voters``; ``extra`` lines go after the listeners;
    ``internal_replicas`` is the replication of the broker's own topics (consumer offsets,
    transaction state, share-group state), their min ISR one less (at least 1).
    """
    min_isr = max(1, internal_replicas - 1)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={listeners},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={protocols}",
            *extra,
            f"log.dirs={data}",
            f"num.partitions={partitions}",
            f"offsets.topic.replication.factor={internal_replicas}",
            "offsets.topic.num.partitions=12",
            f"transaction.state.log.replication.factor={internal_replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={internal_replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # Local nodes: no reason to delay the first consumer-group rebalance.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def format_storage(
    java: list[str], config: Path, cluster_id: str, extra: list[str] | None = None
) -> None:
    """Format the log dirs of ``config`` for ``cluster_id`` (once, before the first start)."""
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
         *(extra or [])],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def new_cluster_id() -> str:
    """A fresh Kafka cluster id: 16 random bytes in URL-safe base64 without padding.

    Never one starting with "-" (1 in 64 would): the storage tool reads ``-t -xyz`` as an
    option and refuses to format; Kafka's own Uuid.randomUuid skips those for the same reason.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


async def metadata_ok(settings: Settings) -> None:
    """Raises unless the brokers of ``settings`` serve metadata."""
    admin = new_admin(settings, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
