"""``esn-pulse nudge``: the nudge service (``--dry-run``, ``--preview``), its audit log and the
effect figure (docs/operations/nudges.md)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from stream import jsonutil
from stream.cli_errors import BadConfig, BadInput
from stream.cli_params import Instant
from stream.nudge.effect import effect
from stream.nudge.rules import Rules, RulesError, load_rules
from stream.nudge.settings import NudgeSettings
from stream.nudge.templates import TemplateProblem
from stream.settings import get_settings
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore

_LOG_COLUMNS = ("time", "who", "kind", "channel", "template", "outcome", "reason")


def _rules(path: str | None, nudge_settings: NudgeSettings) -> Rules:
    try:
        return load_rules(Path(path or nudge_settings.rules_file))
    except RulesError as exc:
        raise BadConfig(str(exc), "fix the rules file (docs/operations/nudges.md)") from None


def _now_ms() -> int:
    return int(time.time() * 1000)


@click.group(invoke_without_command=True)
@click.option(
    "--rules", "rules_path", metavar="FILE", help="The rules file (ESN_NUDGE_RULES_FILE)."
)
@click.option(
    "--dry-run",
    "dry_run",
    is_flag=True,
    help="Decide and record as a live run would, but write each message to --out instead.",
)
@click.option("--out", metavar="FILE", default="-", help="Where --dry-run writes (JSON lines).")
@click.option(
    "--preview",
    metavar="FLAG.json",
    help="Render what would be sent for one flag record (a file, or - for stdin) and exit.",
)
@click.pass_context
def nudge(
    ctx: click.Context, rules_path: str | None, dry_run: bool, out: str, preview: str | None
) -> None:
    """Send re-engagement nudges for flagged users, per a rules file (runs until stopped)."""
    if ctx.invoked_subcommand is not None:
        return
    nudge_settings = NudgeSettings()
    rules = _rules(rules_path, nudge_settings)
    if preview is not None:
        _preview(preview, rules)
        return
    from stream.nudge.app import serve

    if rules.opt_out_file and not Path(rules.opt_out_file).is_file():
        # Nobody's opt-out may be lost to a wrong path: refused before anything connects.
        raise BadConfig(
            f"the opt-out file {rules.opt_out_file} is missing",
            "create it (it may be empty) or fix opt_out_file in the rules",
        )
    settings = get_settings()
    target: IO[str] | None = None
    if dry_run:
        target = sys.stdout if out == "-" else open(out, "a", encoding="utf-8")  # noqa: SIM115
    try:
        asyncio.run(serve(settings, nudge_settings, rules, target))
    finally:
        if target not in (None, sys.stdout) and target is not None:
            target.close()


def _preview(source: str, rules: Rules) -> None:
    from stream.nudge.preview import preview

    raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        record = jsonutil.loads(raw)
        if not isinstance(record, dict) or not {"kind", "user_id", "event_id", "at"} <= set(record):
            raise ValueError("needs kind, user_id, event_id and at")
    except ValueError as exc:
        raise BadInput(f"{source} is not a flag record ({exc})", "pass one JSON object") from None

    async def person() -> dict[str, Any] | None:
        redis = RedisStore.from_settings(get_settings())
        try:
            return await NudgeStore(redis).address(str(record["user_id"]))
        except Exception:  # the preview renders without the address book
            return None
        finally:
            await redis.close()

    try:
        click.echo(preview(record, rules, asyncio.run(person()), _now_ms()))
    except TemplateProblem as exc:
        raise BadConfig(str(exc), "fix the template") from None


@nudge.command("log")
@click.option("--since", type=Instant(), default="7d", show_default=True, help="From when.")
@click.option("--outcome", default=None, help="Only this outcome (sent, opted_out, ...).")
@click.option("--dry-run", "dry_run", is_flag=True, help="The dry runs' log instead.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def nudge_log(since: int, outcome: str | None, dry_run: bool, as_json: bool) -> None:
    """Every delivery and suppression since a time: who (pseudonym), flag, channel, outcome."""

    async def read() -> list[dict[str, Any]]:
        redis = RedisStore.from_settings(get_settings())
        try:
            return await NudgeStore(redis, dry_run=dry_run).audit(since)
        finally:
            await redis.close()

    entries = [e for e in asyncio.run(read()) if outcome in (None, e.get("outcome"))]
    if as_json:
        for entry in entries:
            click.echo(jsonutil.dumps(entry).decode())
        return
    rows = [
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(e["at"]) / 1000)),
            str(e.get("who")),
            str(e.get("kind")),
            str(e.get("channel")),
            str(e.get("template")),
            str(e.get("outcome")),
            str(e.get("reason") or ""),
        )
        for e in entries
    ]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(_LOG_COLUMNS)]
    for row in [_LOG_COLUMNS, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(rows)} entries")


@nudge.command("effect")
@click.option("--since", type=Instant(), default="90d", show_default=True, help="Decisions from.")
@click.option("--json", "as_json", is_flag=True, help="The figure as JSON (as the API's).")
def nudge_effect(since: int, as_json: bool) -> None:
    """Share of nudged people active again within 7 and 30 days, against those not nudged."""

    async def read() -> list[dict[str, Any]]:
        redis = RedisStore.from_settings(get_settings())
        try:
            return await NudgeStore(redis).effect_entries()
        finally:
            await redis.close()

    figure = effect(asyncio.run(read()), _now_ms(), since, minimum=get_settings().min_group_size)
    if as_json:
        click.echo(jsonutil.dumps(figure).decode())
        return
    for window, row in figure["windows"].items():
        for group in ("nudged", "not_nudged"):
            cell = row[group]
            share = "-" if cell["share"] is None else f"{cell['share']:.1%}"
            again = "-" if cell["active_again"] is None else cell["active_again"]
            click.echo(
                f"active again within {window}: {group:10} {share:>6} "
                f"({again} of {cell['flags']} flags)"
            )


def register(main: click.Group) -> None:
    """Add the nudge group to ``esn-pulse``."""
    main.add_command(nudge)
