"""``esn-pulse import``: real ESN exports into the activity and directory topics (or a file).

A directory is read at its top only, and only the files its format defines (``file_patterns``).
Exit status (docs/operations/imports.md): 0 done; 1 a directory with none of the format's files,
or nothing mapped; 4 bad input data (a file is cut short or corrupt), after the summary; the rest
(2 usage, 3 Kafka unreachable, 1 an --out that cannot be written) from the CLI's error layer.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import IO, Any

import click

from stream import jsonutil
from stream.cli_errors import PROG_NAME, CliError, ExitCode, one_line
from stream.settings import get_settings

#: Every format ``--format`` takes; the README has a section on each, with its export steps.
FORMATS = (
    "activitystreams", "connections", "m365-audit", "slack-audit", "slack-analytics",
    "graph-usage", "stackexchange", "csv", "scim", "directory-csv",
)  # fmt: skip


def _adapter(fmt: str, mapping: str | None, scim_id: str, slack_id: str) -> Any:
    """The adapter of a format, built from the options that concern it."""
    from stream.adapters import (
        activitystreams,
        connections,
        csvgeneric,
        directorycsv,
        graphusage,
        m365audit,
        scim,
        slack,
        stackexchange,
    )  # fmt: skip

    simple: dict[str, Any] = {
        "activitystreams": activitystreams.ActivityStreamsAdapter,
        "connections": connections.ConnectionsAdapter,
        "m365-audit": m365audit.M365AuditAdapter,
        "graph-usage": graphusage.GraphUsageAdapter,
        "stackexchange": stackexchange.StackExchangeAdapter,
    }
    if fmt in simple:
        return simple[fmt]()
    if fmt == "scim":
        return scim.ScimAdapter(scim_id)
    if fmt == "slack-audit":
        return slack.SlackAuditAdapter(slack_id)
    if fmt == "slack-analytics":
        return slack.SlackAnalyticsAdapter(slack_id)
    try:
        if fmt == "directory-csv":
            known = directorycsv.FIELDS
            pairs = csvgeneric.parse_mapping(mapping, known, ()) if mapping else {}
            return directorycsv.DirectoryCsvAdapter(pairs)
        if not mapping:
            raise click.BadParameter("--format csv needs --map", param_hint="--map")
        return csvgeneric.CsvAdapter(csvgeneric.parse_mapping(mapping))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from None


def register(main: click.Group) -> None:
    """Add ``import`` to the ``esn-pulse`` group."""

    @main.command("import")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
    @click.argument("source", type=click.Path(exists=True, path_type=Path))
    @click.option("--to-kafka", is_flag=True, help="Send to the activity/directory topics.")
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write JSON lines (directory records to OUT's .directory.jsonl).",
    )
    @click.option("--dry-run", is_flag=True, help="Validate only; send and write nothing.")
    @click.option(
        "--map",
        "mapping",
        default=None,
        help="csv, directory-csv: field=column,... or field==constant, or a YAML file.",
    )
    @click.option(
        "--scim-id",
        default="userName",
        show_default=True,
        help="scim: the attribute that is the user id.",
    )
    @click.option(
        "--slack-id",
        type=click.Choice(["email", "id"]),
        default="email",
        show_default=True,
        help="slack-audit, slack-analytics: users are their e-mail, or their Slack member id.",
    )
    @click.option(
        "--checkpoint",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Resume from / record progress in this file.",
    )
    @click.option("--skipped", "skipped_file", type=click.File("w"), default=None,
                  help="Write every skipped record's location and reason (TSV).")  # fmt: skip
    @click.option("--keep-going", is_flag=True,
                  help="Go on with the next file after a broken one (the exit status is 4 all "
                  "the same).")  # fmt: skip
    def import_(
        fmt: str,
        source: Path,
        to_kafka: bool,
        out: Path | None,
        dry_run: bool,
        mapping: str | None,
        scim_id: str,
        slack_id: str,
        checkpoint: Path | None,
        skipped_file: IO[str] | None,
        keep_going: bool,
    ) -> None:
        """Import a FORMAT file, or the FORMAT files at the top of a directory (not its
        subfolders), streaming, with a final summary."""
        from stream.adapters.files import ByteMeter
        from stream.adapters.progress import ProgressBar, summary_text
        from stream.adapters.runner import input_files, left_out, run_import
        from stream.adapters.sinks import FileSink, KafkaSink

        if sum((to_kafka, out is not None, dry_run)) != 1:
            raise click.UsageError("choose exactly one of --to-kafka, --out FILE, --dry-run")
        adapter = _adapter(fmt, mapping, scim_id, slack_id)
        files = input_files(source, adapter.file_patterns)
        if not files:
            raise CliError(
                f"{source.absolute()} holds no {fmt} file at its top (subfolders are not read)",
                f"put the export's files there ({expected_files(adapter.file_patterns)}) or "
                "name a file",
            )
        meter = ByteMeter(total=sum(path.stat().st_size for path in files))
        bar = ProgressBar(meter, sys.stderr)

        def on_skip(location: str, reason: str, detail: str) -> None:
            if skipped_file is not None:
                skipped_file.write(f"{location}\t{reason}\t{detail}\n")

        def progress(summary: Any, final: bool) -> None:
            bar.update(summary.records_read, final)

        async def run() -> Any:
            sink: Any = None
            if to_kafka:
                sink = KafkaSink(get_settings())
                await sink.start()
            elif out is not None:
                sink = FileSink(out)
            try:
                return await run_import(adapter, files, sink, checkpoint, on_skip=on_skip,
                                        progress=progress, meter=meter,
                                        keep_going=keep_going)  # fmt: skip
            finally:
                if isinstance(sink, KafkaSink):
                    await sink.stop()
                elif sink is not None:
                    sink.close()

        summary = asyncio.run(run())
        click.echo(summary_text(summary), err=True)
        unread = left_out(source, adapter.file_patterns)
        if unread:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in unread[:5])
            more = f" and {len(unread) - 5} more" if len(unread) > 5 else ""
            click.echo("  " + one_line(f"not read (not {fmt} files, or subfolders): {names}{more}"),
                       err=True)  # fmt: skip
        click.echo(jsonutil.dumps(summary.as_json()).decode())
        done = "validated" if dry_run else "written" if out is not None else "sent"
        for broken in summary.broken:
            click.echo(broken_line(broken, done, checkpoint is not None, keep_going), err=True)
        if summary.broken:
            sys.exit(ExitCode.BAD_INPUT)
        if not (summary.activity_events or summary.directory_records or summary.resumed_past):
            click.echo(nothing_mapped_line(summary, fmt, len(files)), err=True)
            sys.exit(ExitCode.FAILURE)


def expected_files(patterns: tuple[str, ...]) -> str:
    """A format's file patterns for a person: ``*.json, *.jsonl, each may be .gz``."""
    plain = [pattern for pattern in patterns if not pattern.endswith(".gz")]
    gzipped = len(plain) < len(patterns)
    return ", ".join(plain) + (", each may be .gz" if gzipped else "")


def nothing_mapped_line(summary: Any, fmt: str, files: int) -> str:
    """The one line of an import that mapped nothing: what was read, and what to check."""
    read = f"{summary.records_read:,} record" + ("" if summary.records_read == 1 else "s")
    of = f"{files} file" + ("" if files == 1 else "s")
    if summary.records_read:
        why = f"{read} read from {of}, none mapped"
        todo = f"check that they are {fmt} records (--format); --skipped FILE lists every reason"
    else:
        why = f"no record in {of}"
        todo = "check that the export is not empty and that --format is right"
    return one_line(f"{PROG_NAME}: nothing imported: {why}; {todo}")


def broken_line(broken: Any, done: str, checkpointed: bool, keep_going: bool) -> str:
    """The one line that says a file broke, where, what became of the records before, and what
    to do."""
    before = broken.records_before
    if done == "validated":
        rerun = "fix or replace it and validate again"
    elif checkpointed:
        rerun = "fix or replace it and run again: the checkpoint resumes after them"
    else:
        rerun = "fix or replace it and run again (they go again: --checkpoint F resumes past them)"
    if not keep_going:
        rerun += "; --keep-going reads the other files past a broken one"
    records = f"{before:,} record was" if before == 1 else f"{before:,} records were"
    where = broken.where if broken.where.startswith(("after", "before")) else f"at {broken.where}"
    # The detail comes from the input's parser: cut, so the line keeps what to do.
    detail = broken.detail if len(broken.detail) <= 200 else broken.detail[:197] + "..."
    return one_line(f"{PROG_NAME}: {broken.path} is broken {where}: {detail}; the "
                    f"{records} {done} before it; {rerun}")  # fmt: skip
