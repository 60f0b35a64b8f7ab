"""``esn-pulse produce`` and ``generate``: JSON lines and synthetic organisations into Kafka."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

import click

from stream import jsonutil
from stream.cli_errors import BadInput, one_line
from stream.settings import get_settings


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Records per second (default: max).",
)
@click.option(
    "--no-validate", is_flag=True, help="Send lines as they are; the worker dead-letters bad ones."
)
@click.option(
    "--directory",
    is_flag=True,
    help="FILE holds directory records (JSON lines, or CSV with a header) for esn.directory.v1.",
)
def produce(file: IO[bytes], rate: float | None, no_validate: bool, directory: bool) -> None:
    """Send FILE (JSON lines of v1 events or CloudEvents; '-' for stdin) keyed by actor."""
    from stream.produce import produce_lines

    size = _file_size(file)
    lines: Iterable[bytes] = file
    if directory and file.name.endswith(".csv"):
        # CSV rows become JSON lines; numbers in the summary count records, not file lines.
        lines = _csv_lines(file)
        size = sum(len(line) for line in lines)
    settings = get_settings()
    bar = _LazyProgress(size or 0, "producing")
    try:
        summary = asyncio.run(
            produce_lines(
                settings,
                lines,
                rate=rate,
                validate=not no_validate,
                on_line=bar.update,
                directory=directory,
            )
        )
    finally:
        bar.close()
    click.echo(f"sent {summary.sent}, rejected {len(summary.rejected)} in {summary.seconds:.1f}s")
    for number, reason in summary.rejected[:_LISTED]:
        click.echo(f"  line {number}: {one_line(reason)}")
    if len(summary.rejected) > _LISTED:
        click.echo(f"  ... and {len(summary.rejected) - _LISTED} more")
    if summary.rejected:
        raise BadInput(rejected_line(file.name, summary.sent, summary.rejected),
                       "fix those lines and send them again (the others were sent: sending "
                       "them again would count them twice)")  # fmt: skip


#: Rejected lines listed one by one on stdout; the rest are counted.
_LISTED = 50


def rejected_line(name: str, sent: int, rejected: list[tuple[int, str]]) -> str:
    """What a run that rejected lines says: how many, where (the first few line numbers)."""
    source = "stdin" if name in ("-", "<stdin>") else name
    numbers = ", ".join(str(number) for number, _ in rejected[:5])
    more = f" and {len(rejected) - 5:,} more" if len(rejected) > 5 else ""
    lines = "line" if len(rejected) == 1 else "lines"
    return (f"{len(rejected):,} {lines} of {source} rejected ({lines} {numbers}{more}, "
            f"reasons listed above), {sent:,} sent")  # fmt: skip


def _csv_lines(file: IO[bytes]) -> list[bytes]:
    """A directory CSV's rows as JSON lines; one line naming the problem when it is not CSV."""
    from stream.directory import rows_from_csv

    name = file.name
    try:
        text = file.read().decode("utf-8")
        return [jsonutil.dumps(row) + b"\n" for row in rows_from_csv(text)]
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            "save it as UTF-8 CSV (e.g. iconv -t UTF-8) and run again",
        ) from None
    except csv.Error as exc:
        raise BadInput(f"{name} is not readable CSV ({exc})", "fix the file, run again") from None


class _LazyProgress:
    """A progress bar on stderr that appears with the first line sent.

    A command that fails before sending anything (Kafka unreachable) prints its one error line,
    not a bar's label as well. Off a terminal (a log, a pipe) there is no bar: click would print
    only its label, a line that says nothing above the final one.
    """

    def __init__(self, length: int, label: str) -> None:
        self.length = length
        self.label = label
        self.bar: Any = None

    def update(self, count: int) -> None:
        if self.bar is None and not sys.stderr.isatty():
            return
        if self.bar is None:
            self.bar = click.progressbar(length=self.length, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _file_size(file: IO[bytes]) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):
        return None


@click.command()
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="People in the organisation.",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=30, show_default=True, help="Days of history."
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day (default: DAYS before today).",
)
@click.option("--seed", default=7, show_default=True)
@click.option("--out", type=click.File("wb"), default="-", help="JSON lines file (default stdout).")
@click.option("--to-kafka", is_flag=True, help="Send to the activity topic instead of --out.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --to-kafka: records per second.",
)
@click.option(
    "--directory-out",
    type=click.File("wb"),
    default=None,
    help="Also write the organisation's directory (profiles, memberships) as JSON lines.",
)
def generate(
    users: int,
    days: int,
    start: datetime | None,
    seed: int,
    out: IO[bytes],
    to_kafka: bool,
    rate: float | None,
    directory_out: IO[bytes] | None,
) -> None:
    """Generate a synthetic organisation's activity (and, on request, its directory)."""
    from stream.generator import directory_records, generate_events
    from stream.produce import produce_events

    first_day = start.date() if start else default_start(days)
    if directory_out is not None:
        for record in directory_records(users, first_day, days, seed):
            directory_out.write(jsonutil.dumps(record) + b"\n")
    events = generate_events(users, days, first_day, seed)
    if to_kafka:
        summary = asyncio.run(produce_events(get_settings(), events, rate=rate))
        click.echo(f"sent {summary.sent} events in {summary.seconds:.1f}s", err=True)
        return
    count = 0
    for event in events:
        out.write(jsonutil.dumps(event) + b"\n")
        count += 1
    click.echo(f"wrote {count} events", err=True)


def default_start(days: int) -> date:
    """History that ends today, so daily sets are inside their retention."""
    return datetime.now(UTC).date() - timedelta(days=days - 1)


def register(main: click.Group) -> None:
    """Add ``produce`` and ``generate`` to the ``esn-pulse`` group."""
    main.add_command(produce)
    main.add_command(generate)
