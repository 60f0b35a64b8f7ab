"""A local three-broker KRaft Kafka cluster, from the same Maven jars as the single-node stack.

Each node is a combined broker+controller on loopback (broker at ``first_port + 2i``, its
controller one above), the three controllers one quorum of three voters, all formatted with one
cluster id. Replication is production-like: topics default to three replicas with
``min.insync.replicas=2``, and so do the broker's own topics (consumer offsets, transaction
state), so one broker can die without losing an acknowledged record or stopping writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from stream.clients import new_admin
from stream.local import kafka_runtime
from stream.local.processes import StackError, kill_pid, port_open, read_pid, spawn, wait_gone
from stream.settings import Settings

#: Each node's heap: three brokers share the machine with the tests (the single node has 1 GB).
_HEAP = ("128m", "512m")


class LocalKafkaCluster:
    """Starts, breaks, restarts and stops a local three-broker Kafka cluster."""

    def __init__(
        self,
        home: Path,
        first_port: int,
        kafka_version: str,
        *,
        jars_home: Path | None = None,
        brokers: int = 3,
        partitions: int = 12,
    ) -> None:
        self.home = home.resolve()
        #: Where the jars live: by default beside the single-node stack's, fetched once for both.
        self.jars_home = (jars_home or self.home.parent / "kafka").resolve()
        self.kafka_version = kafka_version
        self.partitions = partitions
        self.node_ids = list(range(1, brokers + 1))
        self._first_port = first_port

    # --- addresses ----------------------------------------------------------------------

    def broker_port(self, node_id: int) -> int:
        """The client (PLAINTEXT) port of broker ``node_id``."""
        return self._first_port + 2 * (node_id - 1)

    def controller_port(self, node_id: int) -> int:
        """The controller (quorum) port of node ``node_id``."""
        return self.broker_port(node_id) + 1

    @property
    def bootstrap(self) -> str:
        """ESN_KAFKA_BOOTSTRAP naming every broker."""
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in self.node_ids)

    def settings(self, base: Settings) -> Settings:
        """``base`` pointed at this cluster."""
        return base.model_copy(update={"kafka_bootstrap": self.bootstrap})

    # --- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = 180) -> float:
        """Start every node not running (formatting new ones), wait until all brokers serve;
        the seconds it took."""
        begun = time.monotonic()
        libs = kafka_runtime.ensure_kafka_jars(self.jars_home, self.kafka_version)
        cluster_id = self._cluster_id()
        for node_id in self.node_ids:
            if self.pid(node_id) is None:
                self._spawn(node_id, libs, cluster_id)
        self.wait_ready(timeout=max(1.0, begun + timeout - time.monotonic()))
        return time.monotonic() - begun

    def down(self, timeout: float = 30) -> list[int]:
        """Stop every node this cluster started, all at once (SIGTERM, SIGKILL after
        ``timeout``); the ids stopped.

        One at a time, the last node would wait out its timeout: with two voters gone its
        controlled shutdown finds no quorum to report to."""
        pids = {n: read_pid(self._pid_file(n)) for n in self.node_ids}
        running = {n: pid for n, pid in pids.items() if pid is not None}
        for node_id, pid in running.items():
            self._pid_file(node_id).unlink(missing_ok=True)
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in running.values():
            if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
        return sorted(running)

    def wipe(self) -> None:
        """Stop the nodes and delete their logs and the cluster id (a fresh cluster next up)."""
        self.down()
        for node_id in self.node_ids:
            shutil.rmtree(self._dir(node_id), ignore_errors=True)
        (self.home / "cluster.id").unlink(missing_ok=True)

    def kill_broker(self, node_id: int) -> int:
        """SIGKILL node ``node_id`` and wait until it is gone; its pid."""
        pid = kill_pid(self._pid_file(node_id))
        if pid is None:
            raise StackError(f"Kafka node {node_id} is not running (or not ours)")
        return pid

    def start_broker(self, node_id: int, timeout: float = 180) -> float:
        """(Re)start node ``node_id`` with its logs; wait until the cluster has every broker
        again and no partition is under-replicated. The seconds it took."""
        begun = time.monotonic()
        libs = kafka_runtime.ensure_kafka_jars(self.jars_home, self.kafka_version)
        self._spawn(node_id, libs, self._cluster_id())
        self.wait_ready(timeout=timeout)
        self.wait_fully_replicated(timeout=max(1.0, begun + timeout - time.monotonic()))
        return time.monotonic() - begun

    def pid(self, node_id: int) -> int | None:
        """The pid of node ``node_id`` when this cluster started it and it runs."""
        return read_pid(self._pid_file(node_id))

    # --- waiting ------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait until every running node serves metadata itself, each listing all of them.

        Each is asked on its own: the others may still list a node just SIGKILLed (until its
        session times out), which says nothing about the restarted process."""
        running = [n for n in self.node_ids if self.pid(n) is not None]
        deadline = time.monotonic() + timeout
        last: Exception | str = "not tried"
        waiting = list(running)
        while time.monotonic() < deadline:
            try:
                node_id = waiting[0]
                brokers = asyncio.run(_broker_ids(f"127.0.0.1:{self.broker_port(node_id)}"))
                if set(running) <= brokers:
                    waiting.pop(0)
                    if not waiting:
                        return
                    continue
                last = f"node {node_id} lists brokers {sorted(brokers)}, {running} wanted"
            except Exception as exc:  # any failure means "not yet": retry until the deadline
                last = exc
            time.sleep(0.5)
        raise StackError(
            f"Kafka cluster {self.bootstrap} not ready within {timeout:.0f} s: {last}; "
            f"see {self.home}/node-*/server.log"
        )

    def wait_fully_replicated(self, timeout: float = 120) -> None:
        """Wait until every partition of every topic has all its replicas in sync."""
        deadline = time.monotonic() + timeout
        last: Exception | str = "not tried"
        while time.monotonic() < deadline:
            try:
                lagging = asyncio.run(_under_replicated(self.bootstrap))
                if not lagging:
                    return
                last = f"under-replicated: {lagging[:5]}"
            except Exception as exc:  # a broker still starting: ask again
                last = exc
            time.sleep(0.5)
        raise StackError(f"Kafka cluster {self.bootstrap} still under-replicated: {last}")

    # --- internals ----------------------------------------------------------------------

    def _spawn(self, node_id: int, libs: Path, cluster_id: str) -> None:
        port = self.broker_port(node_id)
        if port_open("127.0.0.1", port) or port_open("127.0.0.1", self.controller_port(node_id)):
            raise StackError(
                f"127.0.0.1:{port} (or its controller port) is in use by another process; pick "
                "other Kafka cluster ports"
            )
        node = self._dir(node_id)
        java = kafka_runtime.java_command(self.jars_home, libs, node / "server.log", _HEAP)
        config = self._write_config(node_id)
        if not (node / "data" / "meta.properties").exists():
            kafka_runtime.format_storage(java, config, cluster_id)
        proc = spawn([*java, "kafka.Kafka", str(config)], node / "stdout.log")
        self._pid_file(node_id).write_text(str(proc.pid))

    def _write_config(self, node_id: int) -> Path:
        node = self._dir(node_id)
        node.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n}@127.0.0.1:{self.controller_port(n)}" for n in self.node_ids)
        replicas = len(self.node_ids)
        min_insync = max(1, replicas - 1)
        config = node / "server.properties"
        config.write_text(
            kafka_runtime.node_properties(
                node_id=node_id,
                voters=voters,
                listeners=f"PLAINTEXT://127.0.0.1:{self.broker_port(node_id)}",
                controller_port=self.controller_port(node_id),
                protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                extra=[
                    "inter.broker.listener.name=PLAINTEXT",
                    # Auto-created topics get what ESN Pulse's own topics get.
                    f"default.replication.factor={replicas}",
                    f"min.insync.replicas={min_insync}",
                    # Never elect a replica that missed acknowledged writes.
                    "unclean.leader.election.enable=false",
                ],
                data=node / "data",
                partitions=self.partitions,
                internal_replicas=replicas,
            )
        )
        return config

    def _cluster_id(self) -> str:
        """The cluster's id, made once and kept beside the nodes: every node is formatted
        with it, and a node restarted later must match the others."""
        path = self.home / "cluster.id"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(kafka_runtime.new_cluster_id())
        return path.read_text().strip()

    def _dir(self, node_id: int) -> Path:
        return self.home / f"node-{node_id}"

    def _pid_file(self, node_id: int) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home / f"kafka-{node_id}.pid"


async def _broker_ids(bootstrap: str) -> set[int]:
    admin = new_admin(_plaintext(bootstrap), request_timeout_ms=5000)
    await admin.start()
    try:
        cluster: dict[str, Any] = await admin.describe_cluster()
        return {int(broker["node_id"]) for broker in cluster["brokers"]}
    finally:
        await admin.close()


async def _under_replicated(bootstrap: str) -> list[str]:
    """``topic/partition`` of each partition whose ISR is smaller than its replica set."""
    admin = new_admin(_plaintext(bootstrap), request_timeout_ms=5000)
    await admin.start()
    try:
        topics = await admin.list_topics()
        described: list[Any] = await admin.describe_topics(list(topics)) if topics else []
        return [
            f"{topic['topic']}/{p['partition']}"
            for topic in described
            for p in topic["partitions"]
            if len(p["isr"]) < len(p["replicas"]) or p["leader"] < 0
        ]
    finally:
        await admin.close()


def _plaintext(bootstrap: str) -> Settings:
    """Settings of only this cluster's address: its nodes speak PLAINTEXT on loopback, whatever
    the environment's ESN_* variables say."""
    return Settings.model_construct(kafka_bootstrap=bootstrap)
