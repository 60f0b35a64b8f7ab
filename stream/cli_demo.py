"""``esn-pulse demo`` (``make run``): the stack, a worker, history and live events, until Ctrl-C.

Process supervision (the worker subprocess, the local Prometheus) lives here, not with commands.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from stream import jsonutil
from stream.cli_errors import CliError
from stream.cli_produce import default_start
from stream.settings import get_settings
from stream.stack import LocalStack, StackError


@click.command()
@click.option("--users", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="History replayed first.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Live events per second after.",
)
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
    api_proc: subprocess.Popen[bytes] | None = None
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
        # /api/v1 is its own process; without ESN_API_TOKENS* it answers on loopback only.
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "api"],
            stdout=(Path(settings.state_dir) / "api.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_ready(f"{api_url}/ready", api_proc, what="api")
        prometheus = _start_prometheus(settings)
        prometheus_url = prometheus.url
        if dump is not None:
            _demo_real(settings, dump, api_url, prometheus_url, log_path)  # until Ctrl-C
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
  API:        {api_url}/api/v1/summary   (OpenAPI: {api_url}/api/v1/openapi.json)
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
  curl -s '{api_url}/api/v1/communities?state=orphaned'
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
        if api_proc is not None:
            _terminate(api_proc)
        if worker_proc is not None:
            _terminate(worker_proc)
        if prometheus is not None:
            prometheus.stop()
        stopped = stack_.down(tuple(started))
        click.echo(f"stopped the worker, the api and {', '.join(stopped) or 'no stack service'}")


def _demo_real(
    settings: Any, dump: Path, api_url: str, prometheus_url: str, log_path: Path
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
  API:        {api_url}/api/v1/summary
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


def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 120, what: str = "worker"
) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(
                f"the demo's {what} exited with {proc.returncode}",
                f"see {what}.log in ESN_STATE_DIR for why",
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise CliError(
        f"the demo's {what} was not ready after {timeout:.0f}s at {url}",
        f"see {what}.log in ESN_STATE_DIR for why",
    )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def register(main: click.Group) -> None:
    """Add ``demo`` to the ``esn-pulse`` group."""
    main.add_command(demo)
