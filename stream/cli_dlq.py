"""``esn-pulse dlq``: what the dead-letter topic holds, by reason, and ``dlq replay`` to re-send it.

The reading logic is in :mod:`stream.dlq`; docs/operations/dead-letters.md says when to replay.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from stream import jsonutil
from stream.cli_errors import CliError, Unreachable, one_line
from stream.cli_params import Instant
from stream.settings import Settings, get_settings
from stream.topics import TopicNames

T = TypeVar("T")
_REASON = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
#: Characters of a detail, key or value shown per record in the text listing (JSON has all).
_SHOWN = 200


def _reasons(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    for value in values:
        if not _REASON.match(value):
            raise click.BadParameter(
                f"{one_line(value)!r} is not a reason name (e.g. not_json, bad_time)",
                ctx,
                param,
            )
    return list(values)


def _filters(command: Any) -> Any:
    """The options every dlq command shares: which topic, which reasons, since when."""
    command = click.option(
        "--since",
        "since_ms",
        type=Instant(),
        default=None,
        help="Only dead letters written at or after this time (RFC 3339, a date, or 2h ago).",
    )(command)
    command = click.option(
        "--reason",
        "reasons",
        multiple=True,
        callback=_reasons,
        help="Only this reason (repeatable); see docs/operations/dead-letters.md.",
    )(command)
    return click.option(
        "--directory",
        "directory",
        is_flag=True,
        help="The directory's dead letters (esn.directory.v1.dlq) instead of the activity's.",
    )(command)


def _topics(settings: Settings, directory: bool) -> tuple[str, str]:
    """The dead-letter topic and the topic its records replay into."""
    names = TopicNames.from_settings(settings)
    if directory:
        return names.directory_dlq, names.directory
    return names.activity_dlq, names.activity


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a dead-letter coroutine; a topic that cannot be read is one line."""
    from stream.dlq import DlqError

    try:
        return asyncio.run(work)
    except DlqError as exc:
        raise CliError(str(exc), exc.hint) from None


async def _summarise(
    settings: Settings, topic: str, selection: Any, each: Callable[[Any], None] | None
) -> tuple[Any, set[str]]:
    """One pass: the summary of the selected dead letters (each one to ``each`` as it comes)."""
    from stream.dlq import DlqSummary, read_dead_letters

    summary, present = DlqSummary(), set()
    async for letter in read_dead_letters(settings, topic, selection.since_ms):
        present.add(letter.reason)
        if selection.matches(letter):
            summary.add(letter)
            if each is not None:
                each(letter)
    return summary.done(), present


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _shown(text: str | None, limit: int = _SHOWN) -> str:
    """Escaped for a terminal (no control characters from hostile records), cut at ``limit``."""
    if text is None:
        return "-"
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _as_json(letter: Any, payload: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "dlq_partition": letter.partition,
        "dlq_offset": letter.offset,
        "dead_lettered_at": _iso(letter.timestamp_ms),
        "reason": letter.reason,
        "detail": letter.detail,
        "exception": letter.exception,
        "source": (
            dict(zip(("topic", "partition", "offset"), letter.source, strict=True))
            if letter.source
            else None
        ),
        "value_bytes": len(letter.value) if letter.value is not None else None,
        "truncated": letter.truncated,
    }
    if payload:
        doc["key"] = _text(letter.key)
        doc["value"] = _text(letter.value)
    return doc


def _print_record(letter: Any, payload: bool) -> None:
    source = "(no source headers)"
    if letter.source:
        topic, partition, offset = letter.source
        source = f"{_shown(topic, 120)} {partition}:{offset}"
    line = (
        f"{letter.partition}:{letter.offset:<8} {_iso(letter.timestamp_ms)}  from {source}  "
        f"{letter.reason}"
    )
    if letter.exception:
        line += f" [{_shown(letter.exception, 80)}]"
    if letter.truncated:
        line += f" [truncated: {_shown(letter.truncated, 80)}]"
    line += f"  {_shown(letter.detail)}"
    if payload:
        line += f"  key={_shown(_text(letter.key), 80)} value={_shown(_text(letter.value))}"
    click.echo(line)


def register(main: click.Group) -> None:
    """Add ``dlq`` and ``dlq replay`` to the ``esn-pulse`` group."""

    @main.group(invoke_without_command=True)
    @_filters
    @click.option("--list", "listing", is_flag=True, help="Each dead letter, not just counts.")
    @click.option("--json", "as_json", is_flag=True, help="With --list: JSON lines.")
    @click.option(
        "--show-payload",
        is_flag=True,
        help="With --list: the key and value too (raw user ids: mind who sees them).",
    )
    @click.pass_context
    def dlq(
        ctx: click.Context,
        directory: bool,
        reasons: list[str],
        since_ms: int | None,
        listing: bool,
        as_json: bool,
        show_payload: bool,
    ) -> None:
        """Dead letters by reason: how many, first and last; --list for each record."""
        if ctx.invoked_subcommand is not None:
            if directory or reasons or since_ms is not None or listing or as_json or show_payload:
                raise click.UsageError(
                    f"put the options after '{ctx.invoked_subcommand}' "
                    f"(esn-pulse dlq {ctx.invoked_subcommand} --reason ...)",
                    ctx,
                )
            return
        if (as_json or show_payload) and not listing:
            raise click.UsageError("--json and --show-payload go with --list", ctx)
        from stream.dlq import Selection

        settings = get_settings()
        topic, _ = _topics(settings, directory)

        def show(letter: Any) -> None:
            if as_json:
                click.echo(jsonutil.dumps(_as_json(letter, show_payload)).decode())
            else:
                _print_record(letter, show_payload)

        selection = Selection(frozenset(reasons), since_ms)
        summary, present = _run(_summarise(settings, topic, selection, show if listing else None))
        if listing:
            return
        if not summary.total:
            click.echo(f"no dead letters in {topic}{_matching(reasons, present)}")
            return
        click.echo(
            f"{summary.total} dead letters in {topic} ({summary.distinct} distinct source "
            f"records, {summary.total - summary.distinct} duplicates)"
        )
        click.echo(f"{'reason':16} {'count':>8}  {'first':29}  last")
        for reason, figures in summary.reasons.items():
            click.echo(
                f"{_shown(reason, 16):16} {figures.count:>8}  {_iso(figures.first_ms):29}  "
                f"{_iso(figures.last_ms)}"
            )

    @dlq.command("replay")
    @_filters
    @click.option("--dry-run", is_flag=True, help="Say what would be re-sent; send nothing.")
    def dlq_replay(
        directory: bool, reasons: list[str], since_ms: int | None, dry_run: bool
    ) -> None:
        """Re-send dead letters to their topic through the worker's gate, once per run."""
        from stream.dlq import Selection
        from stream.dlq_replay import ReplayInterrupted, replay

        settings = get_settings()
        topic, target = _topics(settings, directory)
        started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        selection = Selection(frozenset(reasons), since_ms)
        try:
            result = _run(replay(settings, topic, target, selection, dry_run))
        except ReplayInterrupted as exc:
            raise _interrupted(exc, target) from None
        head = f"read {result.read} dead letters of {topic}"
        head += _matching(reasons, result.reasons_present)
        skipped = f"skipped {result.duplicates} duplicates" + (
            f" and {result.truncated} truncated (not the original bytes)"
            if result.truncated
            else ""
        )
        verb = "would replay" if dry_run else "replayed"
        line = f"{head}; {verb} {result.replayed} to {target}, {skipped}"
        if dry_run or not result.replayed:
            click.echo(line)
            return
        click.echo(
            f"{line}. The worker's gate judges them again (invalid ones return to the dead "
            "letters); a second run would re-send these too: next time use --since "
            f"{started}"
        )


def _matching(reasons: list[str], present: set[str]) -> str:
    """Say which reasons were asked for when one matched nothing, and which are present."""
    if not reasons:
        return ""
    if set(reasons) & present:
        return f" (reason {', '.join(reasons)})"
    listed = ", ".join(_shown(reason, 64) for reason in sorted(present)) or "none"
    return f" (none with reason {', '.join(reasons)}; present: {listed})"


def _interrupted(exc: Any, target: str) -> CliError:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    what = (
        f"the replay into {target} failed after {exc.result.replayed} records were "
        f"acknowledged ({type(exc.cause).__name__}: {exc.cause})"
    )
    todo = (
        "those are in the topic already and a rerun would send them again (valid ones would "
        "count twice): check what arrived before replaying again"
    )
    if isinstance(exc.cause, KafkaConnectionError | KafkaTimeoutError):
        return Unreachable(what, todo)
    return CliError(what, todo)
