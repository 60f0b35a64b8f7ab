"""One line and a documented exit code for every ``esn-pulse`` failure, never a traceback.

The exit codes are listed in docs/operations/cli-exit-codes.md; ``ESN_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import click

#: Set to 1 (or true/yes) to print the traceback above the one line, and library logs.
DEBUG_VARIABLE = "ESN_DEBUG"
PROG_NAME = "esn-pulse"
#: What click 8.2+ raises for a group run without its command (older click printed the help).
NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("NoArgsIsHelpError", (click.UsageError,), {})
)
#: A line longer than this is cut: a 100 KB user id must not flood a terminal.
_MAX_LINE = 600


class ExitCode(IntEnum):
    """What ``esn-pulse`` exits with; scripts may rely on these.

    Three classes, as issue 13 asks: 0 done, 1 fix something then run again, 2 run again later.
    The names under 1 are aliases of one code: they say, where a failure is raised, why.
    """

    OK = 0
    #: Fix the input, then run again: bad data, or a partial run (the rest was done).
    BAD_INPUT = 1
    #: A wrong option, argument or command: click's UsageError, which click alone exits 2 with.
    USAGE = 1
    #: An ``ESN_*`` setting or the config file is invalid, or a server refused its credentials.
    BAD_CONFIG = 1
    #: A refused operation, or an unexpected error.
    FAILURE = 1
    #: Kafka, Redis or Prometheus did not answer: nothing is lost, run again later.
    UNREACHABLE = 2
    #: The worker's stop hit its deadline (:data:`stream.shutdown.FORCED_EXIT_CODE`).
    STOP_TIMEOUT = 70
    #: Ctrl-C.
    INTERRUPTED = 130


class CliError(click.ClickException):
    """A failure the user can act on: what failed, what to do about it, and its exit code."""

    exit_code = ExitCode.FAILURE

    def __init__(self, what: str, todo: str) -> None:
        super().__init__(f"{what}; {todo}")
        self.what = what
        self.todo = todo


class Unreachable(CliError):
    """Kafka, Redis or another server did not answer: run again later."""

    exit_code = ExitCode.UNREACHABLE


class BadInput(CliError):
    """An input file or record cannot be read as what the command expects."""

    exit_code = ExitCode.BAD_INPUT


class BadConfig(CliError):
    """An ``ESN_*`` setting (or the config file) is invalid or missing for this command."""

    exit_code = ExitCode.BAD_CONFIG


@dataclass(frozen=True)
class Failure:
    """The one line a failure prints, and the exit code it ends with."""

    message: str
    exit_code: int


def debug_enabled() -> bool:
    """True when ``ESN_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:***@{host}" if parts.password is not None else f"***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def one_line(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Whitespace collapsed, control characters escaped, secrets masked, length capped."""
    for secret in secrets:
        # A secret of a character or two would mask every occurrence of those letters.
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", text)
    if len(text) > _MAX_LINE:
        text = text[: _MAX_LINE - 3] + "..."
    return text


def _servers() -> tuple[str, str, tuple[str, ...]]:
    """Kafka bootstrap, redacted Redis URL and the secrets to mask, even when settings are bad."""
    try:
        from stream.settings import get_settings

        settings = get_settings()
        kafka, redis_url = settings.kafka_bootstrap, settings.redis_url
        key = settings.pseudonymize_key.get_secret_value()
        redis_password = settings.redis_password.get_secret_value()
        kafka_password = settings.kafka_sasl_password.get_secret_value()
    except Exception:  # settings that do not parse are reported on their own
        kafka = os.environ.get("ESN_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        redis_url = os.environ.get("ESN_REDIS_URL", "redis://127.0.0.1:6379/0")
        key = os.environ.get("ESN_PSEUDONYMIZE_KEY", "")
        redis_password = os.environ.get("ESN_REDIS_PASSWORD", "")
        kafka_password = os.environ.get("ESN_KAFKA_SASL_PASSWORD", "")
    try:
        password = urlsplit(redis_url).password or ""
    except ValueError:
        password = ""
    return kafka, redact_url(redis_url), (password, key, redis_password, kafka_password)


def _cut(text: str, limit: int = _MAX_LINE // 2) -> str:
    """Untrusted text (an id, a server's message) cut so the line keeps its what-to-do part."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(exc: BaseException) -> str:
    """The text of an exception without aiokafka's repeated class name and address tuples."""
    text = str(exc) or type(exc).__name__
    text = text.removeprefix(f"{type(exc).__name__}: ")
    if text.startswith("Unable to bootstrap from"):
        return "no bootstrap server answered"
    if "Connect call failed" in text or "Connection refused" in text:
        return "connection refused"
    if "Timeout" in type(exc).__name__:
        return "timed out"
    return _cut(text.rstrip("."))


def describe(exc: BaseException) -> Failure:
    """The line and exit code of any exception a command lets out."""
    kafka, redis_url, secrets = _servers()
    message, code = _classify(exc, kafka, redis_url)
    return Failure(f"{PROG_NAME}: {one_line(message, secrets)}", int(code))


def _classify(exc: BaseException, kafka: str, redis_url: str) -> tuple[str, int]:
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaError,
        KafkaTimeoutError,
        UnknownTopicOrPartitionError,
    )
    from pydantic import ValidationError
    from redis.exceptions import (
        AuthenticationError,
        ClusterDownError,
        NoPermissionError,
        RedisClusterException,
        RedisError,
        TryAgainError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx else PROG_NAME
        return f"{exc.format_message().rstrip('.')}; see '{path} --help'", ExitCode.USAGE
    if isinstance(exc, click.Abort):
        return "interrupted; nothing further was done", ExitCode.INTERRUPTED
    if isinstance(exc, CliError):
        return f"{_cut(exc.what)}; {exc.todo}", exc.exit_code
    if isinstance(exc, click.ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, ValidationError):
        return _invalid_setting(exc), ExitCode.BAD_CONFIG
    if isinstance(exc, AuthenticationError):
        return (
            f"Redis at {redis_url} refused the credentials ({_cause(exc)}); "
            "check ESN_REDIS_USERNAME and ESN_REDIS_PASSWORD (or the URL's user and password)",
            ExitCode.BAD_CONFIG,
        )
    # A certificate Redis's server cannot be verified with is a setting to fix, not an outage.
    if isinstance(exc, RedisConnectionError) and _tls_refused(exc):
        return (
            f"Redis at {redis_url} failed the TLS handshake ({_cause(exc)}); check "
            "ESN_REDIS_TLS_CAFILE (the CA that signed the server's certificate) and the host name",
            ExitCode.BAD_CONFIG,
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return (
            f"Redis unreachable at {redis_url} ({_cause(exc)}); start it (esn-pulse stack up) "
            "or point ESN_REDIS_URL at a running Redis",
            ExitCode.UNREACHABLE,
        )
    # A cluster failing over (no master for a slot yet, CLUSTERDOWN, TRYAGAIN): waiting helps.
    if isinstance(exc, ClusterDownError | TryAgainError | RedisClusterException):
        return (
            f"the Redis Cluster at {redis_url} cannot serve every slot now ({_cause(exc)}); "
            "retry once its failover ends (redis-cli --cluster check shows it)",
            ExitCode.UNREACHABLE,
        )
    # A script refused a key reports a plain error reply, not NOPERM.
    if isinstance(exc, NoPermissionError) or "can't access at least one of the keys" in str(exc):
        return (
            f"Redis at {redis_url} denied a command to this user ({_cause(exc)}); grant the "
            "ACL in docs/operations/security.md",
            ExitCode.BAD_CONFIG,
        )
    if isinstance(exc, RedisError) and "cluster support disabled" in str(exc):
        return (
            f"ESN_REDIS_URL names a Redis Cluster but {redis_url} is a single Redis "
            "(cluster support disabled); use a redis:// or rediss:// URL for it",
            ExitCode.BAD_CONFIG,
        )
    if isinstance(exc, RedisError):
        return (
            f"Redis failed a command ({type(exc).__name__}: {_cause(exc)}); check that "
            "ESN_REDIS_URL is this deployment's Redis, rerun with ESN_DEBUG=1 and report it",
            ExitCode.FAILURE,
        )
    if isinstance(exc, KafkaTimeoutError):
        # aiokafka also times out waiting for a topic's metadata: say both possible causes.
        return (
            f"Kafka at {kafka} did not answer in time ({_cause(exc)}): it is unreachable, or "
            "a topic is missing and the broker does not create topics; check "
            "ESN_KAFKA_BOOTSTRAP and ESN_TOPIC_PREFIX (esn-pulse stack up creates the topics)",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, KafkaConnectionError):
        refused = _kafka_refused()
        if refused:
            # A refused password or certificate: retrying later would not help.
            return refused, ExitCode.BAD_CONFIG
        return (
            f"Kafka unreachable at {kafka} ({_cause(exc)}); start it (esn-pulse stack up) or "
            "point ESN_KAFKA_BOOTSTRAP at a running broker",
            ExitCode.UNREACHABLE,
        )
    # A coordinator still loading or a leader being elected: Kafka will answer, later. A missing
    # topic is retriable to aiokafka too, but waiting will not create it.
    if (
        isinstance(exc, KafkaError)
        and exc.retriable
        and not isinstance(exc, UnknownTopicOrPartitionError)
    ):
        return (
            f"Kafka at {kafka} is not ready ({type(exc).__name__}: {_cause(exc)}); run again "
            "in a moment (a broker that has just started or is electing leaders answers so)",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, KafkaError):
        return (
            f"Kafka at {kafka} refused the request ({type(exc).__name__}: {_cause(exc)}); "
            "check the topics (esn-pulse stack up creates them) and ESN_TOPIC_PREFIX",
            ExitCode.FAILURE,
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"the input is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "convert it to UTF-8 (e.g. iconv -t UTF-8) and run again",
            ExitCode.BAD_INPUT,
        )
    if isinstance(exc, ConnectionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH)
    ):
        return (
            f"a server did not answer ({_cause(exc)}); check ESN_KAFKA_BOOTSTRAP ({kafka}) "
            f"and ESN_REDIS_URL ({redis_url}), or start them with esn-pulse stack up",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return (
            f"cannot use {exc.filename}: {exc.strerror or _cause(exc)}; "
            "check the path and its permissions",
            ExitCode.FAILURE,
        )
    return (
        f"unexpected {type(exc).__name__}: {_cause(exc)}; rerun with {DEBUG_VARIABLE}=1 for "
        "the traceback and report it",
        ExitCode.FAILURE,
    )


def _tls_refused(exc: BaseException) -> bool:
    """Whether a connection failed its TLS handshake (redis-py wraps the ssl error in its own)."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):  # a cause chain is short; a cycle must not loop
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "[SSL" in str(exc)


def _kafka_refused() -> str | None:
    """Whether Kafka refused this client's password or certificate (aiokafka only says that
    no server answered); None when it did not, or when that cannot be found out."""
    import asyncio

    try:
        from stream.clients import security_failure
        from stream.settings import get_settings

        return asyncio.run(security_failure(get_settings()))
    except Exception:  # bad settings, or a running loop: the plain line is said instead
        return None


def _invalid_setting(exc: Any) -> str:
    """The first invalid ``ESN_*`` variable; never its value (it may be a secret)."""
    first = exc.errors()[0]
    names = [str(part) for part in first.get("loc", ()) if isinstance(part, str)]
    variable = f"ESN_{names[0].upper()}" if names else "an ESN_ variable"
    return (
        f"invalid setting {variable}: {first.get('msg', 'invalid')}; fix that environment "
        "variable (docs/reference/settings.md lists each one and its default)"
    )


def fail(exc: BaseException) -> NoReturn:
    """Print the one line (after the traceback under ESN_DEBUG) and exit with its code."""
    failure = describe(exc)
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    # stderr closed or a broken pipe: the exit code still tells.
    with contextlib.suppress(OSError):
        click.echo(failure.message, err=True)
    sys.exit(failure.exit_code)


def quiet_library_logs() -> None:
    """Library log records stay out of a command's output (its one line says what failed).

    Without a handler, Python prints warnings and errors of aiokafka and asyncio (for example
    "Unable connect to ..." and "Unclosed AIOKafkaProducer") to stderr. Under ESN_DEBUG they
    are shown.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    if debug_enabled():
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    else:
        root.addHandler(logging.NullHandler())


class EsnGroup(click.Group):
    """A click group whose every failure ends in one line on stderr and a documented code.

    Click run standalone exits 2 on its own usage errors (an unknown option, a bad value, a
    missing command); here 2 means "a server is unreachable, retry later", so every error is
    caught under ``standalone_mode=False`` and mapped by :func:`describe` (a usage error is 1).
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode exit with the documented code."""
        prog = prog_name or PROG_NAME
        if not standalone_mode:
            return super().main(args, prog, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog, complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except NoArgsIsHelp as exc:
            # A group named without its command: its help, as it is (click's message is the
            # whole help text, which one line would squash), on stdout; a usage error all the same.
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(ExitCode.USAGE)
        except BaseException as exc:  # KeyboardInterrupt too: one line, 130
            fail(exc)
        sys.exit(result if isinstance(result, int) else ExitCode.OK)
