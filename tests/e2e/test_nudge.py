"""The nudge service end to end: real Kafka and Redis (the session's stack), a real SMTP server
with STARTTLS and AUTH, a real webhook receiver, and ``esn-pulse nudge`` as a subprocess that
is SIGKILLed mid-send."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream import jsonutil
from stream.privacy import pseudonymizer
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore
from stream.topics import TopicNames
from tests.api_support import ApiProcess, make_token
from tests.chromium import open_page
from tests.nudge_servers import SMTP_PASSWORD, SMTP_USER, SmtpInbox, WebhookInbox, servers
from tests.support import (
    REPO,
    delete_deployment_keys,
    eventually,
    free_port,
    produce_raw,
    settings_env,
)

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def profile(user: str, **fields: Any) -> tuple[bytes, bytes]:
    doc = {
        "kind": "profile",
        "user_id": user,
        "status": "enabled",
        "created": iso(NOW - timedelta(days=400)),
        "updated": iso(NOW - timedelta(minutes=5)),
        **fields,
    }
    return user.encode(), jsonutil.dumps(doc)


def flag(user: str, kind: str, threshold: str | None = None, **extra: Any) -> tuple[bytes, bytes]:
    """A flagged-user record as stream/flags/records.py publishes it."""
    at = NOW - timedelta(minutes=1)
    last_seen = None if kind == "never_active" else iso(NOW - timedelta(days=31))
    doc: dict[str, Any] = {
        "schema": "esn.users.flagged.v1",
        "kind": kind,
        "user_id": user,
        "at": iso(at),
        "last_seen": last_seen,
        "created": iso(NOW - timedelta(days=400)),
        "department": "Sales",
        "communities": {"owner": ["c-sales"], "member": ["c-crm"], "follower": []},
        "event_id": f"{user}:{kind}:{threshold or ''}:{int(at.timestamp() * 1000)}",
        **extra,
    }
    if threshold:
        doc["threshold"] = threshold
    return user.encode(), jsonutil.dumps(doc)


RULES = """
window = "14d"
hold = "{hold}"
max_age = "2d"
opt_out_file = "opt-out.txt"
[links]
training = "https://intranet.example.com/start"
[retry]
attempts = 3
backoff = "1s"
[channels.email]
type = "email"
[channels.hr]
type = "webhook"
url = "{url}"
daily_cap = 2
idempotent = true
[[rules]]
kind = "inactive"
channels = ["email"]
[[rules]]
kind = "never_active"
channels = ["email", "hr"]
[[rules]]
kind = "at_risk"
channels = ["email"]
template = "inactive"
"""


class NudgeProcess:
    """``esn-pulse nudge`` as a real subprocess (so SIGKILL is real)."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "nudge", *args],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"nudge exited {self.proc.returncode}: {self.log.read_text()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture(scope="module")
def inboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SmtpInbox, WebhookInbox]]:
    yield from servers(tmp_path_factory.mktemp("smtp"))


@pytest.fixture
def nudge_env(
    settings: Settings, inboxes: tuple[SmtpInbox, WebhookInbox], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """A rules folder, the environment of a nudge process, and its cleanup."""
    smtp, hooks = inboxes
    (tmp_path / "opt-out.txt").write_text("# works council list\nu-c\n")
    metrics_port = free_port()
    env = settings_env(settings) | {
        "ESN_NUDGE_RULES_FILE": str(tmp_path / "rules.toml"),
        "ESN_NUDGE_SMTP_HOST": "127.0.0.1",
        "ESN_NUDGE_SMTP_PORT": str(smtp.port),
        "ESN_NUDGE_SMTP_TLS_CAFILE": str(smtp.cafile),
        "ESN_NUDGE_SMTP_USERNAME": SMTP_USER,
        "ESN_NUDGE_SMTP_PASSWORD": SMTP_PASSWORD,
        "ESN_NUDGE_SMTP_FROM": "pulse@example.com",
        "ESN_NUDGE_POLL_SECONDS": "0.2",
        "ESN_NUDGE_METRICS_PORT": str(metrics_port),
        "ESN_DEBUG": "1",
    }
    started: list[NudgeProcess] = []

    def start(hold: str = "0s", *args: str, **overrides: str) -> NudgeProcess:
        (tmp_path / "rules.toml").write_text(RULES.format(hold=hold, url=hooks.url))
        log = tmp_path / f"nudge-{len(started)}.log"
        process = NudgeProcess(env | overrides, list(args), log)
        started.append(process)
        return process

    yield {"start": start, "settings": settings, "metrics_port": metrics_port, "dir": tmp_path}
    for process in started:
        process.stop()
    delete_deployment_keys(settings)


async def _produce(settings: Settings, directory: list[Any], flags: list[Any]) -> None:
    topics = TopicNames.from_settings(settings)
    if directory:
        await produce_raw(settings, directory, topic=topics.directory)
    if flags:
        await produce_raw(settings, flags, topic=topics.flagged)


async def _audit(settings: Settings, dry_run: bool = False) -> list[dict[str, Any]]:
    redis = RedisStore.from_settings(settings)
    try:
        return await NudgeStore(redis, dry_run=dry_run).audit(0)
    finally:
        await redis.close()


def _outcomes(entries: list[dict[str, Any]], who: str) -> list[tuple[str, str]]:
    return sorted((e["channel"], e["outcome"]) for e in entries if e["who"] == who)


class TestNudgeService:
    async def test_delivers_suppresses_cancels_and_counts(
        self, nudge_env: dict[str, Any], inboxes: tuple[SmtpInbox, WebhookInbox]
    ) -> None:
        """Mail goes out over STARTTLS with AUTH; consent, window, cap and a reactivation stop
        the rest; every decision is in the audit and the metrics, no person in a label."""
        smtp, hooks = inboxes
        settings: Settings = nudge_env["settings"]
        directory = [
            profile("u-a", email="ada@example.com", display_name="Ada", language="de"),
            profile("u-b", email="bob@example.com", nudge_opt_out=True),
            profile("u-c", email="cy@example.com"),
            profile("u-d", email="dee@example.com", status="disabled"),
            profile("u-e"),
            profile("u-f", email="fay@example.com"),
            profile("u-g", email="gus@example.com"),
            profile("u-h", email="hal@example.com"),
            profile("u-i", email="ivy@example.com"),
        ]
        flags = [
            flag("u-a", "inactive", "30d"),
            flag("u-a", "inactive", "90d"),
            flag("u-b", "never_active"),
            flag("u-c", "inactive", "30d"),
            flag("u-d", "inactive", "30d"),
            flag("u-e", "never_active"),
            flag("u-f", "inactive", "30d"),
            flag("u-f", "reactivated", away_seconds=86400.0),
            flag("u-g", "never_active"),
            flag("u-h", "never_active"),
            flag("u-i", "at_risk"),
        ]
        await _produce(settings, directory, flags)
        process = nudge_env["start"]("3s")

        async def settled() -> bool:
            entries = await _audit(settings)
            final = [e for e in entries if e["outcome"] not in ("deferred", "failed")]
            return len(final) == 14

        await eventually(settled, 60, "14 decisions", process.alive)
        audit = await _audit(settings)
        assert 1 == len(smtp.to("ada@example.com"))
        mail = smtp.to("ada@example.com")[0]
        assert mail["Subject"].startswith("Wir vermissen Sie im Netzwerk, Ada")
        assert mail["Message-ID"].startswith("<nudge-")
        assert "https://intranet.example.com/start" in mail.get_payload()
        assert all(tls for _, _, tls in smtp.messages)
        assert [("email", "sent"), ("email", "window")] == _outcomes(audit, "u-a")
        for quiet in ("bob@example.com", "cy@example.com", "dee@example.com", "fay@example.com"):
            assert [] == smtp.to(quiet), quiet
        assert [("email", "opted_out"), ("hr", "opted_out")] == _outcomes(audit, "u-b")
        assert [] == hooks.about("u-b")
        assert [("email", "opted_out")] == _outcomes(audit, "u-c")
        assert [("email", "disabled")] == _outcomes(audit, "u-d")
        assert ("email", "no_address") in _outcomes(audit, "u-e")
        assert [("email", "cancelled")] == _outcomes(audit, "u-f")
        hr = [o for who in ("u-e", "u-g", "u-h") for c, o in _outcomes(audit, who) if c == "hr"]
        assert ["capped", "sent", "sent"] == sorted(hr)
        assert 2 == len({h["idempotency-key"] for h, _ in hooks.requests})
        assert [("email", "sent")] == _outcomes(audit, "u-i")
        assert 1 == len(smtp.to("ivy@example.com"))

        url = f"http://127.0.0.1:{nudge_env['metrics_port']}/metrics"
        metrics = urllib.request.urlopen(url, timeout=5).read().decode()
        assert 'esn_nudges_total{channel="email",kind="inactive",outcome="sent"} 1.0' in metrics
        assert 'esn_nudges_total{channel="hr",kind="never_active",outcome="capped"} 1.0' in metrics
        assert "u-a" not in metrics and "example.com" not in metrics

        # A restart takes nothing twice: the fences hold the intake, the states the sends.
        process.stop()
        again = nudge_env["start"]("3s")
        await asyncio.sleep(6)
        again.alive()
        assert 1 == len(smtp.to("ada@example.com"))
        assert len(audit) == len(await _audit(settings))
        log = subprocess.run(
            [sys.executable, "-m", "stream.cli", "nudge", "log", "--since", "1h"],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "u-b" in log and "opted_out" in log and "example.com" not in log
        assert SMTP_PASSWORD not in (nudge_env["dir"] / "nudge-0.log").read_text()
        self.check_api(settings, nudge_env["dir"])
        report = nudge_env["dir"] / "report.html"
        subprocess.run(
            [sys.executable, "-m", "stream.cli", "report", "--out", str(report)],
            env=settings_env(settings),
            capture_output=True,
            check=True,
        )
        page = report.read_text()
        data = page.split('id="report-data">', 1)[1].split("</script>", 1)[0]
        assert 8 == jsonutil.loads(data)["nudges"]["decisions"]
        shown = open_page(report, nudge_env["dir"], height=1200)
        assert [] == shown.console
        assert ">not nudged</td>" in shown.dom

    def check_api(self, settings: Settings, folder: Path) -> None:
        """The effect is aggregate, the log names people: people scope only."""
        figures, people = make_token("board", "aggregate"), make_token("council", "people")
        api = ApiProcess(settings, folder, api_tokens=f"{figures.entry}\n{people.entry}")
        try:
            api.start()
            status, answer = api.get_json("/api/v1/nudges/effect", figures.secret)
            assert (200, 8) == (status, answer["decisions"])
            assert {"7d", "30d"} == set(answer["windows"])
            assert 403 == api.get_json("/api/v1/nudges/log", figures.secret)[0]
            status, log = api.get_json("/api/v1/nudges/log?days=1", people.secret)
            assert 200 == status
            assert ("u-b", "opted_out") in {(e["who"], e["outcome"]) for e in log["items"]}
        finally:
            api.stop()

    async def test_sigkill_during_the_handover_sends_once(
        self, nudge_env: dict[str, Any], inboxes: tuple[SmtpInbox, WebhookInbox]
    ) -> None:
        """A SIGKILL while the SMTP server and the webhook hold the answer: after a restart the
        mail is not sent again (recorded unconfirmed), the webhook is sent again with the same
        Idempotency-Key (the receiver's deduplication makes it one)."""
        from tests.nudge_servers import Held

        smtp, hooks = inboxes
        settings: Settings = nudge_env["settings"]
        smtp.hold, hooks.hold = Held("kim@example.com"), Held("u-k")
        try:
            await _produce(
                settings,
                [profile("u-k", email="kim@example.com", display_name="Kim")],
                [flag("u-k", "never_active")],
            )
            process = nudge_env["start"]("0s", ESN_NUDGE_LEASE_SECONDS="2")
            for held in (smtp.hold, hooks.hold):
                await eventually(
                    lambda h=held: asyncio.to_thread(h.arrived.wait, 0.1), 60, "held", process.alive
                )
            process.kill()
        finally:
            smtp.hold.release.set()
            hooks.hold.release.set()
            smtp.hold = hooks.hold = None
        restarted = nudge_env["start"]("0s", ESN_NUDGE_LEASE_SECONDS="2")

        async def settled() -> bool:
            outcomes = _outcomes(await _audit(settings), "u-k")
            return ("email", "unconfirmed") in outcomes and ("hr", "sent") in outcomes

        await eventually(settled, 60, "both deliveries settled", restarted.alive)
        await asyncio.sleep(1)
        assert 1 == len(smtp.to("kim@example.com"))
        keys = [h["idempotency-key"] for h, _ in hooks.about("u-k")]
        assert 2 == len(keys) and 1 == len(set(keys))

    async def test_dry_run_and_preview(
        self, nudge_env: dict[str, Any], inboxes: tuple[SmtpInbox, WebhookInbox]
    ) -> None:
        """--dry-run writes what would be sent and sends nothing; --preview renders one record.
        With ESN_PSEUDONYMIZE_KEY the flags name a pseudonym: the address book, folded from the
        directory's raw ids, finds the person under it."""
        smtp, hooks = inboxes
        settings: Settings = nudge_env["settings"]
        out = nudge_env["dir"] / "dry.jsonl"
        key = "nudge-test-key-0123456789abcdef"
        person = pseudonymizer(key)("u-m")
        await _produce(
            settings,
            [profile("u-m", email="max@example.com", display_name="Max")],
            [flag(person, "inactive", "30d")],
        )
        process = nudge_env["start"]("0s", "--dry-run", "--out", str(out), ESN_PSEUDONYMIZE_KEY=key)

        async def written() -> bool:
            return out.exists() and out.read_text().count("\n") == 1

        await eventually(written, 60, "the dry run's line", process.alive)
        line = jsonutil.loads(out.read_text())
        assert (person, "email", "m***@example.com") == (
            line["person"],
            line["channel"],
            line["to"],
        )
        assert "Max" in line["subject"]
        assert [] == smtp.to("max@example.com")
        assert [("email", "dry_run")] == _outcomes(await _audit(settings, dry_run=True), person)
        assert [] == await _audit(settings)
        record = nudge_env["dir"] / "flag.json"
        record.write_bytes(flag(person, "never_active")[1])
        shown = subprocess.run(
            [sys.executable, "-m", "stream.cli", "nudge", "--preview", str(record)],
            env=settings_env(settings)
            | {"ESN_NUDGE_RULES_FILE": str(nudge_env["dir"] / "rules.toml")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Welcome to the network, Max" in shown and "m***@example.com" in shown
        assert "Idempotency-Key:" in shown and '"schema": "esn.nudge.v1"' in shown
        assert [] == hooks.about(person)
        assert "max@example.com" not in (nudge_env["dir"] / "nudge-0.log").read_text()
