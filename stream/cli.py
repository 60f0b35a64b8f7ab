"""The ``esn-pulse`` command: stack, worker, produce, generate, user, inactive, demo.

The analytics commands (report, summary, initiative, pseudonym) are in :mod:`stream.cli_analytics`,
the dead-letter ones in :mod:`stream.cli_dlq`; every failure ends in :mod:`stream.cli_errors`.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import click

from stream import cli_analytics, cli_dlq, cli_import, cli_rebuild, jsonutil
from stream.cli_errors import BadInput, CliError, EsnGroup, quiet_library_logs
from stream.cli_params import Duration, configured_definitions
from stream.inactivity import UserInactivity
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


# --- produce and generate -------------------------------------------------------------------


@main.command()
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
    for number, reason in summary.rejected[:50]:
        click.echo(f"  line {number}: {reason}")
    if len(summary.rejected) > 50:
        click.echo(f"  ... and {len(summary.rejected) - 50} more")


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
    not a bar's label as well.
    """

    def __init__(self, length: int, label: str) -> None:
        self.length = length
        self.label = label
        self.bar: Any = None

    def update(self, count: int) -> None:
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


@main.command()
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


# --- user ----------------------------------------------------------------------------------


@main.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user(user_id: str, as_json: bool) -> None:
    """What Redis knows about one user."""
    from stream.store import RedisStore

    settings = get_settings()

    async def read() -> Any:
        from stream.queries import inactivity_state

        store = RedisStore.from_settings(settings)
        try:
            return await store.user_state(user_id), await inactivity_state(store, settings, user_id)
        finally:
            await store.close()

    state, inactivity = asyncio.run(read())
    if state is None and inactivity is None:
        raise CliError(
            f"no activity known for user {user_id!r}",
            "check the id (ids are exact, and pseudonymised under ESN_PSEUDONYMIZE_KEY: see "
            "esn-pulse pseudonym) and ESN_REDIS_PREFIX",
        )
    doc: dict[str, Any] = {
        "user_id": user_id,
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
    from stream.inactivity import threshold_label
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
            writer.writerow([r["user_id"], r["last_seen"] or "", r["created"],
                             r["department"] or "", " ".join(r["flags"]), " ".join(r["owner"]),
                             " ".join(r["member"]), " ".join(r["follower"])])  # fmt: skip
    else:
        click.echo(f"{'user':12} {'last seen':24} {'created':24} {'department':14} owns")
        for r in rows:
            click.echo(
                f"{r['user_id']:12} {r['last_seen'] or '-':24} {r['created']:24} "
                f"{r['department'] or '-':14} {','.join(r['owner']) or '-'}"
            )
        click.echo(f"{len(rows)} users")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


# --- demo (make run) -----------------------------------------------------------------------


@main.command()
@click.option("--users", default=2000, show_default=True)
@click.option("--days", default=120, show_default=True, help="History replayed first.")
@click.option("--rate", default=50.0, show_default=True, help="Live events per second after.")
@click.option(
    "--stackexchange",
    "dump",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Import this Stack Exchange dump instead (written first, made up, if it is missing).",
)
def demo(users: int, days: int, rate: float, dump: Path | None) -> None:
    """Bring up the stack and a worker, replay history, then stream live events until Ctrl-C.

    With --stackexchange, the history is a Stack Exchange site's dump and nothing live follows.
    """
    from stream.generator import directory_records, generate_events, live_events
    from stream.produce import produce_events, produce_lines, topic_is_empty

    # The history is replayed faster than it happened: with the event clock it flags exactly
    # what a live run would have (the wall clock would flag everyone whose rest of history has
    # not arrived yet). Live events then keep the event clock at the wall clock.
    os.environ.setdefault("ESN_CLOCK", "event")
    get_settings.cache_clear()
    settings = get_settings()
    # Ctrl-C and SIGTERM both end the demo through the same cleanup, whatever runs at the time.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stack_ = LocalStack(settings)
    started: list[str] = []
    worker_proc: subprocess.Popen[bytes] | None = None
    prometheus: Any = None
    try:
        started = stack_.up()
        log_path = Path(settings.state_dir) / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://{settings.web_host}:{settings.web_port}"
        _wait_ready(f"{base_url}/ready", worker_proc)
        prometheus = _start_prometheus(settings)
        prometheus_url = prometheus.url
        if dump is not None:
            _demo_real(settings, dump, base_url, prometheus_url, log_path)  # until Ctrl-C
        elif asyncio.run(topic_is_empty(settings)):
            first_day = default_start(days)
            roster = (jsonutil.dumps(r) for r in directory_records(users, first_day, days, 7))
            asyncio.run(produce_lines(settings, roster, validate=False, directory=True))
            # Up to now, not to the end of today: the event clock must not run ahead of the
            # live events that follow.
            cutoff = datetime.now(UTC)
            history = (
                event
                for event in generate_events(users, days, first_day, 7)
                if datetime.fromisoformat(event["time"]) <= cutoff
            )
            sent = asyncio.run(produce_events(settings, history)).sent
            replayed = f"replayed a directory and {sent} events of {users} users over {days} days"
        else:
            # Re-sending the same history would count it twice: it is already in the topic.
            replayed = "history already in the topic (kept from an earlier run)"
        _demo_initiative(settings, users, days)
        click.echo(
            f"""
ESN Pulse is running.
  metrics:    {base_url}/metrics
  API:        {base_url}/api/v1/summary   (OpenAPI: {base_url}/api/v1/openapi.json)
  Prometheus: {prometheus_url}   (rules and alerts: {prometheus_url}/alerts)
  ready:      {base_url}/ready
  worker log: {log_path}
  {replayed}; now {rate:g} live events/s.
Try, in another shell (source .venv/bin/activate):
  esn-pulse inactive                  # who went quiet, newest silence first
  esn-pulse inactive --never-active
  esn-pulse user u000001
  esn-pulse report --out report.html  # an offline HTML engagement report
  esn-pulse initiative show demo-onboarding
  curl -s '{base_url}/api/v1/communities?state=orphaned'
  kcat -b {settings.kafka_bootstrap} -C -t {settings.topic_prefix}esn.users.flagged.v1 -e
  curl -s {base_url}/metrics | grep -E '^esn_(events_total|users|flags|tier)'
Ctrl-C stops everything this command started."""
        )
        asyncio.run(produce_events(settings, live_events(users), rate=rate))
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    except StackError as exc:
        raise CliError(f"the demo stack did not come up: {exc}", "fix that, run again") from exc
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        if worker_proc is not None:
            _terminate(worker_proc)
        if prometheus is not None:
            prometheus.stop()
        stopped = stack_.down(tuple(started))
        click.echo(f"stopped the worker and {', '.join(stopped) or 'no stack service'}")


def _demo_real(
    settings: Any, dump: Path, base_url: str, prometheus_url: str, log_path: Path
) -> None:
    """``make demo-real``: a Stack Exchange dump through the import, then wait for Ctrl-C."""
    from stream.adapters.runner import input_files, run_import
    from stream.adapters.sinks import KafkaSink
    from stream.adapters.stackexchange import StackExchangeAdapter
    from stream.produce import topic_is_empty
    from stream.sedump import write_dump

    if not dump.exists() or not any(dump.iterdir()):
        rows = write_dump(dump)
        click.echo(f"wrote a made-up site's dump to {dump}: {rows}")

    async def load() -> Any:
        sink = KafkaSink(settings)
        await sink.start()
        try:
            return await run_import(StackExchangeAdapter(), input_files(dump), sink)
        finally:
            await sink.stop()

    if asyncio.run(topic_is_empty(settings)):
        summary = asyncio.run(load())
        done = (
            f"imported {dump}: {summary.records_read:,} records, "
            f"{summary.activity_events:,} events, {summary.directory_records:,} profiles"
        )
    else:
        done = "the dump is already in the topic (kept from an earlier run)"
    click.echo(
        f"""
ESN Pulse is running on a Stack Exchange site's history ({done}).
  API:        {base_url}/api/v1/summary
  Prometheus: {prometheus_url}
  worker log: {log_path}
Try, in another shell (source .venv/bin/activate; export ESN_TOPIC_PREFIX={settings.topic_prefix} \
ESN_REDIS_PREFIX={settings.redis_prefix}):
  esn-pulse inactive                  # members who went quiet, newest silence first
  esn-pulse inactive --never-active   # joined, never came back
  esn-pulse summary
  esn-pulse user se-1
Ctrl-C stops everything this command started."""
    )
    while True:
        time.sleep(3600)


def _start_prometheus(settings: Any) -> Any:
    """The local Prometheus with the shipped rules, scraping the demo's worker."""
    from stream.prometheus_local import LocalPrometheus, local_config

    home = Path(settings.state_dir) / "prometheus"
    prometheus = LocalPrometheus(home, settings.prometheus_port)
    target = f"{settings.web_host}:{settings.web_port}"
    return prometheus.start(local_config({"local": [target]}, scrape_interval="5s"))


def _demo_initiative(settings: Any, users: int, days: int) -> None:
    """A demo initiative: the first tenth of the people, from 45 days ago."""
    from stream.analytics.initiatives import add_initiative
    from stream.store import RedisStore

    async def add() -> None:
        store = RedisStore.from_settings(settings)
        try:
            start_ms = int((time.time() - 45 * 86_400) * 1000)
            people = [f"u{i:06d}" for i in range(max(1, users // 10))]
            await add_initiative(store, settings, "demo-onboarding", start_ms, people)
        finally:
            await store.close()

    asyncio.run(add())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(
                f"the demo's worker exited with {proc.returncode}",
                "see worker.log in ESN_STATE_DIR for why",
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise CliError(
        f"the demo's worker was not ready after {timeout:.0f}s at {url}",
        "see worker.log in ESN_STATE_DIR for why",
    )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# Analytics commands live in their own module; registered here so `esn-pulse --help` lists them.
cli_analytics.register(main)
cli_import.register(main)
cli_dlq.register(main)
cli_rebuild.register(main)


if __name__ == "__main__":
    main(prog_name="esn-pulse")
