"""Redis over TLS (a CA and certificates made here) with an ACL user held to the key prefix.

A redis-server of its own, TLS only, client certificates required, runs beside the session's broker;
the worker and the read commands run through it as the user docs/operations/security.md defines,
and the fold must come out exactly as the oracle computes it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.generator import generate_events
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.store.connection import connection_options
from tests.support import (
    REPO,
    Oracle,
    isolated,
    keyed,
    produce_raw,
    settings_env,
    wait_fully_applied,
)

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-pw-7f3e"
ESN_PASSWORD = "esn-pw-c41b9a"
#: The ACL of docs/operations/security.md, with the deployment's prefix filled in.
ACL_RULES = (
    "reset on >{password} resetkeys ~{prefix}* resetchannels -@all +@read +@write +@connection "
    "+@transaction -@scripting +eval +evalsha +script|load +script|exists -@dangerous +info|server"
)
DOC = REPO / "docs" / "operations" / "security.md"


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA, the server's certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(home: Path) -> TlsFiles:
    """A CA (EC P-256) that signs a server certificate (IP SAN 127.0.0.1) and a client one."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=esn-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=home,
    )  # fmt: skip
    for name, usage, san in (
        ("server", "serverAuth", "subjectAltName=IP:127.0.0.1\n"),
        ("client", "clientAuth", ""),
    ):
        (home / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid\n{san}"
        )
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=esn-{name}", cwd=home)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=home,
        )  # fmt: skip
    return TlsFiles(
        home / "ca.crt", home / "server.crt", home / "server.key",
        home / "client.crt", home / "client.key",
    )  # fmt: skip


@dataclass
class TlsRedis:
    """The TLS-only redis-server and how to reach it."""

    port: int
    files: TlsFiles
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def settings(self, base: Settings, **overrides: Any) -> Settings:
        """``base`` pointed at this server as the ACL user, with every TLS file."""
        update: dict[str, Any] = {
            "redis_url": self.url,
            "redis_username": "esn",
            "redis_password": SecretStr(ESN_PASSWORD),
            "redis_tls_cafile": str(self.files.ca),
            "redis_tls_certfile": str(self.files.client_cert),
            "redis_tls_keyfile": str(self.files.client_key),
        }
        return base.model_copy(update={**update, **overrides})

    def admin(self) -> redis.Redis:
        """The default user: creates ACL users and reads the ACL log."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=ADMIN_PASSWORD,
            ssl=True,
            ssl_ca_certs=str(self.files.ca),
            ssl_certfile=str(self.files.client_cert),
            ssl_keyfile=str(self.files.client_key),
            socket_connect_timeout=2,
        )


@pytest.fixture(scope="module")
def tls_redis(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsRedis]:
    """redis-server on the session's Redis port + 1, TLS only, client certificates required."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA: apt-get install -y openssl")
    home = tmp_path_factory.mktemp("redis-tls")
    files = make_certificates(home)
    port = local_stack.settings.redis_host_port[1] + 1
    log = home / "redis.log"
    proc = subprocess.Popen(
        [
            local_stack._redis_binary(),
            "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key),
            "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "yes",
            "--requirepass", ADMIN_PASSWORD, "--save", "", "--appendonly", "no",
            "--dir", str(home),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = TlsRedis(port, files, proc, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"TLS redis-server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if server.admin().ping():
                break
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                pytest.fail(f"TLS redis-server did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    yield server
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture
def secure(tls_redis: TlsRedis, stack_settings: Settings) -> Iterator[Settings]:
    """Isolated settings on the TLS Redis as user ``esn``, whose keys are only the test's prefix."""
    settings = tls_redis.settings(isolated(stack_settings, "sec"))
    admin = tls_redis.admin()
    admin.execute_command(
        "ACL", "SETUSER", "esn",
        *ACL_RULES.format(password=ESN_PASSWORD, prefix=settings.redis_prefix).split(),
    )  # fmt: skip
    admin.execute_command("ACL", "LOG", "RESET")
    asyncio.run(ensure_topics(settings))
    yield settings
    for key in admin.scan_iter(match=settings.redis_prefix + "*", count=1000):
        admin.delete(key)
    admin.close()


def esn(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def denials(server: TlsRedis) -> list[Any]:
    """Entries of the server's ACL log (commands or keys refused to a user)."""
    return list(server.admin().execute_command("ACL", "LOG"))


class TestPipelineThroughTlsAndAcl:
    async def test_worker_and_read_commands_fold_exactly_as_the_acl_user(
        self, secure: Settings, tls_redis: TlsRedis, worker_factory: Any
    ) -> None:
        """Worker, summary, user and inactive work through TLS + ACL; state equals the oracle."""
        events = list(generate_events(users=300, days=40, start=date(2026, 3, 1), seed=12))
        worker = await worker_factory(secure).started()
        await produce_raw(secure, keyed(events))
        store = RedisStore.from_settings(secure)
        try:
            await wait_fully_applied(store, secure, 120, worker.check_alive)
            oracle = Oracle.of(events)
            await oracle.assert_matches(store)
        finally:
            await store.close()
        actor = max(oracle.counts, key=lambda user: sum(oracle.counts[user].values()))
        shown = esn(secure, "user", actor, "--json")
        assert 0 == shown.returncode, shown.stderr
        assert sum(oracle.counts[actor].values()) == jsonutil.loads(shown.stdout)["events"]
        summary = esn(secure, "summary", "--json")
        assert 0 == summary.returncode, summary.stderr
        assert jsonutil.loads(summary.stdout)
        for output in ("table", "csv", "json"):
            listed = esn(secure, "inactive", "--format", output)
            assert 0 == listed.returncode, listed.stderr
        assert [] == denials(tls_redis), "ESN Pulse needed a command or key the ACL refuses"
        worker.stop()
        log = worker.log_path.read_text()
        assert ESN_PASSWORD not in log, "the worker logged the Redis password"


class TestTheAclHoldsTheUserToItsPrefix:
    async def test_other_keys_and_dangerous_commands_are_refused(
        self, secure: Settings, tls_redis: TlsRedis
    ) -> None:
        """As the ESN user: another prefix's keys, FLUSHALL, KEYS, CONFIG, INFO (but for its
        server section) are NOPERM."""
        client = redis.Redis.from_url(secure.redis_url, **connection_options(secure))
        try:
            client.set(secure.redis_prefix + "probe", "1")
            assert client.info("server")["run_id"], "the worker's restart watch reads it"
            for command in (
                ("GET", "other:probe"),
                ("FLUSHALL",),
                ("KEYS", "*"),
                ("CONFIG", "GET", "*"),
                ("INFO",),
                ("INFO", "clients"),
                ("FUNCTION", "FLUSH"),
                ("SCRIPT", "FLUSH"),
            ):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    client.execute_command(*command)
            # A script is held to the prefix too, even for keys it builds instead of declaring.
            with pytest.raises(
                redis.exceptions.ResponseError, match=r"can.t access at least one of the keys"
            ):
                client.eval("return redis.call('GET', 'other:probe')", 0)
        finally:
            client.close()

    def test_a_key_outside_the_prefix_is_one_line_naming_the_acl(
        self, secure: Settings, tls_redis: TlsRedis
    ) -> None:
        """A deployment whose prefix the ACL does not grant gets one line, exit 1, no traceback."""
        result = esn(secure.model_copy(update={"redis_prefix": "elsewhere:"}), "summary")
        assert ExitCode.BAD_CONFIG == result.returncode, result.stderr
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr
        assert "denied a command" in result.stderr
        assert "security.md" in result.stderr


class TestClearFailures:
    def test_a_wrong_password_is_one_line_that_never_shows_it(
        self, secure: Settings, tls_redis: TlsRedis
    ) -> None:
        """Wrong password: exit 1, one line, neither password appears, even when in the URL."""
        wrong = "wrong-pw-91d0"
        for settings in (
            secure.model_copy(update={"redis_password": SecretStr(wrong)}),
            secure.model_copy(
                update={
                    "redis_url": f"rediss://esn:{wrong}@127.0.0.1:{tls_redis.port}/0",
                    "redis_username": "",
                    "redis_password": SecretStr(""),
                }
            ),
        ):
            result = esn(settings, "summary")
            assert ExitCode.BAD_CONFIG == result.returncode, result.stderr
            assert 1 == len(result.stderr.strip().splitlines()), result.stderr
            assert "refused the credentials" in result.stderr
            assert wrong not in result.stderr + result.stdout
            assert ESN_PASSWORD not in result.stderr + result.stdout

    def test_the_password_in_the_url_works_and_never_prints(
        self, secure: Settings, tls_redis: TlsRedis
    ) -> None:
        """User and password may ride in the URL; stack status shows the host, not the secret."""
        in_url = secure.model_copy(
            update={
                "redis_url": f"rediss://esn:{ESN_PASSWORD}@127.0.0.1:{tls_redis.port}/0",
                "redis_username": "",
                "redis_password": SecretStr(""),
            }
        )
        assert 0 == esn(in_url, "summary").returncode
        status = esn(in_url, "stack", "status")
        assert f"127.0.0.1:{tls_redis.port}" in status.stdout
        assert ESN_PASSWORD not in status.stdout + status.stderr
        assert ESN_PASSWORD not in repr(in_url) + str(in_url)

    def test_an_untrusted_server_certificate_is_refused(
        self, secure: Settings, tls_redis: TlsRedis
    ) -> None:
        """Without the CA (system CAs only) the server is not trusted: exit 1, one line."""
        result = esn(secure.model_copy(update={"redis_tls_cafile": ""}), "summary")
        assert ExitCode.BAD_CONFIG == result.returncode, result.stderr
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr
        assert "certificate verify failed" in result.stderr.lower()

    def test_a_tls_file_with_a_plain_url_is_a_setting_error(self, secure: Settings) -> None:
        """ESN_REDIS_TLS_CAFILE with redis:// would connect in the clear: refused, exit 1."""
        env = settings_env(secure)
        env["ESN_REDIS_URL"] = env["ESN_REDIS_URL"].replace("rediss://", "redis://")
        result = subprocess.run(
            [sys.executable, "-m", "stream.cli", "summary"],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert ExitCode.BAD_CONFIG == result.returncode, result.stderr
        assert "ESN_REDIS_TLS_CAFILE" in result.stderr


def test_the_documented_acl_is_the_one_tested() -> None:
    """docs/operations/security.md gives exactly the rules this module grants."""
    documented = ACL_RULES.format(password="<password>", prefix="esn:")
    assert documented in " ".join(DOC.read_text().split())
