"""The esn-pulse command end to end: generate, produce, user, stack status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.settings import Settings
from stream.store import RedisStore
from tests.support import REPO, Oracle, settings_env, wait_fully_applied

pytestmark = pytest.mark.e2e


def esn(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


class TestGenerateProduceUser:
    async def test_generate_then_produce_then_read_a_user(
        self, settings: Settings, store: RedisStore, worker_factory: Any, tmp_path: Path
    ) -> None:
        """Generated lines go through produce (bad lines reported by number) into the user view."""
        out = tmp_path / "events.jsonl"
        args = ("generate", "--users", "60", "--days", "6", "--start", "2026-06-01")
        generated = esn(settings, *args, "--seed", "4", "--out", str(out))
        assert generated.returncode == 0, generated.stderr
        again = esn(settings, *args, "--seed", "4")
        assert out.read_text() == again.stdout, "same seed, same organisation and activity"
        events = [jsonutil.loads(line) for line in out.read_text().splitlines()]
        with out.open("a") as handle:
            handle.write("this is not json\n\n")
            handle.write('{"id":"x","type":"login","actor":"u1"}\n')
        worker = await worker_factory().started()

        produced = esn(settings, "produce", str(out))
        assert ExitCode.BAD_INPUT == produced.returncode, "rejected lines: bad input, the rest sent"
        n = len(events)
        assert f"sent {n}, rejected 2" in produced.stdout
        assert f"line {n + 1}: not_json" in produced.stdout
        assert f"line {n + 3}: missing_field" in produced.stdout

        await wait_fully_applied(store, settings, 60, worker.check_alive)
        oracle = Oracle.of(events)
        actor = max(oracle.counts, key=lambda user: sum(oracle.counts[user].values()))
        shown = esn(settings, "user", actor, "--json")
        assert shown.returncode == 0, shown.stderr
        doc = jsonutil.loads(shown.stdout)
        assert dict(oracle.counts[actor]) == doc["counts"]
        assert sum(oracle.counts[actor].values()) == doc["events"]

        missing = esn(settings, "user", "nobody-here")
        assert ExitCode.FAILURE == missing.returncode
        assert "no activity known" in missing.stderr


class TestStack:
    def test_status_reports_both_services_up(self, settings: Settings) -> None:
        """The session's stack answers on the configured addresses."""
        status = esn(settings, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["kafka", "redis"]
        assert all(line.split()[2] == "up" for line in lines)

    def test_up_when_everything_answers_starts_nothing(self, settings: Settings) -> None:
        """Configured servers that answer are used as they are."""
        up = esn(settings, "stack", "up")
        assert up.returncode == 0, up.stderr
        assert "started: nothing" in up.stdout


class TestDirectoryImport:
    async def test_csv_roster_is_validated_sent_and_folded(
        self, settings: Settings, store: RedisStore, worker_factory: Any, tmp_path: Path
    ) -> None:
        """A CSV roster goes through produce --directory into profiles; bad rows are named."""
        from stream.store import DirectoryStore
        from tests.support import eventually

        roster = tmp_path / "roster.csv"
        roster.write_text(
            "\ufeffuser_id,status,created,updated,department\n"
            "u1,enabled,2026-01-05T08:00:00Z,2026-01-05T08:00:00Z,Sales\n"
            "u2,sleeping,2026-01-05T08:00:00Z,2026-01-05T08:00:00Z,Sales\n"
            "u3,disabled,2026-01-05T08:00:00Z,2026-02-01T08:00:00+01:00,\n"
        )
        worker = await worker_factory().started()
        produced = esn(settings, "produce", "--directory", str(roster))
        assert ExitCode.BAD_INPUT == produced.returncode, "a rejected row: bad input, the rest sent"
        assert "sent 2, rejected 1" in produced.stdout
        assert "line 2: bad_field" in produced.stdout
        directory = DirectoryStore(store)

        async def folded() -> bool:
            return await directory.profile("u3") is not None

        await eventually(folded, 60, "roster folded", worker.check_alive)
        u1, u3 = await directory.profile("u1"), await directory.profile("u3")
        assert u1 is not None and ("enabled", "Sales") == (u1.status, u1.department)
        assert u3 is not None and ("disabled", None) == (u3.status, u3.department)
