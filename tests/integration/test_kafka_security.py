"""Kafka over SASL_SSL: a CA and broker certificate made here, SCRAM users stored at format time.

A broker of its own (LocalStack with its SASL_SSL listener, the code `make run` uses) runs beside
the session's; the worker, `esn-pulse produce` and `esn-pulse import --to-kafka` run the pipeline
through that listener only, and the fold must come out exactly as the oracle computes it. A wrong
password or an untrusted certificate is one line, promptly, never a hang and never the password.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.generator import generate_events
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.stack import LocalStack, SaslSslListener
from stream.store import RedisStore
from tests.support import (
    REPO,
    Oracle,
    WorkerProcess,
    delete_deployment_keys,
    eventually,
    free_port,
    isolated,
    settings_env,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

USER = "esn"
PASSWORD = secrets.token_hex(12)
FIXTURES = REPO / "tests" / "fixtures" / "import"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(home: Path, name: str) -> Path:
    """A throwaway CA (EC P-256); returns its certificate."""
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=home,
    )  # fmt: skip
    return home / f"{name}.crt"


def make_broker_keystore(home: Path, ca: str, password: str) -> Path:
    """The broker's key and certificate (SAN 127.0.0.1, localhost), signed by ``ca``, as PKCS12."""
    (home / "broker.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=esn-broker",
        cwd=home,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "broker.ext",
        cwd=home,
    )  # fmt: skip
    _openssl(
        "pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-name", "broker",
        "-out", "broker.p12", "-passout", f"pass:{password}",
        cwd=home,
    )  # fmt: skip
    return home / "broker.p12"


def _free_pair() -> int:
    """A port p such that p and p + 1 (the broker's controller) are both free on loopback."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports on loopback")


@dataclass(frozen=True)
class SecureKafka:
    """The SASL_SSL listener of the module's broker and the CA its certificate chains to."""

    port: int
    ca: Path
    other_ca: Path

    def settings(self, base: Settings, **overrides: Any) -> Settings:
        """``base`` pointed at the SASL_SSL listener as user ``esn`` over SCRAM-SHA-512."""
        update: dict[str, Any] = {
            "kafka_bootstrap": f"127.0.0.1:{self.port}",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": USER,
            "kafka_sasl_password": SecretStr(PASSWORD),
            "kafka_ssl_cafile": str(self.ca),
        }
        return base.model_copy(update={**update, **overrides})


@pytest.fixture(scope="module")
def secure_kafka(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureKafka]:
    """A broker with a SASL_SSL listener on the session's Kafka port + 2 (its own PLAINTEXT and
    controller listeners on free ports), SCRAM user ``esn`` added when its storage is formatted."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA: apt-get install -y openssl")
    home = tmp_path_factory.mktemp("kafka-tls")
    ca = make_ca(home, "esn-test-ca")
    other_ca = make_ca(home, "someone-elses-ca")
    store_password = secrets.token_hex(8)
    keystore = make_broker_keystore(home, "esn-test-ca", store_password)
    sasl_port = local_stack.settings.kafka_host_port[1] + 2
    root = local_stack.root / "kafka-secure"
    libs = local_stack.kafka_libs
    if libs.exists():  # the session's jars, not a second Maven download
        (root / "kafka").mkdir(parents=True, exist_ok=True)
        link = root / "kafka" / libs.name
        if not link.exists():
            link.symlink_to(libs, target_is_directory=True)
    plain = local_stack.settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{_free_pair()}", "state_dir": root}
    )
    listener = SaslSslListener(sasl_port, keystore, store_password, ((USER, PASSWORD),))
    stack = LocalStack(plain, sasl_ssl=listener)
    stack.start_kafka()  # the session's Redis serves this module too
    try:
        yield SecureKafka(sasl_port, ca, other_ca)
    finally:
        stack.down(("kafka",))
        for data in (root / "kafka").glob("data-*"):
            shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def secure(secure_kafka: SecureKafka, stack_settings: Settings) -> Iterator[Settings]:
    """Isolated settings whose every Kafka client goes through the SASL_SSL listener."""
    settings = secure_kafka.settings(isolated(stack_settings, "ks"))
    asyncio.run(ensure_topics(settings))  # the admin client over SASL_SSL too
    yield settings
    delete_deployment_keys(settings)


def esn(settings: Settings, *args: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *map(str, args)],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


class TestPipelineOverSaslSsl:
    async def test_worker_produce_and_import_fold_exactly(
        self, secure: Settings, tmp_path: Path
    ) -> None:
        """produce and import reach the worker over SASL_SSL, folded exactly; a dead letter too."""
        generated = list(generate_events(users=40, days=5, start=date(2026, 3, 1), seed=12))
        produced = tmp_path / "events.jsonl"
        produced.write_bytes(b"\n".join(jsonutil.dumps(e) for e in generated) + b"\n")
        source = FIXTURES / "activitystreams" / "as2.jsonl"
        mapped = tmp_path / "as2-mapped.jsonl"
        done = esn(
            secure, "import", "--format", "activitystreams", str(source), "--out", str(mapped)
        )
        assert done.returncode == 0, done.stderr
        imported = [json.loads(line) for line in mapped.read_text().splitlines() if line]
        assert imported, "the fixture maps to no event"

        worker = WorkerProcess(
            secure.model_copy(update={"web_port": free_port()}), tmp_path / "logs"
        )
        try:
            await worker.started()
            done = await asyncio.to_thread(esn, secure, "produce", str(produced))
            assert done.returncode == 0, done.stderr
            done = await asyncio.to_thread(
                esn, secure, "import", "--format", "activitystreams", str(source), "--to-kafka"
            )
            assert done.returncode == 0, done.stderr
            # A record the worker rejects: its dead letter is sent by the Faust app's producer.
            bad = tmp_path / "bad.jsonl"
            bad.write_text("this is not json\n")
            done = await asyncio.to_thread(esn, secure, "produce", "--no-validate", str(bad))
            assert done.returncode == 0, done.stderr
            store = RedisStore.from_settings(secure)
            try:
                await wait_fully_applied(store, secure, 120, worker.check_alive)
                await Oracle.of([*generated, *imported]).assert_matches(store)
            finally:
                await store.close()

            async def dead_letter_read() -> bool:
                done = await asyncio.to_thread(esn, secure, "dlq")
                return done.returncode == 0 and "not_json" in done.stdout

            await eventually(dead_letter_read, 60, "the dead letter, read over SASL_SSL")
        finally:
            worker.stop()
        assert PASSWORD not in worker.log_path.read_text()


class TestMechanisms:
    def test_scram_sha_256_reads_the_dead_letters(self, secure: Settings) -> None:
        """The same user over SCRAM-SHA-256: esn-pulse dlq reads the (empty) DLQ through it."""
        done = esn(secure.model_copy(update={"kafka_sasl_mechanism": "SCRAM-SHA-256"}), "dlq")
        assert (0, "") == (done.returncode, done.stderr)


class TestRefusedCredentials:
    def test_a_wrong_password_is_one_line_with_exit_1(
        self, secure: Settings, tmp_path: Path
    ) -> None:
        """produce with a wrong password says the credentials were refused, never the password."""
        wrong = "not-" + PASSWORD
        events = tmp_path / "one.jsonl"
        event = next(generate_events(users=5, days=3, start=date(2026, 3, 2)))
        events.write_bytes(jsonutil.dumps(event) + b"\n")
        done = esn(
            secure.model_copy(update={"kafka_sasl_password": SecretStr(wrong)}),
            "produce", str(events),
            timeout=60,
        )  # fmt: skip
        line = _one_line(done)
        assert ExitCode.BAD_CONFIG == done.returncode, line
        assert "refused the credentials" in line and "ESN_KAFKA_SASL_PASSWORD" in line, line
        assert wrong not in done.stderr + done.stdout and PASSWORD not in done.stderr

    def test_an_untrusted_broker_certificate_is_one_line_with_exit_1(
        self, secure: Settings, secure_kafka: SecureKafka
    ) -> None:
        """A CA file that did not sign the broker's certificate fails the TLS handshake, said so."""
        done = esn(
            secure.model_copy(update={"kafka_ssl_cafile": str(secure_kafka.other_ca)}),
            "dlq",
            timeout=60,
        )
        line = _one_line(done)
        assert ExitCode.BAD_CONFIG == done.returncode, line
        assert "TLS handshake" in line and "ESN_KAFKA_SSL_CAFILE" in line, line

    async def test_the_worker_reports_refused_credentials_and_keeps_retrying(
        self, secure: Settings, tmp_path: Path
    ) -> None:
        """The worker's /ready gives the refusal as its reason; it waits instead of exiting."""
        wrong = secure.model_copy(
            update={"kafka_sasl_password": SecretStr("wrong-password"), "web_port": free_port()}
        )
        worker = WorkerProcess(wrong, tmp_path / "logs").start()
        reasons: list[str] = []

        async def refused_on_ready() -> bool:
            status, body = await asyncio.to_thread(worker.get, "/ready")
            if status != 503:
                return False
            reasons[:] = json.loads(body)["reasons"]
            return any("refused the credentials" in reason for reason in reasons)

        try:
            await eventually(refused_on_ready, 60, "/ready naming the refusal", worker.check_alive)
            worker.check_alive()  # still waiting, not crash-looping
        finally:
            worker.stop()
        log = worker.log_path.read_text()
        assert "refused the credentials" in log and "wrong-password" not in log
        assert "Traceback" not in log


class TestReplication:
    def test_a_factor_above_the_cluster_size_is_one_line_with_exit_1(
        self, secure: Settings
    ) -> None:
        """ESN_TOPIC_REPLICATION_FACTOR=3 on a one-broker cluster is refused before the worker."""
        done = esn(
            secure.model_copy(update={"topic_replication_factor": 3, "web_port": free_port()}),
            "worker",
            timeout=120,
        )
        line = _one_line(done)
        assert ExitCode.BAD_CONFIG == done.returncode, line
        assert "ESN_TOPIC_REPLICATION_FACTOR=3" in line and "1 broker(s)" in line, line
