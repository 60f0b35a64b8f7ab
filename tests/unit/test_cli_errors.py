"""The CLI's error lines as data: redaction, escaping, and the code each failure maps to."""

from __future__ import annotations

import errno
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)
from click.testing import CliRunner
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.cli import main
from stream.cli_errors import BadInput, ExitCode, describe, one_line, redact_url
from stream.settings import Settings, get_settings
from stream.shutdown import FORCED_EXIT_CODE


class TestRedaction:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://user:p%40ss@host:6380/1?ssl=true", "rediss://user:***@host:6380/1?ssl=true"),
            ("redis://token@host", "redis://***@host"),
        ],
    )
    def test_a_password_in_a_url_is_masked(self, url: str, shown: str) -> None:
        """Only the secret part goes: scheme, user, host, port, db and query stay readable."""
        assert shown == redact_url(url)

    def test_known_secrets_are_masked_anywhere_in_the_line(self) -> None:
        """A secret that reached a message by another way is still replaced."""
        assert "auth *** failed" == one_line("auth hunter2 failed", ("hunter2", ""))

    def test_control_characters_are_escaped_and_length_capped(self) -> None:
        """Terminal escapes become text; newlines fold; a huge text is cut."""
        assert "a \\x1b[2J b" == one_line("a\n\x1b[2J  b")
        assert 600 == len(one_line("x" * 10_000))


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ESN_* servers on dead ports, the Redis URL with a password."""
    monkeypatch.setenv("ESN_REDIS_URL", "redis://:topsecret@127.0.0.1:1/0")
    monkeypatch.setenv("ESN_KAFKA_BOOTSTRAP", "127.0.0.1:2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("env_settings")
class TestDescribe:
    def test_redis_refused_is_exit_2_with_the_url_redacted(self) -> None:
        """Connection refused by Redis: code 2 (run again later), the address without its
        password."""
        failure = describe(RedisConnectionError("Error 111 connecting. Connect call failed"))
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "redis://:***@127.0.0.1:1/0 (connection refused)" in failure.message
        assert "topsecret" not in failure.message

    def test_a_redis_cluster_failing_over_is_exit_2(self) -> None:
        """No master for a slot yet (not a RedisError in redis-py), CLUSTERDOWN, TRYAGAIN: wait."""
        from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError

        for exc in (
            SlotNotCoveredError("Slot 42 not covered by the cluster"),
            ClusterDownError("The cluster is down"),
            TryAgainError("TRYAGAIN"),
        ):
            failure = describe(exc)
            assert ExitCode.UNREACHABLE == failure.exit_code, exc
            assert "failover" in failure.message and "\n" not in failure.message

    def test_a_cluster_url_at_a_single_redis_is_exit_1(self) -> None:
        """redis+cluster:// pointed at a plain Redis: a setting to fix, said so in one line."""
        failure = describe(ResponseError("This instance has cluster support disabled"))
        assert ExitCode.BAD_CONFIG == failure.exit_code
        assert "single Redis" in failure.message and "redis://" in failure.message

    def test_redis_credentials_refused_is_exit_1(self) -> None:
        """Wrong password: a setting to fix (code 1, not 2: retrying later would not help) and
        a hint about the password, not 'unreachable'."""
        failure = describe(AuthenticationError("invalid username-password pair"))
        assert (ExitCode.BAD_CONFIG, True) == (failure.exit_code, "password" in failure.message)
        assert "unreachable" not in failure.message

    def test_an_untrusted_redis_certificate_is_exit_1(self) -> None:
        """A TLS handshake redis-py wraps in its ConnectionError: code 1 naming the CA file."""
        try:
            raise RedisConnectionError("Error 1 connecting to 127.0.0.1:1. [SSL] failed") from (
                ssl.SSLCertVerificationError("certificate verify failed")
            )
        except RedisConnectionError as exc:
            failure = describe(exc)
        assert ExitCode.BAD_CONFIG == failure.exit_code
        assert "TLS handshake" in failure.message and "ESN_REDIS_TLS_CAFILE" in failure.message

    def test_a_denied_redis_command_is_exit_1(self) -> None:
        """An ACL that does not grant the prefix: a refused operation, code 1."""
        failure = describe(NoPermissionError("NOPERM this user has no permissions"))
        assert (ExitCode.BAD_CONFIG, True) == (failure.exit_code, "security.md" in failure.message)

    def test_kafka_unreachable_is_exit_2(self) -> None:
        """No bootstrap server: code 2 naming the bootstrap and the variable."""
        failure = describe(KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 2)]"))
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "Kafka unreachable at 127.0.0.1:2 (no bootstrap server answered)" in failure.message

    def test_a_kafka_timeout_names_both_causes(self) -> None:
        """A timeout may be an outage or a missing topic: code 2, both variables named."""
        failure = describe(KafkaTimeoutError())
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "ESN_KAFKA_BOOTSTRAP" in failure.message and "ESN_TOPIC_PREFIX" in failure.message

    def test_kafka_not_ready_yet_is_exit_2(self) -> None:
        """A coordinator still loading answers later: code 2 (retry), not a failure."""
        failure = describe(GroupCoordinatorNotAvailableError("Unable to get coordinator id"))
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "run again in a moment" in failure.message

    def test_other_server_errors_are_exit_1(self) -> None:
        """A server that answers with an error is a failure, not an outage."""
        assert ExitCode.FAILURE == describe(ResponseError("WRONGTYPE")).exit_code
        assert ExitCode.FAILURE == describe(UnknownTopicOrPartitionError()).exit_code

    def test_usage_errors_are_exit_1_and_point_at_help(self) -> None:
        """A BadParameter is code 1 (not click's 2), names its option and the command's --help."""
        ctx = click.Context(click.Command("inactive"), info_name="esn-pulse inactive")
        failure = describe(click.BadParameter("nope", ctx=ctx, param_hint="'--threshold'"))
        assert ExitCode.USAGE == failure.exit_code
        assert failure.message.endswith("see 'esn-pulse inactive --help'")
        assert "'--threshold'" in failure.message

    def test_an_invalid_setting_is_exit_1_without_its_value(self) -> None:
        """pydantic's error names the field; the value (maybe a secret) is not repeated."""
        with pytest.raises(ValidationError) as caught:
            Settings(activity_partitions="topsecret")  # type: ignore[arg-type]
        failure = describe(caught.value)
        assert ExitCode.BAD_CONFIG == failure.exit_code
        assert "ESN_ACTIVITY_PARTITIONS" in failure.message
        assert "topsecret" not in failure.message

    def test_own_errors_keep_their_code_and_remedy(self) -> None:
        """A BadInput is code 1, what failed then what to do."""
        failure = describe(BadInput("x.csv is not UTF-8", "convert it"))
        assert (ExitCode.BAD_INPUT, "esn-pulse: x.csv is not UTF-8; convert it") == (
            failure.exit_code,
            failure.message,
        )

    def test_a_file_error_names_the_file(self) -> None:
        """An OSError with a filename: code 1 and the path."""
        error = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/r.html")
        failure = describe(error)
        assert (ExitCode.FAILURE, True) == (failure.exit_code, "/nope/r.html" in failure.message)

    def test_anything_else_says_how_to_get_the_traceback(self) -> None:
        """An unexpected exception: code 1 and ESN_DEBUG=1 in the remedy."""
        failure = describe(ZeroDivisionError("division by zero"))
        assert ExitCode.FAILURE == failure.exit_code
        assert "unexpected ZeroDivisionError" in failure.message
        assert "ESN_DEBUG=1" in failure.message

    def test_ctrl_c_is_130(self) -> None:
        """click turns Ctrl-C into Abort."""
        assert ExitCode.INTERRUPTED == describe(click.Abort()).exit_code


class TestTheScheme:
    def test_the_codes_are_the_three_classes_issue_13_asks_for(self) -> None:
        """0 ok, 1 bad input or partial (every fix-then-rerun name), 2 a server unreachable;
        130 and the worker's 70 as extras. Literal numbers: scripts depend on them."""
        assert {"OK": 0, "BAD_INPUT": 1, "USAGE": 1, "BAD_CONFIG": 1, "FAILURE": 1} == {
            name: int(ExitCode[name])
            for name in ("OK", "BAD_INPUT", "USAGE", "BAD_CONFIG", "FAILURE")
        }
        assert (2, 70, 130) == (
            ExitCode.UNREACHABLE,
            ExitCode.STOP_TIMEOUT,
            ExitCode.INTERRUPTED,
        )
        assert {0, 1, 2, 70, 130} == {int(code) for code in ExitCode}

    def test_the_worker_stop_deadline_exits_with_the_documented_extra(self) -> None:
        """stream.shutdown's forced exit is ExitCode.STOP_TIMEOUT, not a number of its own."""
        assert ExitCode.STOP_TIMEOUT == FORCED_EXIT_CODE

    def test_the_doc_table_lists_exactly_these_codes(self) -> None:
        """docs/operations/cli-exit-codes.md has one row per code, no stale 3, 4 or 5."""
        doc = (Path(__file__).parents[2] / "docs" / "operations" / "cli-exit-codes.md").read_text()
        rows = re.findall(r"^\| `(\d+)` \|", doc, flags=re.MULTILINE)
        assert ["0", "1", "2", "70", "130"] == rows


class TestTheEntryPoint:
    """Click standalone exits 2 on its own errors; the entry point makes them 1."""

    @pytest.mark.parametrize(
        "args",
        [
            ["--no-such-option"],
            ["no-such-command"],
            ["inactive", "--threshold", "banana"],
            ["inactive", "--no-such-option"],
            ["user"],
            ["stack", "no-such-command"],
        ],
    )
    def test_a_usage_error_is_exit_1_in_one_line(self, args: list[str]) -> None:
        """An unknown option or command, a bad value, a missing argument: 1, one line, the
        command's --help named."""
        result = CliRunner().invoke(main, args)
        assert ExitCode.USAGE == result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert 1 == len(lines) and "--help'" in lines[0], result.stderr

    @pytest.mark.parametrize("group", [[], ["stack"], ["initiative"]])
    def test_a_group_without_its_command_shows_its_help_and_exits_1(self, group: list[str]) -> None:
        """``esn-pulse``, ``esn-pulse stack``: the help on stdout, exit 1 (a usage error)."""
        result = CliRunner().invoke(main, group, prog_name="esn-pulse")
        assert (1, "") == (result.exit_code, result.stderr)
        assert "Usage: esn-pulse" in result.stdout

    def test_help_and_version_are_exit_0(self) -> None:
        """Asking for help is not an error."""
        assert 0 == CliRunner().invoke(main, ["--help"]).exit_code
        assert 0 == CliRunner().invoke(main, ["inactive", "--help"]).exit_code
        assert 0 == CliRunner().invoke(main, ["--version"]).exit_code


class TestCsvOutput:
    @pytest.mark.parametrize("cell", ['=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
    def test_a_formula_cell_is_shown_as_text(self, cell: str) -> None:
        """inactive --format csv: a leading formula character is quoted (CSV injection)."""
        from stream.cli_inactive import spreadsheet_safe

        assert "'" + cell == spreadsheet_safe(cell)

    def test_an_ordinary_cell_is_unchanged(self) -> None:
        """Ids, dates and departments without a formula start are left as they are."""
        from stream.cli_inactive import spreadsheet_safe

        assert "u000001" == spreadsheet_safe("u000001")
