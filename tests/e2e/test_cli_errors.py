"""Every esn-pulse failure is one line on stderr and a documented exit code, never a traceback.

The real CLI runs as a subprocess: against ports nobody listens on, with wrong arguments and
settings, and against the session's real stack (docs/operations/cli-exit-codes.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli_errors import ExitCode
from stream.settings import Settings
from tests.support import REPO, free_port, settings_env

pytestmark = pytest.mark.e2e

#: A password in the Redis URL: no output may carry it.
SECRET = "s3cret-Pa55"


def run_cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """``esn-pulse ARGS`` as a user runs it, with ``settings`` as its environment."""
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**settings_env(settings), **(env or {})},
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's only stderr line, checked for shape: prefix, no traceback, no secret."""
    lines = result.stderr.splitlines()
    assert 1 == len(lines), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    assert lines[0].startswith("esn-pulse: "), lines[0]
    assert "; " in lines[0], f"no 'what to do' part: {lines[0]}"
    return lines[0]


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose Kafka and Redis ports nobody listens on (the Redis URL has a password)."""
    kafka, redis = free_port(), free_port()
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        redis_url=f"redis://esn:{SECRET}@127.0.0.1:{redis}/0",
        state_dir=tmp_path_factory.mktemp("state"),
    )


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "events.jsonl"
    path.write_text('{"id":"e1","type":"login","actor":"u1","time":"2026-06-01T08:00:00Z"}\n')
    return path


REDIS_COMMANDS = [
    ("inactive",),
    ("inactive", "--never-active"),
    ("at-risk",),
    ("summary",),
    ("user", "u1"),
    ("initiative", "list"),
    ("initiative", "show", "x"),
]
KAFKA_COMMANDS = [
    ("generate", "--users", "3", "--days", "1", "--to-kafka"),
    ("dlq",),
    ("dlq", "--list"),
    ("dlq", "replay"),
    ("dlq", "replay", "--directory"),
]


class TestServersUnreachable:
    @pytest.mark.parametrize("args", REDIS_COMMANDS, ids=" ".join)
    def test_redis_commands_say_redis_is_unreachable(
        self, nowhere: Settings, args: tuple[str, ...]
    ) -> None:
        """A command that reads Redis exits 2 with one line naming Redis and the remedy."""
        result = run_cli(nowhere, *args)
        line = one_line_error(result)
        assert ExitCode.UNREACHABLE == result.returncode, line
        assert "Redis unreachable at redis://esn:***@127.0.0.1:" in line
        assert "ESN_REDIS_URL" in line

    def test_report_says_redis_is_unreachable(self, nowhere: Settings, tmp_path: Path) -> None:
        """The HTML report exits 2, and writes no file."""
        out = tmp_path / "report.html"
        result = run_cli(nowhere, "report", "--out", str(out))
        assert ExitCode.UNREACHABLE == result.returncode, one_line_error(result)
        assert "Redis unreachable" in one_line_error(result)
        assert not out.exists()

    def test_initiative_add_says_redis_is_unreachable(
        self, nowhere: Settings, tmp_path: Path
    ) -> None:
        """Storing an initiative needs Redis: exit 2."""
        users = tmp_path / "users.txt"
        users.write_text("u1\nu2\n")
        result = run_cli(
            nowhere, "initiative", "add", "spring", "--start", "2026-03-01", "--users", str(users)
        )
        assert ExitCode.UNREACHABLE == result.returncode, one_line_error(result)

    @pytest.mark.parametrize("args", KAFKA_COMMANDS, ids=" ".join)
    def test_kafka_commands_say_kafka_is_unreachable(
        self, nowhere: Settings, args: tuple[str, ...]
    ) -> None:
        """A command that talks to Kafka exits 2 with one line naming Kafka and the remedy."""
        result = run_cli(nowhere, *args)
        line = one_line_error(result)
        assert ExitCode.UNREACHABLE == result.returncode, line
        assert f"Kafka unreachable at {nowhere.kafka_bootstrap}" in line
        assert "ESN_KAFKA_BOOTSTRAP" in line

    @pytest.mark.parametrize("validate", [True, False], ids=["validated", "no-validate"])
    def test_produce_says_kafka_is_unreachable(
        self, nowhere: Settings, events_file: Path, validate: bool
    ) -> None:
        """produce prints no progress bar before its one line when nothing could be sent."""
        extra = () if validate else ("--no-validate",)
        result = run_cli(nowhere, "produce", *extra, str(events_file))
        assert ExitCode.UNREACHABLE == result.returncode, one_line_error(result)
        assert "Kafka unreachable" in one_line_error(result)

    def test_import_to_kafka_says_kafka_is_unreachable(self, nowhere: Settings) -> None:
        """import --to-kafka (its own module, its own 'import:' lines) is one line and exit 2."""
        source = REPO / "tests" / "fixtures" / "import" / "activitystreams"
        result = run_cli(nowhere, "import", "--format", "activitystreams", "--to-kafka",
                         str(source))  # fmt: skip
        lines = result.stderr.splitlines()
        assert 1 == len(lines), result.stderr
        assert "Traceback" not in result.stderr
        assert ExitCode.UNREACHABLE == result.returncode, lines[0]
        assert "Kafka" in lines[0] and "ESN_KAFKA_BOOTSTRAP" in lines[0]

    def test_debug_adds_the_traceback_above_the_line(self, nowhere: Settings) -> None:
        """ESN_DEBUG=1 prints the traceback for a bug report; the last line is unchanged."""
        result = run_cli(nowhere, "user", "u1", env={"ESN_DEBUG": "1"})
        assert ExitCode.UNREACHABLE == result.returncode
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("esn-pulse: Redis unreachable")
        assert SECRET not in result.stderr.splitlines()[-1]

    def test_stack_status_reports_down_and_exits_2(self, nowhere: Settings) -> None:
        """stack status is a report: both DOWN on stdout, exit 2 (unreachable), stderr empty."""
        result = run_cli(nowhere, "stack", "status")
        assert ExitCode.UNREACHABLE == result.returncode
        assert "" == result.stderr
        assert ["DOWN", "DOWN"] == [line.split()[2] for line in result.stdout.splitlines()]
        assert SECRET not in result.stdout


class TestUsageErrors:
    @pytest.mark.parametrize(
        ("args", "option"),
        [
            (("inactive", "--threshold", "banana"), "'--threshold'"),
            (("inactive", "--threshold", "7d"), "'--threshold'"),
            (("inactive", "--format", "xml"), "'--format'"),
            (("at-risk", "--format", "xml"), "'--format'"),
            (("at-risk", "--json", "--format", "csv"), "--json"),
            (("generate", "--users", "-1"), "'--users'"),
            (("generate", "--days", "banana"), "'--days'"),
            (("demo", "--users", "0"), "'--users'"),
            (("demo", "--rate", "0"), "'--rate'"),
            (("produce", "--rate", "-5", "x.jsonl"), "'--rate'"),
            (("produce", "/no/such/file.jsonl"), "'FILE'"),
            (("report", "--from", "banana"), "'--from'"),
            (("initiative", "add", "x", "--start", "banana", "--users", "-"), "'--start'"),
            (("initiative", "add", "bad name!", "--start", "2026-01-01", "--users", "-"), "'NAME'"),
            (("dlq", "--since", "yesterday-ish"), "'--since'"),
            (("dlq", "replay", "--reason", "Not A Reason"), "'--reason'"),
            (("dlq", "--json"), "--list"),
            (("import", "--format", "nope", "."), "'--format'"),
            (("backtest",), "--generated"),
            (("backtest", "--generated", "1:2"), "'--generated'"),
            (("backtest", "--generated", "9:9:9", "--horizon-days", "0"), "'--horizon-days'"),
            (("backtest", "--generated", "9:9:9", "--gap-factor", "0.5"), "--gap-factor"),
            (("no-such-command",), "no-such-command"),
        ],
        ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
    )
    def test_a_wrong_argument_is_one_usage_line_naming_it(
        self, nowhere: Settings, args: tuple[str, ...], option: str
    ) -> None:
        """Exit 1 and one line that names the option and points at --help; no server needed."""
        result = run_cli(nowhere, *args)
        line = one_line_error(result)
        assert ExitCode.USAGE == result.returncode, line
        assert option in line
        assert "--help" in line


class TestBadSettingsAndInput:
    def test_an_invalid_setting_names_the_variable(self, nowhere: Settings) -> None:
        """A setting that does not parse: exit 1, its name, never its value."""
        result = run_cli(nowhere, "user", "u1", env={"ESN_ACTIVITY_PARTITIONS": SECRET})
        line = one_line_error(result)
        assert ExitCode.BAD_CONFIG == result.returncode, line
        assert "ESN_ACTIVITY_PARTITIONS" in line

    def test_an_invalid_threshold_setting_names_the_variable(self, nowhere: Settings) -> None:
        """ESN_INACTIVITY_THRESHOLDS=banana: exit 1 before any server is asked."""
        result = run_cli(nowhere, "inactive", env={"ESN_INACTIVITY_THRESHOLDS": "banana"})
        line = one_line_error(result)
        assert ExitCode.BAD_CONFIG == result.returncode, line
        assert "ESN_INACTIVITY_THRESHOLDS" in line

    def test_pseudonym_without_a_key_is_a_setting_error(self, nowhere: Settings) -> None:
        """pseudonym needs ESN_PSEUDONYMIZE_KEY: exit 1."""
        result = run_cli(nowhere, "pseudonym", "u1")
        assert ExitCode.BAD_CONFIG == result.returncode, one_line_error(result)

    def test_a_roster_that_is_not_utf8_is_bad_input(
        self, nowhere: Settings, tmp_path: Path
    ) -> None:
        """produce --directory of a Latin-1 CSV: exit 1 naming the file and the byte."""
        roster = tmp_path / "roster.csv"
        roster.write_bytes(
            "user_id,status,department\nu1,enabled,Ventes général\n".encode("latin-1")
        )
        result = run_cli(nowhere, "produce", "--directory", str(roster))
        line = one_line_error(result)
        assert ExitCode.BAD_INPUT == result.returncode, line
        assert "roster.csv is not UTF-8" in line

    def test_an_initiative_user_file_that_is_not_utf8_is_bad_input(
        self, nowhere: Settings, tmp_path: Path
    ) -> None:
        """initiative add with a binary users file: exit 1 before Redis is asked."""
        users = tmp_path / "users.txt"
        users.write_bytes(b"u1\n\xff\xfe\x00u2\n")
        result = run_cli(
            nowhere, "initiative", "add", "spring", "--start", "2026-03-01", "--users", str(users)
        )
        assert ExitCode.BAD_INPUT == result.returncode, one_line_error(result)

    def test_an_empty_initiative_user_file_is_bad_input(
        self, nowhere: Settings, tmp_path: Path
    ) -> None:
        """A users file with only a header: exit 1."""
        users = tmp_path / "users.csv"
        users.write_text("user_id\n\n")
        result = run_cli(
            nowhere, "initiative", "add", "spring", "--start", "2026-03-01", "--users", str(users)
        )
        assert ExitCode.BAD_INPUT == result.returncode, one_line_error(result)


class TestAgainstTheRealStack:
    def test_an_unknown_user_is_one_line_and_exit_1(self, settings: Settings) -> None:
        """Redis answers but knows no such user: exit 1 with what to check."""
        result = run_cli(settings, "user", "nobody-here")
        line = one_line_error(result)
        assert ExitCode.FAILURE == result.returncode, line
        assert "no activity known for user 'nobody-here'" in line

    def test_a_hostile_user_id_is_escaped_and_cut(self, settings: Settings) -> None:
        """Control characters are escaped, a 100 KB id does not flood the terminal."""
        result = run_cli(settings, "user", "\x1b[31mred" + "x" * 100_000)
        line = one_line_error(result)
        assert ExitCode.FAILURE == result.returncode
        assert "\x1b" not in line
        assert len(line) <= 600

    def test_an_unknown_initiative_is_one_line_and_exit_1(self, settings: Settings) -> None:
        """initiative show of a missing name: exit 1 pointing at initiative list."""
        result = run_cli(settings, "initiative", "show", "missing")
        assert ExitCode.FAILURE == result.returncode
        assert "initiative list" in one_line_error(result)

    def test_commands_that_work_exit_0_with_a_clean_stderr(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """The same commands against servers that answer: exit 0, nothing on stderr."""
        for args in (("inactive",), ("summary",), ("initiative", "list"), ("dlq",)):
            result = run_cli(settings, *args)
            assert (0, "") == (result.returncode, result.stderr), args
        report = run_cli(settings, "report", "--out", str(tmp_path / "r.html"))
        assert 0 == report.returncode, report.stderr

    def test_a_missing_topic_is_one_line(self, settings: Settings) -> None:
        """dlq under a prefix whose topics do not exist: exit 1 naming ESN_TOPIC_PREFIX."""
        other = settings.model_copy(update={"topic_prefix": "no-such-prefix."})
        result = run_cli(other, "dlq")
        line = one_line_error(result)
        assert ExitCode.FAILURE == result.returncode, line
        assert "ESN_TOPIC_PREFIX" in line
