"""A local Redis Cluster for tests and tries: three masters and three replicas on loopback.

Each node is the Debian ``redis-server`` with ``--cluster-enabled yes`` in a directory of its own,
with the single-node stack's persistence (AOF, fsync every second); ``redis-cli --cluster
create`` joins them. Its cluster bus listens at each port + 10000, Redis's own convention.
Administration goes through ``redis-cli`` (local tooling; the application's Redis traffic goes
through stream/store/ only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stream.local.processes import StackError, kill_pid, port_open, read_pid, spawn, stop_pid
from stream.local.redis_server import redis_command

#: How long a node may be silent before the others count it as failed. Redis's default is 15 s;
#: 3 s keeps a chaos test's failover short yet spares a loaded two-core machine false alarms.
NODE_TIMEOUT_MS = 3000
_SLOTS = 16384


@dataclass(frozen=True)
class ClusterNode:
    """One node as CLUSTER NODES reports it."""

    port: int
    node_id: str
    master: bool
    #: The node id of its master (replicas), else "-".
    master_id: str
    #: False while the others flag it failed (fail or fail?) or it is disconnected.
    healthy: bool


@dataclass(frozen=True)
class Failover:
    """A master killed and the replica that took over, with the measured time."""

    killed_port: int
    killed_pid: int
    promoted_port: int
    #: From the SIGKILL until every surviving node reports cluster_state:ok again.
    seconds: float


class LocalRedisCluster:
    """Starts, inspects, breaks and stops a local Redis Cluster on consecutive loopback ports."""

    def __init__(self, home: Path, first_port: int, masters: int = 3, replicas: int = 1) -> None:
        self.home = home.resolve()
        self.masters = masters
        self.replicas = replicas
        self.ports = [first_port + i for i in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        """ESN_REDIS_URL naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    # --- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = 60) -> float:
        """Start every node not running, create the cluster once, wait until it is whole.

        Returns the seconds it took. A node directory of an earlier run keeps its cluster
        config, so a restarted cluster comes back with its data and roles.
        """
        begun = time.monotonic()
        for port in self.ports:
            if read_pid(self._pid_file(port)) is None:
                self.start_node(port)
        for port in self.ports:
            self._wait_answers(port, begun + timeout)
        if self._info(self.ports[0]).get("cluster_slots_assigned") != str(_SLOTS):
            self._create()
        self.wait_healthy(timeout=max(1.0, begun + timeout - time.monotonic()))
        return time.monotonic() - begun

    def down(self) -> list[int]:
        """Stop every node this cluster started (SIGTERM, then SIGKILL); the ports stopped."""
        return [port for port in self.ports if stop_pid(self._pid_file(port), timeout=15)]

    def wipe(self) -> None:
        """Stop the nodes and delete their data and cluster configs (a fresh cluster next up)."""
        self.down()
        for port in self.ports:
            shutil.rmtree(self._dir(port), ignore_errors=True)

    def start_node(self, port: int) -> int:
        """Start (or restart) the node of ``port`` with its data; its pid once it listens."""
        if port not in self.ports:
            raise StackError(f"port {port} is not a node of this cluster ({self.ports})")
        if port_open("127.0.0.1", port):
            raise StackError(
                f"127.0.0.1:{port} is in use by another process; pick other cluster ports"
            )
        data = self._dir(port)
        data.mkdir(parents=True, exist_ok=True)
        extra = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica takes over however long its master was gone: a local cluster has no
            # older copy elsewhere to prefer, and a refused failover would just hang the test.
            "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip
        proc = spawn(redis_command(port, data, extra), data / "redis.log")
        self._pid_file(port).write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None:
                raise StackError(
                    f"redis-server on {port} exited with {proc.returncode}; "
                    f"see {data / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"redis-server on {port} did not listen within 30 s")
            time.sleep(0.05)
        return proc.pid

    # --- state --------------------------------------------------------------------------

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """The cluster's nodes as the node of ``port`` (default: the first answering) sees them."""
        text = self._cli(port or self._any_answering(), "CLUSTER", "NODES")
        found = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            flags = set(fields[2].split(","))
            found.append(
                ClusterNode(
                    port=int(fields[1].split("@")[0].rsplit(":", 1)[1]),
                    node_id=fields[0],
                    master="master" in flags,
                    master_id=fields[3],
                    healthy=not flags & {"fail", "fail?", "noaddr"} and fields[7] == "connected",
                )
            )
        return sorted(found, key=lambda node: node.port)

    def masters_ports(self) -> list[int]:
        """Ports of the current masters."""
        return [node.port for node in self.nodes() if node.master and node.healthy]

    def pid(self, port: int) -> int | None:
        """The pid of the node on ``port``, when this cluster started it and it runs."""
        return read_pid(self._pid_file(port))

    def wait_healthy(self, timeout: float = 60, ports: list[int] | None = None) -> None:
        """Wait until each running node says cluster_state:ok with all slots served, every
        master has its replicas and every replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        last = "no node answered"
        while time.monotonic() < deadline:
            try:
                last = self._unhealthy(ports or self._running_ports()) or ""
                if not last:
                    return
            except (subprocess.SubprocessError, StackError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise StackError(f"Redis Cluster {self.ports} not healthy within {timeout:.0f} s: {last}")

    def on_every_node(self, *command: str) -> list[str]:
        """Run ``command`` on every running node (ACLs and CONFIG are per node); the replies."""
        return [self._cli(port, *command).strip() for port in self._running_ports()]

    # --- faults -------------------------------------------------------------------------

    def kill_master(self, port: int | None = None, timeout: float = 60) -> Failover:
        """SIGKILL a master (``port``, default the first), wait for its replica's promotion and
        for every surviving node to say cluster_state:ok again; what happened and how long."""
        before = self.nodes()
        master = next((n for n in before if n.master and (port is None or n.port == port)), None)
        if master is None:
            raise StackError(f"no master on port {port} in {self.ports}")
        replicas = [n.port for n in before if n.master_id == master.node_id]
        begun = time.monotonic()
        pid = kill_pid(self._pid_file(master.port))
        if pid is None:
            raise StackError(f"the master on {master.port} is not a node this cluster started")
        survivors = [p for p in self._running_ports() if p != master.port]
        deadline = begun + timeout
        promoted = None
        while promoted is None and time.monotonic() < deadline:
            try:
                now = {n.port: n for n in self.nodes(survivors[0])}
                promoted = next(
                    (p for p in replicas if now.get(p) and now[p].master and now[p].healthy),
                    None,
                )
            except subprocess.SubprocessError:
                pass  # a node busy mid-failover: ask again
            if promoted is None:
                time.sleep(0.05)
        if promoted is None:
            raise StackError(
                f"no replica of {master.port} ({replicas}) took over within {timeout:.0f} s"
            )
        self._wait_state_ok(survivors, deadline)
        return Failover(master.port, pid, promoted, time.monotonic() - begun)

    def send_signal(self, port: int, sig: signal.Signals) -> int:
        """Send ``sig`` to the node of ``port`` (SIGSTOP/SIGCONT drills); its pid."""
        pid = read_pid(self._pid_file(port))
        if pid is None:
            raise StackError(f"no node of this cluster runs on {port}")
        os.kill(pid, sig)
        return pid

    # --- internals ----------------------------------------------------------------------

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            [_redis_cli(), "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(
                "redis-cli --cluster create failed (a node with old data? remove "
                f"{self.home}): {(result.stdout + result.stderr)[-1500:]}"
            )

    def _unhealthy(self, ports: list[int]) -> str | None:
        """Why the nodes of ``ports`` are not a whole cluster yet, or None."""
        for port in ports:
            info = self._info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(_SLOTS):
                return f"{port}: cluster_state {info.get('cluster_state')}"
        nodes = [n for n in self.nodes(ports[0]) if n.port in ports]
        masters = [n for n in nodes if n.master and n.healthy]
        if len(masters) != self.masters:
            return f"{len(masters)} healthy masters, {self.masters} wanted"
        for master in masters:
            own = [n for n in nodes if n.master_id == master.node_id and n.healthy]
            if len(own) < self.replicas and len(ports) == len(self.ports):
                return f"master {master.port} has {len(own)} replicas"
        for node in nodes:
            if not node.master:
                link = self._info(node.port, "replication").get("master_link_status")
                if link != "up":
                    return f"replica {node.port}: master link {link}"
        return None

    def _wait_state_ok(self, ports: list[int], deadline: float) -> None:
        _poll(
            lambda: all(self._info(p).get("cluster_state") == "ok" for p in ports),
            deadline,
            f"Redis Cluster nodes {ports} not back to cluster_state:ok",
        )

    def _wait_answers(self, port: int, deadline: float) -> None:
        _poll(
            lambda: self._cli(port, "PING").strip() == "PONG",
            deadline,
            f"Redis Cluster node {port} did not answer PING",
        )

    def _info(self, port: int, section: str = "") -> dict[str, str]:
        command = ["INFO", section] if section else ["CLUSTER", "INFO"]
        pairs = (line.partition(":") for line in self._cli(port, *command).splitlines())
        return {key.strip(): value.strip() for key, sep, value in pairs if sep}

    def _cli(self, port: int, *command: str) -> str:
        result = subprocess.run(
            [_redis_cli(), "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        if result.stdout.startswith(("ERR", "LOADING", "Could not connect")):
            raise subprocess.SubprocessError(f"{port}: {result.stdout.strip()}")
        return result.stdout

    def _any_answering(self) -> int:
        for port in self._running_ports():
            if port_open("127.0.0.1", port):
                return port
        raise StackError(f"no node of the Redis Cluster {self.ports} answers")

    def _running_ports(self) -> list[int]:
        return [port for port in self.ports if read_pid(self._pid_file(port)) is not None]

    def _dir(self, port: int) -> Path:
        return self.home / f"node-{port}"

    def _pid_file(self, port: int) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home / f"redis-{port}.pid"


def _redis_cli() -> str:
    found = shutil.which("redis-cli")
    if not found:
        raise StackError("redis-cli is missing: run  sudo apt-get install -y redis-tools")
    return found


def _poll(condition: Callable[[], bool], deadline: float, failure: str) -> None:
    """Until ``condition()`` (a redis-cli call failing counts as not yet) or the deadline."""
    while True:
        try:
            if condition():
                return
        except subprocess.SubprocessError:
            pass
        if time.monotonic() > deadline:
            raise StackError(failure)
        time.sleep(0.05)
