"""The local stack without Docker: a KRaft Kafka broker from Maven Central jars and Redis.

Used by ``esn-pulse stack``, ``make run`` and the test fixtures alike. A service whose configured
address already answers is left alone: only what is missing on loopback is started.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from stream.cli_errors import redact_url
from stream.clients import new_admin
from stream.kafka_admin import ensure_topics
from stream.local.resources import install
from stream.settings import Settings
from stream.store.connection import connection_options

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class StackError(RuntimeError):
    """A local service could not be provided; the message says what to do."""


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


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
        """True when the configured broker accepts connections."""
        return port_open(*self.settings.kafka_host_port)

    def redis_up(self) -> bool:
        """True when the configured Redis answers PING."""
        try:
            client = redis.Redis.from_url(
                self.settings.redis_url,
                **connection_options(self.settings),
                socket_connect_timeout=0.5,
            )
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
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
        marker = self.kafka_libs / f"kafka_2.13-{self.settings.kafka_version}.jar"
        if marker.exists():
            return
        if not shutil.which("mvn") or not shutil.which("java"):
            raise StackError(
                "Kafka needs Java 17+ and Maven: apt-get install -y openjdk-17-jre-headless maven"
            )
        staging = self.kafka_libs.with_suffix(".part")
        shutil.rmtree(staging, ignore_errors=True)
        # The shipped pom, copied beside the jars: Maven needs a file, the package may be a wheel.
        pom = install("kafka/pom.xml", self.kafka_home)
        command = [
            "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies",
            f"-Dkafka.version={self.settings.kafka_version}",
            f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                "Maven could not fetch org.apache.kafka:kafka_2.13:"
                f"{self.settings.kafka_version}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        staging.rename(self.kafka_libs)

    def _write_kafka_config(self) -> Path:
        host, port = self.settings.kafka_host_port
        if host not in _LOOPBACK:
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
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                    f"listeners={listeners},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners={listeners}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={protocols}",
                    *secure,
                    f"log.dirs={data}",
                    f"num.partitions={self.settings.activity_partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=12",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    # A single local node: no reason to delay the first consumer-group rebalance.
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            cluster_id = str(uuid.uuid4())
            subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "format", "-t",
                 _kafka_cluster_id(cluster_id), "-c", str(config),
                 *(self.sasl_ssl.format_arguments() if self.sasl_ssl else [])],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        return config

    def _java(self) -> list[str]:
        log_file = self.kafka_home / "server.log"
        log_config = install("kafka/log4j2.properties", self.kafka_home)
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.file={log_file}",
            "-cp",
            f"{self.kafka_libs}/*",
        ]

    def _start_kafka(self, timeout: float = 90) -> None:
        self.kafka_home.mkdir(parents=True, exist_ok=True)
        self._ensure_kafka_jars()
        config = self._write_kafka_config()
        out = (self.kafka_home / "stdout.log").open("ab")
        proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
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
                asyncio.run(_kafka_metadata_ok(self.settings))
                if self.sasl_ssl and not port_open("127.0.0.1", self.sasl_ssl.port):
                    raise StackError(f"SASL_SSL listener {self.sasl_ssl.port} not open yet")
                return
            except Exception as exc:  # any failure means "not yet": retry until the deadline
                last_error = exc
                time.sleep(0.5)
        raise StackError(f"Kafka at {self.settings.kafka_bootstrap} not ready: {last_error}")

    # --- Redis --------------------------------------------------------------------------

    def _redis_binary(self) -> str:
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if found:
            return found
        if os.geteuid() == 0 and shutil.which("apt-get"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)
            return "/usr/bin/redis-server"
        raise StackError("redis-server is missing: run  sudo apt-get install -y redis-server")

    def _start_redis(self) -> None:
        host, port = self.settings.redis_host_port
        if host not in _LOOPBACK:
            raise StackError(
                f"Redis at {redact_url(self.settings.redis_url)} does not answer; a local "
                "Redis is only "
                "started on loopback."
            )
        self.redis_home.mkdir(parents=True, exist_ok=True)
        data = self.redis_home / f"data-{port}"
        data.mkdir(exist_ok=True)
        out = (self.redis_home / f"redis-{port}.log").open("ab")
        proc = subprocess.Popen(
            [
                self._redis_binary(),
                "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
                # Append-only with an fsync a second: a restart keeps state, losing at most
                # a second, which the offset fences then replay from Kafka.
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--daemonize", "no", "--protected-mode", "yes",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self._pid_file("redis").write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while not self.redis_up():
            if proc.poll() is not None:
                raise StackError(f"redis-server exited with {proc.returncode}; see {out.name}")
            if time.monotonic() > deadline:
                raise StackError("redis-server did not answer PING within 30 s")
            time.sleep(0.1)

    # --- pid files ----------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{name}.pid"

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def _stop_pid(self, path: Path, timeout: float) -> bool:
        pid = self._read_pid(path)
        path.unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
        return True

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        """Wait for ``pid`` to exit (reaping it when it is our child); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return True
            except ChildProcessError:
                pass  # not our child (started by an earlier command): poll it instead
            try:
                os.kill(pid, 0)
            except OSError:
                return True
            time.sleep(0.2)
        return False


def _kafka_cluster_id(seed: str) -> str:
    """Kafka's cluster ids are 16 bytes in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.UUID(seed).bytes).decode().rstrip("=")


async def _kafka_metadata_ok(settings: Settings) -> None:
    admin = new_admin(settings, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
