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

from stream.cli_errors import CliError
from stream.cli_produce import default_start
from stream.generator import DEMO_SEED as SEED
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
    default=None,
    help="Live events per second after the history [default: the history's own pace, so today "
    "is a day like the others; more makes today busier than any day before].",
)
@click.option(
    "--stackexchange",
    "dump",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Import this Stack Exchange dump instead (written first, made up, if it is missing).",
)
def demo(users: int, days: int, rate: float | None, dump: Path | None) -> None:
    """Bring up the stack and a worker, replay history, then stream live events until Ctrl-C.

    The live events come from the history's own organisation: only its active people speak,
    at the history's pace unless --rate says otherwise. With --stackexchange, the history is a
    Stack Exchange site's dump and nothing live follows.
    """
    from stream.demo_console import Phase, second_shell
    from stream.demo_history import recorded_history, replay_history
    from stream.generator import live_events, live_rate
    from stream.produce import produce_events

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
        fetch = "" if stack_.kafka_libs.exists() else " (fetching Kafka from Maven first)"
        phase = Phase("Kafka and Redis", f"starting{fetch}")
        started = stack_.up()
        phase.done("ready", f"started {', '.join(started)}" if started else "already running")
        log_path = Path(settings.state_dir) / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        phase = Phase("worker", "starting")
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://{settings.web_host}:{settings.web_port}"
        _wait_ready(f"{base_url}/ready", worker_proc)
        phase.done("ready", f"log: {log_path}")
        # /api/v1 is its own process; without ESN_API_TOKENS* it answers on loopback only.
        phase = Phase("api", "starting")
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "api"],
            stdout=(Path(settings.state_dir) / "api.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_ready(f"{api_url}/ready", api_proc, what="api")
        phase.done("ready")
        phase = Phase("Prometheus", "starting")
        prometheus = _start_prometheus(settings)
        phase.done("ready")
        links = prometheus_links(prometheus)
        first_day = default_start(days)
        if dump is not None:
            _demo_real(settings, dump, api_url, links, log_path)  # until Ctrl-C
        elif asyncio.run(
            replay_history(settings, users, days, first_day, datetime.now(UTC), worker_proc)
        ):
            replayed = f"history: a directory and events of {users} users over {days} days"
        else:
            # Re-sending the same history would count it twice: it is already in the topic. The
            # live traffic must come from the organisation that history was drawn from.
            replayed = "history: already in the topic (kept from an earlier run)"
            earlier = recorded_history(settings)
            if earlier is not None:
                users, days, first_day = earlier.users, earlier.days, earlier.first_day
                replayed += f": {users} users over {days} days from {first_day}"
            else:
                replayed += "; which organisation is not recorded: live people may not match"
        _demo_initiative(settings, users, days)
        today = datetime.now(UTC).date()
        pace = live_rate(users, days, first_day, SEED, today)
        live = rate or pace
        exports, secrets = second_shell(settings, os.environ)
        also = f"\n  (and {', '.join(secrets)} as in this shell)" if secrets else ""
        click.echo(
            f"""
ESN Pulse is running.
  metrics:    {base_url}/metrics
  API:        {api_url}/api/v1/summary   (OpenAPI: {api_url}/api/v1/openapi.json)
  Prometheus: {links["graph"]}   (rules: {links["rules"]}, alerts: {links["alerts"]})
  ready:      {base_url}/ready
  worker log: {log_path}
  {replayed}
  live:       {_live_line(live, pace, rate)}
In another shell, from this folder:
  source .venv/bin/activate
  {exports}{also}
then try:
  esn-pulse inactive                  # who went quiet, newest silence first
  esn-pulse inactive --never-active
  esn-pulse user u000001
  esn-pulse report --out report.html  # an offline HTML engagement report (today is partial)
  esn-pulse initiative show demo-onboarding
  curl -s '{api_url}/api/v1/communities?state=orphaned'
  kcat -b {settings.kafka_bootstrap} -C -t {settings.topic_prefix}esn.users.flagged.v1 -e
  curl -s {base_url}/metrics | grep -E '^esn_(events_total|users|flags|tier)'
Ctrl-C stops everything this command started."""
        )
        stream = live_events(users, SEED, days=days, start=first_day)
        asyncio.run(produce_events(settings, stream, rate=live))
        click.echo("live: nobody in the organisation is active today; waiting for Ctrl-C")
        while True:
            time.sleep(3600)
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


def _live_line(live: float, pace: float, asked: float | None) -> str:
    """What the live traffic is, against the history's pace."""
    per_day = f"{pace * 86_400:,.0f} events a day"
    if asked is None:
        return f"{live:.3g} events/s, the history's pace ({per_day}; --rate N for more)"
    return f"{live:g} events/s (--rate; the history's pace is {pace:.3g}/s, {per_day})"


def prometheus_links(prometheus: Any) -> dict[str, str]:
    """Links to the pages of this Prometheus's UI that answer (Debian's serves /classic/...)."""
    return {page: prometheus.page_url(page) for page in ("graph", "rules", "alerts")}


def _demo_real(
    settings: Any, dump: Path, api_url: str, links: dict[str, str], log_path: Path
) -> None:
    """``make demo-real``: a Stack Exchange dump through the import, then wait for Ctrl-C."""
    from stream.adapters.runner import input_files, run_import
    from stream.adapters.sinks import KafkaSink
    from stream.adapters.stackexchange import StackExchangeAdapter
    from stream.demo_console import second_shell
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
  Prometheus: {links["graph"]}   (alerts: {links["alerts"]})
  worker log: {log_path}
In another shell, from this folder:
  source .venv/bin/activate
  {second_shell(settings, os.environ)[0]}
then try:
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
