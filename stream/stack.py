"""The local stack without Docker: a KRaft Kafka broker from Maven Central jars and Redis.

Used by ``esn-pulse stack``, ``make run`` and the test fixtures alike. A service whose configured
address already answers is left alone: only what is missing on loopback is started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisClusterException, RedisError

from stream.cli_errors import redact_url
from stream.kafka_admin import ensure_topics
from stream.local import kafka_runtime
from stream.local.processes import (
    LOOPBACK,
    StackError,
    port_open,
    read_pid,
    spawn,
    stop_pid,
    wait_gone,
)
from stream.local.redis_server import redis_binary, redis_command
from stream.redis_url import parse_redis_url
from stream.settings import Settings
from stream.store.connection import redis_client

__all__ = ["LocalStack", "SaslSslListener", "ServiceStatus", "StackError", "port_open"]


@dataclass(frozen=True)
class ServiceStatus:
    """Whether one service answers, and whether this stack started it."""

    name: str
    address: str
    up: bool
    managed_pid: int | None


@dataclass(frozen=True)
class SaslSslListener:
    """An extra SASL_SSL listener on the local broker, with SCRAM users made at format time.

    The broker's own traffic (controller, inter-broker) stays PLAINTEXT on loopback; clients
    pointed at this port must speak TLS and authenticate as one of ``scram_users``.
    """

    port: int
    #: PKCS12 keystore holding the broker's key and certificate (signed by the clients' CA).
    keystore: Path
    keystore_password: str
    #: (name, password): each gets SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
    scram_users: tuple[tuple[str, str], ...]

    def properties(self) -> list[str]:
        """server.properties lines enabling this listener."""
        prefix = "listener.name.sasl_ssl"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            "inter.broker.listener.name=PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256",
            f"{prefix}.scram-sha-512.sasl.jaas.config={scram}",
            f"{prefix}.scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}.ssl.keystore.type=PKCS12",
            f"{prefix}.ssl.keystore.location={self.keystore}",
            f"{prefix}.ssl.keystore.password={self.keystore_password}",
        ]

    def format_arguments(self) -> list[str]:
        """kafka-storage format options that store the SCRAM credentials before first start."""
        return [
            argument
            for name, password in self.scram_users
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]


class LocalStack:
    """Starts, checks and stops the local Kafka and Redis for one settings object."""

    def __init__(self, settings: Settings, sasl_ssl: SaslSslListener | None = None) -> None:
        self.settings = settings
        self.sasl_ssl = sasl_ssl
        self.root = settings.state_dir.resolve()
        self.kafka_home = self.root / "kafka"
        self.kafka_libs = self.kafka_home / f"libs-{settings.kafka_version}"
        self.redis_home = self.root / "redis"

    # --- public -------------------------------------------------------------------------

    def up(self, *, create_topics: bool = True) -> list[str]:
        """Start whatever is not already answering; returns the names of what was started."""
        started = []
        if not self.kafka_up():
            self._start_kafka()
            started.append("kafka")
        if not self.redis_up():
            self._start_redis()
            started.append("redis")
        self._wait_kafka_ready(timeout=90)
        if create_topics:
            asyncio.run(ensure_topics(self.settings))
        return started

    def down(self, names: tuple[str, ...] = ("kafka", "redis")) -> list[str]:
        """Stop the services this stack started (by pid file); returns what was stopped."""
        stopped = []
        for name in names:
            if self._stop_pid(self._pid_file(name), timeout=60 if name == "kafka" else 15):
                stopped.append(name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Reachability of each configured service and the pid of ours, if any."""
        kafka_host, kafka_port = self.settings.kafka_host_port
        redis_host, redis_port = self.settings.redis_host_port
        return [
            ServiceStatus(
                "kafka",
                f"{kafka_host}:{kafka_port}",
                self.kafka_up(),
                self._read_pid(self._pid_file("kafka")),
            ),
            ServiceStatus(
                "redis",
                f"{redis_host}:{redis_port}",
                self.redis_up(),
                self._read_pid(self._pid_file("redis")),
            ),
        ]

    def kafka_up(self) -> bool:
        """True when the configured broker (any broker of a bootstrap list) accepts connections."""
        return any(port_open(host, port) for host, port in self._bootstrap_servers())

    def _bootstrap_servers(self) -> list[tuple[str, int]]:
        servers = []
        for entry in self.settings.kafka_bootstrap.split(","):
            host, _, port = entry.strip().rpartition(":")
            servers.append((host or "127.0.0.1", int(port)))
        return servers

    def redis_up(self) -> bool:
        """True when the configured Redis (a server, or a cluster's nodes) answers PING."""
        try:
            return asyncio.run(_redis_ping(self.settings))
        except (RedisError, RedisClusterException, OSError, TimeoutError):
            return False

    def stop_redis(self) -> bool:
        """Stop the Redis this stack started (outage drills); False when it is not ours."""
        return self._stop_pid(self._pid_file("redis"), timeout=15)

    def start_redis(self) -> None:
        """Start the local Redis on its configured port, with its existing data."""
        self._start_redis()

    def start_kafka(self, timeout: float = 300) -> None:
        """Start the local broker on its configured port with its log dirs; wait until it serves.

        After a SIGKILL the broker recovers every partition's log before it listens: on a broker
        holding many topics that takes minutes, hence the longer default."""
        self._start_kafka(timeout)
        self._wait_kafka_ready(timeout=timeout)

    def send_signal(self, name: str, sig: signal.Signals) -> int | None:
        """Send ``sig`` to the service this stack started (fault drills); its pid, or None when
        it is not ours. After SIGKILL, returns once the process is gone."""
        path = self._pid_file(name)
        pid = self._read_pid(path)
        if pid is None:
            return None
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            path.unlink(missing_ok=True)
            self._wait_gone(pid, timeout=30)
        return pid

    # --- Kafka --------------------------------------------------------------------------

    def _ensure_kafka_jars(self) -> None:
        kafka_runtime.ensure_kafka_jars(self.kafka_home, self.settings.kafka_version)

    def _write_kafka_config(self) -> Path:
        host, port = self.settings.kafka_host_port
        if host not in LOOPBACK:
            raise StackError(
                f"ESN_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap} does not answer, and a "
                "local broker is only started on loopback: start that broker or point the "
                "setting at 127.0.0.1."
            )
        controller_port = port + 1
        data = self.kafka_home / f"data-{port}"
        config = self.kafka_home / f"server-{port}.properties"
        listeners = f"PLAINTEXT://127.0.0.1:{port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        secure = self.sasl_ssl.properties() if self.sasl_ssl else []
        if self.sasl_ssl:
            listeners += f",SASL_SSL://127.0.0.1:{self.sasl_ssl.port}"
            protocols += ",SASL_SSL:SASL_SSL"
        config.write_text(
            kafka_runtime.node_properties(
                node_id=1,
                voters=f"1@127.0.0.1:{controller_port}",
                listeners=listeners,
                controller_port=controller_port,
                protocols=protocols,
                extra=secure,
                data=data,
                partitions=self.settings.activity_partitions,
                internal_replicas=1,
            )
        )
        if not (data / "meta.properties").exists():
            kafka_runtime.format_storage(
                self._java(),
                config,
                kafka_runtime.new_cluster_id(),
                self.sasl_ssl.format_arguments() if self.sasl_ssl else [],
            )
        return config

    def _java(self) -> list[str]:
        return kafka_runtime.java_command(
            self.kafka_home, self.kafka_libs, self.kafka_home / "server.log"
        )

    def _start_kafka(self, timeout: float = 90) -> None:
        if len(self._bootstrap_servers()) > 1:
            # A list names a cluster: a lone broker on its first port would be a cluster of its
            # own that clients mistake for it.
            raise StackError(
                f"no broker of ESN_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap} answers; "
                "stack up starts a single broker only (docs/operations/cluster.md starts a local "
                "cluster)"
            )
        self.kafka_home.mkdir(parents=True, exist_ok=True)
        self._ensure_kafka_jars()
        config = self._write_kafka_config()
        proc = spawn([*self._java(), "kafka.Kafka", str(config)], self.kafka_home / "stdout.log")
        self._pid_file("kafka").write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not self.kafka_up():
            if proc.poll() is not None:
                raise StackError(
                    f"Kafka exited with {proc.returncode}; see {self.kafka_home / 'server.log'}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"Kafka did not listen within {timeout:.0f} s; see {self.kafka_home}"
                )
            time.sleep(0.3)

    def _wait_kafka_ready(self, timeout: float) -> None:
        """Wait until the broker serves metadata (listening is not yet ready)."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                asyncio.run(kafka_runtime.metadata_ok(self.settings))
                if self.sasl_ssl and not port_open("127.0.0.1", self.sasl_ssl.port):
                    raise StackError(f"SASL_SSL listener {self.sasl_ssl.port} not open yet")
                return
            except Exception as exc:  # any failure means "not yet": retry until the deadline
                last_error = exc
                time.sleep(0.5)
        raise StackError(f"Kafka at {self.settings.kafka_bootstrap} not ready: {last_error}")

    # --- Redis --------------------------------------------------------------------------

    @staticmethod
    def _redis_binary() -> str:
        return redis_binary()

    def _start_redis(self) -> None:
        if parse_redis_url(self.settings.redis_url).cluster:
            raise StackError(
                f"Redis Cluster at {redact_url(self.settings.redis_url)} does not answer; "
                "stack up starts a single Redis only (docs/operations/cluster.md starts a local "
                "cluster)"
            )
        host, port = self.settings.redis_host_port
        if host not in LOOPBACK:
            raise StackError(
                f"Redis at {redact_url(self.settings.redis_url)} does not answer; a local "
                "Redis is only "
                "started on loopback."
            )
        self.redis_home.mkdir(parents=True, exist_ok=True)
        data = self.redis_home / f"data-{port}"
        data.mkdir(exist_ok=True)
        log = self.redis_home / f"redis-{port}.log"
        proc = spawn(redis_command(port, data), log)
        self._pid_file("redis").write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while not self.redis_up():
            if proc.poll() is not None:
                raise StackError(f"redis-server exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise StackError("redis-server did not answer PING within 30 s")
            time.sleep(0.1)

    # --- pid files ----------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{name}.pid"

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        return read_pid(path)

    @staticmethod
    def _stop_pid(path: Path, timeout: float) -> bool:
        return stop_pid(path, timeout)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        return wait_gone(pid, timeout)


async def _redis_ping(settings: Settings) -> bool:
    client = redis_client(settings, socket_connect_timeout=0.5)
    try:
        # Bounded: a cluster client tries each seed in turn and retries before it gives up.
        return bool(await asyncio.wait_for(client.ping(), 5))
    finally:
        await client.aclose()
