"""The ``esn-pulse`` command group, with stack, worker, user and inactive.

Other commands live in a module per group, registered at the bottom: produce and generate
(:mod:`stream.cli_produce`), the analytics (:mod:`stream.cli_analytics`), import, dlq, rebuild,
demo. Every failure ends in :mod:`stream.cli_errors`: one line and a documented exit code.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from datetime import UTC, datetime
from typing import Any

import click

from stream import (
    cli_analytics,
    cli_api,
    cli_demo,
    cli_dlq,
    cli_import,
    cli_produce,
    cli_rebuild,
    jsonutil,
)
from stream.cli_errors import CliError, EsnGroup, quiet_library_logs
from stream.cli_params import Duration, configured_definitions
from stream.flags.machine import UserInactivity
from stream.queries import flags_of
from stream.settings import get_settings
from stream.stack import LocalStack, StackError


@click.group(cls=EsnGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """ESN Pulse: real-time engagement engine for enterprise social networks.

    Exit codes: 0 done, 1 failed, 2 usage error, 3 Kafka or Redis unreachable, 4 bad input
    data, 5 bad ESN_* setting. ESN_DEBUG=1 adds the traceback to an error.
    """
    # The worker logs through Faust; every other command speaks in its own one-line errors.
    if ctx.invoked_subcommand != "worker":
        quiet_library_logs()


# --- stack ---------------------------------------------------------------------------------


@main.group()
def stack() -> None:
    """The local Kafka broker and Redis (started only where none answers)."""


@stack.command("up")
def stack_up() -> None:
    """Start what is missing, wait until healthy, create the topics."""
    try:
        started = LocalStack(get_settings()).up()
    except StackError as exc:
        raise CliError(f"the stack did not come up: {exc}", "fix that and run it again") from exc
    click.echo(f"started: {', '.join(started) or 'nothing (all already up)'}")
    _print_status()


@stack.command("down")
def stack_down() -> None:
    """Stop the services this stack started."""
    stopped = LocalStack(get_settings()).down()
    click.echo(f"stopped: {', '.join(stopped) or 'nothing'}")


@stack.command("status")
def stack_status() -> None:
    """Show which services answer; exit 1 when one does not."""
    if not _print_status():
        sys.exit(1)


def _print_status() -> bool:
    all_up = True
    for service in LocalStack(get_settings()).status():
        managed = f"pid {service.managed_pid}" if service.managed_pid else "external"
        state = "up" if service.up else "DOWN"
        click.echo(f"{service.name:6} {service.address:22} {state:5} {managed}")
        all_up = all_up and service.up
    return all_up


# --- worker --------------------------------------------------------------------------------


@main.command()
def worker() -> None:
    """Run the Faust worker (activity ingest, /metrics, /health, /ready)."""
    from stream.app import app
    from stream.kafka_admin import ensure_topics
    from stream.preflight import wait_for_dependencies
    from stream.shutdown import BoundedStopWorker

    settings = get_settings()
    if not asyncio.run(wait_for_dependencies(settings)):
        return  # stopped (SIGTERM, Ctrl-C) before Kafka and Redis answered
    # Faust subscribes its agents as it starts: their topics must exist by then.
    asyncio.run(ensure_topics(settings))
    cli_rebuild.check_deployment(settings)  # one line and exit 5 on a change it cannot follow
    BoundedStopWorker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


# --- user ----------------------------------------------------------------------------------


@main.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user(user_id: str, as_json: bool) -> None:
    """What Redis knows about one user."""
    from stream.privacy import looks_like_pseudonym, lookup_id
    from stream.store import RedisStore

    settings = get_settings()

    async def read(stored_id: str) -> Any:
        from stream.queries import inactivity_state

        store = RedisStore.from_settings(settings)
        try:
            state = await store.user_state(stored_id)
            return state, await inactivity_state(store, settings, stored_id)
        finally:
            await store.close()

    # Under ESN_PSEUDONYMIZE_KEY the engine stores pseudonyms: look up the typed id's, or, for
    # a pseudonym copied from an output, that one as it is.
    stored = lookup_id(settings, user_id)
    state, inactivity = asyncio.run(read(stored))
    if state is None and inactivity is None and stored != user_id and looks_like_pseudonym(user_id):
        stored = user_id
        state, inactivity = asyncio.run(read(stored))
    if state is None and inactivity is None:
        raise CliError(
            f"no activity known for user {user_id!r}",
            "check the id (ids are exact, and pseudonymised under ESN_PSEUDONYMIZE_KEY: see "
            "esn-pulse pseudonym) and ESN_REDIS_PREFIX",
        )
    doc: dict[str, Any] = {
        "user_id": stored,
        "first_seen": _iso(state.first_seen_ms) if state else None,
        "last_seen": _iso(state.last_seen_ms) if state else None,
        "events": sum(state.counts.values()) if state else 0,
        "counts": state.counts if state else {},
        "state": _user_state(inactivity),
        "flags": flags_of(inactivity, configured_definitions(settings)) if inactivity else [],
    }
    if as_json:
        click.echo(jsonutil.dumps(doc).decode())
        return
    for key in ("user_id", "first_seen", "last_seen", "events", "state"):
        click.echo(f"{key:11} {doc[key]}")
    click.echo(f"{'flags':11} {', '.join(doc['flags']) or '-'}")
    for event_type, count in doc["counts"].items():
        click.echo(f"  {event_type:9} {count}")


def _user_state(inactivity: UserInactivity | None) -> str:
    if inactivity is None:
        return "unknown to the inactivity engine (not swept yet)"
    if not inactivity.enabled:
        return "disabled"
    return "flagged" if inactivity.flagged else "active"


@main.command()
@click.option(
    "--threshold",
    "threshold_ms",
    type=Duration(),
    default=None,
    help="e.g. 30d (default: the smallest configured).",
)
@click.option("--never-active", is_flag=True, help="Enabled profiles that never acted instead.")
@click.option("--community", default=None, help="Only users with a role in this community.")
@click.option("--department", default=None, help="Only users of this department.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table")
def inactive(
    threshold_ms: int | None,
    never_active: bool,
    community: str | None,
    department: str | None,
    output: str,
) -> None:
    """The users flagged right now, newest silence first."""
    from stream.flags.machine import threshold_label
    from stream.queries import inactive_users
    from stream.store import RedisStore

    settings = get_settings()
    definitions = configured_definitions(settings)
    if threshold_ms is not None and threshold_ms not in definitions.thresholds_ms:
        configured = ", ".join(threshold_label(t) for t in definitions.thresholds_ms)
        raise click.BadParameter(
            f"{threshold_label(threshold_ms)} is not a configured threshold ({configured}; "
            "ESN_INACTIVITY_THRESHOLDS sets them)",
            param_hint="'--threshold'",
        )

    async def read() -> list[Any]:
        store = RedisStore.from_settings(settings)
        try:
            return await inactive_users(
                store,
                settings,
                definitions,
                threshold_ms=threshold_ms,
                never_active=never_active,
                community=community,
                department=department,
            )
        finally:
            await store.close()

    rows = [
        {
            "user_id": row.user_id,
            "last_seen": _iso(row.last_seen_ms) if row.last_seen_ms else None,
            "created": _iso(row.created_ms),
            "department": row.department,
            "flags": row.flags,
            "owner": row.roles["owner"],
            "member": row.roles["member"],
            "follower": row.roles["follower"],
        }
        for row in asyncio.run(read())
    ]
    if output == "json":
        click.echo(jsonutil.dumps(rows).decode())
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["user_id", "last_seen", "created", "department", "flags", "owner",
                         "member", "follower"])  # fmt: skip
        for r in rows:
            cells = [r["user_id"], r["last_seen"] or "", r["created"], r["department"] or "",
                     " ".join(r["flags"]), " ".join(r["owner"]), " ".join(r["member"]),
                     " ".join(r["follower"])]  # fmt: skip
            writer.writerow([spreadsheet_safe(cell) for cell in cells])
    else:
        click.echo(f"{'user':12} {'last seen':24} {'created':24} {'department':14} owns")
        for r in rows:
            click.echo(
                f"{r['user_id']:12} {r['last_seen'] or '-':24} {r['created']:24} "
                f"{r['department'] or '-':14} {','.join(r['owner']) or '-'}"
            )
        click.echo(f"{len(rows)} users")


#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a quote."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


# Analytics commands live in their own module; registered here so `esn-pulse --help` lists them.
cli_produce.register(main)
cli_analytics.register(main)
cli_import.register(main)
cli_dlq.register(main)
cli_rebuild.register(main)
cli_demo.register(main)
cli_api.register(main)


if __name__ == "__main__":
    main(prog_name="esn-pulse")
