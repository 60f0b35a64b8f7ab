"""The CLI's error lines as data: redaction, escaping, and the code each failure maps to."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import click
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.cli_errors import BadInput, ExitCode, describe, one_line, redact_url
from stream.settings import Settings, get_settings


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
    def test_redis_refused_is_exit_3_with_the_url_redacted(self) -> None:
        """Connection refused by Redis: code 3, the address without its password."""
        failure = describe(RedisConnectionError("Error 111 connecting. Connect call failed"))
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "redis://:***@127.0.0.1:1/0 (connection refused)" in failure.message
        assert "topsecret" not in failure.message

    def test_redis_credentials_refused_is_exit_3(self) -> None:
        """Wrong password: code 3 and a hint about the password, not 'unreachable'."""
        failure = describe(AuthenticationError("invalid username-password pair"))
        assert (ExitCode.UNREACHABLE, True) == (failure.exit_code, "password" in failure.message)

    def test_kafka_unreachable_is_exit_3(self) -> None:
        """No bootstrap server: code 3 naming the bootstrap and the variable."""
        failure = describe(KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 2)]"))
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "Kafka unreachable at 127.0.0.1:2 (no bootstrap server answered)" in failure.message

    def test_a_kafka_timeout_names_both_causes(self) -> None:
        """A timeout may be an outage or a missing topic: code 3, both variables named."""
        failure = describe(KafkaTimeoutError())
        assert ExitCode.UNREACHABLE == failure.exit_code
        assert "ESN_KAFKA_BOOTSTRAP" in failure.message and "ESN_TOPIC_PREFIX" in failure.message

    def test_other_server_errors_are_exit_1(self) -> None:
        """A server that answers with an error is a failure, not an outage."""
        assert 1 == describe(ResponseError("WRONGTYPE")).exit_code
        assert 1 == describe(UnknownTopicOrPartitionError()).exit_code

    def test_usage_errors_keep_click_code_2_and_point_at_help(self) -> None:
        """A BadParameter names its option and the command's --help."""
        ctx = click.Context(click.Command("inactive"), info_name="esn-pulse inactive")
        failure = describe(click.BadParameter("nope", ctx=ctx, param_hint="'--threshold'"))
        assert ExitCode.USAGE == failure.exit_code
        assert failure.message.endswith("see 'esn-pulse inactive --help'")
        assert "'--threshold'" in failure.message

    def test_an_invalid_setting_is_exit_5_without_its_value(self) -> None:
        """pydantic's error names the field; the value (maybe a secret) is not repeated."""
        with pytest.raises(ValidationError) as caught:
            Settings(activity_partitions="topsecret")  # type: ignore[arg-type]
        failure = describe(caught.value)
        assert ExitCode.BAD_CONFIG == failure.exit_code
        assert "ESN_ACTIVITY_PARTITIONS" in failure.message
        assert "topsecret" not in failure.message

    def test_own_errors_keep_their_code_and_remedy(self) -> None:
        """A BadInput is code 4, what failed then what to do."""
        failure = describe(BadInput("x.csv is not UTF-8", "convert it"))
        assert (4, "esn-pulse: x.csv is not UTF-8; convert it") == (
            failure.exit_code,
            failure.message,
        )

    def test_a_file_error_names_the_file(self) -> None:
        """An OSError with a filename: code 1 and the path."""
        error = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/r.html")
        failure = describe(error)
        assert (1, True) == (failure.exit_code, "/nope/r.html" in failure.message)

    def test_anything_else_says_how_to_get_the_traceback(self) -> None:
        """An unexpected exception: code 1 and ESN_DEBUG=1 in the remedy."""
        failure = describe(ZeroDivisionError("division by zero"))
        assert 1 == failure.exit_code
        assert "unexpected ZeroDivisionError" in failure.message
        assert "ESN_DEBUG=1" in failure.message

    def test_ctrl_c_is_130(self) -> None:
        """click turns Ctrl-C into Abort."""
        assert ExitCode.INTERRUPTED == describe(click.Abort()).exit_code


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
