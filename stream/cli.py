"""The ``esn-pulse`` command group, with stack and worker.

Other commands live in a module per group, registered at the bottom: produce and generate
(:mod:`stream.cli_produce`), user (:mod:`stream.cli_user`), inactive (:mod:`stream.cli_inactive`),
the analytics (:mod:`stream.cli_analytics`), import, dlq, rebuild, demo, nudge, backtest. Every
failure ends in :mod:`stream.cli_errors`: one line and a documented exit code.
"""

from __future__ import annotations

import asyncio
import sys

import click

from stream import (
    cli_analytics,
    cli_api,
    cli_at_risk,
    cli_backtest,
    cli_config,
    cli_demo,
    cli_dlq,
    cli_import,
    cli_inactive,
    cli_nudge,
    cli_produce,
    cli_rebuild,
    cli_user,
)
from stream.cli_errors import CliError, EsnGroup, ExitCode, quiet_library_logs
from stream.settings import get_settings
from stream.stack import LocalStack, StackError


@click.group(cls=EsnGroup)
@click.version_option(package_name="esn-pulse", prog_name="esn-pulse")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    default=None,
    help="A .toml or .env file of settings (as ESN_CONFIG_FILE); environment variables win.",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """ESN Pulse: real-time engagement engine for enterprise social networks.

    Exit codes: 0 done; 1 bad input or partial (a wrong argument, bad data, rejected lines, a
    bad ESN_* setting, a refused operation); 2 a server unreachable (run again later); 130
    interrupted. ESN_DEBUG=1 adds the traceback to an error.
    """
    # The worker logs through Faust; every other command speaks in its own one-line errors.
    if ctx.invoked_subcommand != "worker":
        quiet_library_logs()
    cli_config.use_config_file(config_file)


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
    """Show which services answer; exit 2 when one does not."""
    if not _print_status():
        sys.exit(ExitCode.UNREACHABLE)


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
    cli_rebuild.check_deployment(settings)  # one line and exit 1 on a change it cannot follow
    BoundedStopWorker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


# Analytics commands live in their own module; registered here so `esn-pulse --help` lists them.
cli_produce.register(main)
cli_user.register(main)
cli_inactive.register(main)
cli_at_risk.register(main)
cli_analytics.register(main)
cli_import.register(main)
cli_dlq.register(main)
cli_rebuild.register(main)
cli_demo.register(main)
cli_api.register(main)
cli_config.register(main)
cli_nudge.register(main)
cli_backtest.register(main)


if __name__ == "__main__":
    main(prog_name="esn-pulse")
