"""Every ``esn-pulse`` command, listed from the CLI itself, run with Redis unreachable, with Kafka
unreachable (a closed loopback port, the other server real) and with a bad argument: a failure is
one line on stderr and the exit code docs/operations/cli-exit-codes.md documents, never a
traceback. A command added to the CLI without a row here fails the first test.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest

from stream.cli import main
from stream.cli_errors import ExitCode
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.store import RedisStore
from tests.api_support import ApiProcess
from tests.e2e.test_cli_errors import one_line_error, run_cli
from tests.support import REPO, WorkerProcess, eventually, free_port, isolated, settings_env

pytestmark = pytest.mark.e2e

OK, FAILED, USAGE = ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE
UNREACHABLE, BAD_INPUT = ExitCode.UNREACHABLE, ExitCode.BAD_INPUT
AS2 = str(REPO / "tests" / "fixtures" / "import" / "activitystreams")
EVENT = '{"id":"e-every","type":"login","actor":"every.u1","time":"2026-06-01T08:00:00Z"}\n'


@dataclass(frozen=True)
class Case:
    """How one command is run, and what it must end with when a server is unreachable.

    ``args`` follow the command's path; ``{tmp}`` is a fresh folder holding ``events.jsonl`` and
    ``users.txt``. An exit code of 0 means the command does not need that server. ``not_run``
    says why a command is not run against an unreachable server (it would start one, or wait
    for it by design); ``bad`` is an invalid invocation (exit 1, one line naming the fault).
    """

    args: tuple[str, ...] = ()
    redis_down: int = OK
    kafka_down: int = OK
    bad: tuple[str, ...] = ("--no-such-option",)
    named: str = "--no-such-option"
    not_run: str = ""
    env: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "stack up": Case(not_run="starts a broker or Redis where none answers: the test stack's"),
    "stack down": Case(),
    # A report: the services' states on stdout, exit 2 (unreachable) when one is down.
    "stack status": Case(redis_down=UNREACHABLE, kafka_down=UNREACHABLE),
    "worker": Case(not_run="waits for Kafka and Redis by design: TestServing below"),
    "user": Case(
        ("every.nobody",),
        redis_down=UNREACHABLE,
        kafka_down=FAILED,
        bad=("u1", "--jsn"),
        named="--jsn",
    ),
    "inactive": Case(redis_down=UNREACHABLE, bad=("--threshold", "banana"), named="'--threshold'"),
    "at-risk": Case(redis_down=UNREACHABLE, bad=("--format", "xml"), named="'--format'"),
    "produce": Case(
        ("{tmp}/events.jsonl",),
        kafka_down=UNREACHABLE,
        bad=("--rate", "0", "{tmp}/events.jsonl"),
        named="'--rate'",
    ),
    "generate": Case(
        ("--users", "2", "--days", "1", "--to-kafka"),
        kafka_down=UNREACHABLE,
        bad=("--users", "0"),
        named="'--users'",
    ),
    "report": Case(
        ("--out", "{tmp}/report.html"),
        redis_down=UNREACHABLE,
        bad=("--from", "banana"),
        named="'--from'",
    ),
    "summary": Case(redis_down=UNREACHABLE, bad=("--jsn",), named="--jsn"),
    "initiative add": Case(
        ("every", "--start", "2026-03-01", "--users", "{tmp}/users.txt"),
        redis_down=UNREACHABLE,
        bad=("every", "--start", "someday", "--users", "{tmp}/users.txt"),
        named="'--start'",
    ),
    "initiative list": Case(redis_down=UNREACHABLE),
    "initiative show": Case(("every-missing",), redis_down=UNREACHABLE, kafka_down=FAILED),
    "pseudonym": Case(("u1",), env={"ESN_PSEUDONYMIZE_KEY": "every-command-key-0123456789"}),
    "import": Case(
        ("--format", "activitystreams", AS2, "--to-kafka"),
        kafka_down=UNREACHABLE,
        bad=("--format", "nope", AS2),
        named="'--format'",
    ),
    "dlq": Case(kafka_down=UNREACHABLE, bad=("--since", "someday"), named="'--since'"),
    "dlq replay": Case(
        kafka_down=UNREACHABLE, bad=("--reason", "Not A Reason"), named="'--reason'"
    ),
    "rebuild": Case(redis_down=UNREACHABLE, kafka_down=UNREACHABLE),
    "config": Case(),
    "demo": Case(
        not_run="brings up its own stack (and Prometheus) where none answers",
        bad=("--users", "0"),
        named="'--users'",
    ),
    "api": Case(not_run="serves, answering 503 while Redis is away: TestServing below"),
    "nudge": Case(not_run="serves until stopped: tests/e2e/test_nudge.py runs it on real servers"),
    "nudge log": Case(redis_down=UNREACHABLE, bad=("--since", "someday"), named="'--since'"),
    "nudge effect": Case(redis_down=UNREACHABLE, bad=("--since", "someday"), named="'--since'"),
    # Reads files or the generator only: no server asked.
    "backtest": Case(
        ("--generated", "30:20:1"), bad=("--generated", "banana"), named="'--generated'"
    ),
    "api token": Case(
        ("every-client", "--scope", "aggregate"),
        bad=("every-client", "--scope", "everything"),
        named="'--scope'",
    ),
}


def cli_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command a user can run: the leaves, and groups that run without a subcommand."""
    for name, command in sorted(group.commands.items()):
        here = (*path, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield " ".join(here)
            yield from cli_commands(command, here)
        else:
            yield " ".join(here)


def groups_needing_a_command(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[str]:
    """``esn-pulse`` itself and every group that does nothing without a subcommand."""
    if not group.invoke_without_command:
        yield " ".join(path)
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from groups_needing_a_command(command, (*path, name))


@dataclass(frozen=True)
class Servers:
    redis_down: Settings
    kafka_down: Settings


@pytest.fixture(scope="module")
def servers(local_stack: Any, stack_settings: Settings) -> Iterator[Servers]:
    """Settings of their own (topics created), one with Redis and one with Kafka on a port
    nobody listens on."""
    own = isolated(stack_settings, "every")
    asyncio.run(ensure_topics(own))
    yield Servers(
        redis_down=own.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}),
        kafka_down=own.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}),
    )

    async def clean() -> None:
        store = RedisStore.from_settings(own)
        async for key in store.client.scan_iter(match=own.redis_prefix + "*", count=1000):
            await store.client.delete(key)
        await store.close()

    asyncio.run(clean())


def invoke(
    settings: Settings, command: str, args: tuple[str, ...], tmp: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    (tmp / "events.jsonl").write_text(EVENT)
    (tmp / "users.txt").write_text("every.u1\n")
    filled = [arg.replace("{tmp}", str(tmp)) for arg in args]
    state = {"ESN_STATE_DIR": str(tmp / "state")}  # stack down/status: nothing of ours
    return run_cli(settings, *command.split(), *filled, env={**state, **env})


def check(result: subprocess.CompletedProcess[str], expected: int, server: str) -> None:
    """0: done, no traceback. Otherwise the documented code and one line (stack status: its
    report on stdout, stderr empty)."""
    assert "Traceback" not in result.stderr + result.stdout
    if expected == OK:
        assert OK == result.returncode, result.stderr
        return
    if result.stderr == "" and result.stdout.split()[:1] == ["kafka"]:
        assert (UNREACHABLE, True) == (result.returncode, "DOWN" in result.stdout), "stack status"
        return
    line = one_line_error(result)
    assert expected == result.returncode, line
    if expected == UNREACHABLE:
        assert f"{server} unreachable" in line, line


class TestEveryCommand:
    def test_every_command_has_a_row(self) -> None:
        """The table covers exactly the commands the CLI has (a new one must get a row)."""
        assert sorted(CASES) == sorted(cli_commands())

    @pytest.mark.parametrize("command", sorted(CASES))
    def test_redis_unreachable(self, servers: Servers, command: str, tmp_path: Path) -> None:
        """Redis on a closed port, Kafka real: one line naming Redis and exit 2, or done."""
        case = CASES[command]
        if case.not_run:
            pytest.skip(case.not_run)
        result = invoke(servers.redis_down, command, case.args, tmp_path, case.env)
        check(result, case.redis_down, "Redis")

    @pytest.mark.parametrize("command", sorted(CASES))
    def test_kafka_unreachable(self, servers: Servers, command: str, tmp_path: Path) -> None:
        """Kafka on a closed port, Redis real: one line naming Kafka and exit 2, or done."""
        case = CASES[command]
        if case.not_run:
            pytest.skip(case.not_run)
        result = invoke(servers.kafka_down, command, case.args, tmp_path, case.env)
        check(result, case.kafka_down, "Kafka")

    @pytest.mark.parametrize("command", sorted(CASES))
    def test_a_bad_argument(self, servers: Servers, command: str, tmp_path: Path) -> None:
        """Exit 1 (not click's 2) and one line naming the option, before any server is asked
        (none answers)."""
        case = CASES[command]
        nowhere = servers.kafka_down.model_copy(update={"redis_url": servers.redis_down.redis_url})
        result = invoke(nowhere, command, case.bad, tmp_path, case.env)
        line = one_line_error(result)
        assert USAGE == result.returncode, line
        assert case.named in line
        assert f"'esn-pulse {command} --help'" in line


class TestGroupsWithoutACommand:
    @pytest.mark.parametrize("group", sorted(groups_needing_a_command()))
    def test_the_groups_help_is_shown_whole(self, group: str) -> None:
        """``esn-pulse``, ``esn-pulse stack``...: the help as written (not squashed into one
        line) on stdout, stderr empty, exit 1 (no command is a usage error)."""
        result = run_cli(Settings(), *group.split())
        assert (USAGE, "") == (result.returncode, result.stderr)
        assert result.stdout.startswith(f"Usage: esn-pulse {group}".rstrip() + " [OPTIONS]")
        assert "\nCommands:\n" in result.stdout


class TestServing:
    async def test_the_worker_waits_for_redis_and_stops_on_sigterm(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Redis unreachable: /health answers, /ready is 503; SIGTERM ends it with 0 and no
        traceback in its log."""
        worker = WorkerProcess(servers.redis_down, tmp_path).start()
        try:

            async def waiting() -> bool:
                health = await asyncio.to_thread(worker.get, "/health")
                ready = await asyncio.to_thread(worker.get, "/ready")
                return (health[0], ready[0]) == (200, 503)

            await eventually(waiting, 90, "/health 200 and /ready 503", worker.check_alive)
        finally:
            worker.stop()
        assert worker.proc is not None and OK == worker.proc.returncode
        assert "Traceback" not in worker.log_path.read_text()

    def test_the_api_answers_503_while_redis_is_away(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Redis unreachable: each route is a 503 JSON error, /ready too; SIGTERM shuts it down
        cleanly (uvicorn then ends by the signal it caught), no traceback in its log."""
        api = ApiProcess(servers.redis_down, tmp_path).start()
        try:
            status, body = api.get_json("/api/v1/summary")
            assert (503, 503) == (status, body["error"]["status"])
            assert 503 == api.get("/ready")[0]
        finally:
            api.stop()
        assert api.proc is not None and api.proc.returncode in (OK, -signal.SIGTERM)
        assert "Application shutdown complete" in api.log()
        assert "Traceback" not in api.log()


class TestProduceRejects:
    def test_rejected_lines_exit_1_saying_how_many_and_where(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Good lines are sent; the bad ones are listed by number and the run exits 1 with one
        last line on stderr that counts them and names the file."""
        lines = [EVENT, "not json\n", EVENT.replace("e-every", "e-2"), '{"id":"x"}\n']
        source = tmp_path / "mixed.jsonl"
        source.write_text("".join(lines))
        result = run_cli(servers.redis_down, "produce", str(source))
        line = one_line_error(result)
        assert BAD_INPUT == result.returncode, line
        assert line.startswith(f"esn-pulse: 2 lines of {source} rejected (lines 2, 4, reasons ")
        assert ", 2 sent;" in line
        assert result.stdout.startswith("sent 2, rejected 2 in ")
        assert ["  line 2:", "  line 4:"] == [r[:9] for r in result.stdout.splitlines()[1:]]

    def test_no_rejected_line_exits_0(self, servers: Servers, tmp_path: Path) -> None:
        """Every line valid: exit 0 and nothing on stderr but the progress bar's end."""
        source = tmp_path / "good.jsonl"
        source.write_text(EVENT)
        result = run_cli(servers.redis_down, "produce", str(source))
        assert (OK, "sent 1, rejected 0") == (result.returncode, result.stdout[:18])
        assert "esn-pulse:" not in result.stderr

    def test_stdin_is_named_as_such(self, servers: Servers) -> None:
        """produce - of one bad line: '1 line of stdin', exit 1."""
        done = subprocess.run(
            [sys.executable, "-m", "stream.cli", "produce", "-"],
            input="nope\n",
            env=settings_env(servers.redis_down),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        line = one_line_error(done)
        assert BAD_INPUT == done.returncode, line
        assert "1 line of stdin rejected (line 1, reasons listed above), 0 sent;" in line
