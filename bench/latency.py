"""Latency under load: event-to-Redis p50/p99 at a fixed rate while everything else runs.

The worker runs with short sweep and analytics intervals, ``esn-pulse api`` serves from its own
process, the producer sends from its own (bench/live_producer.py), and the bench reads the API
and the worker's /ready and /metrics a few times a second. Figures come from the worker's own
metrics, as the difference of two scrapes around the measured run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from bench.contenders import REPO, contender_settings
from bench.metrics_text import (
    gauge_value,
    histogram_buckets,
    histogram_delta,
    histogram_quantile,
    observations_above,
    quantile,
)
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from tests.support import free_port, settings_env

#: What the readers ask for, in turn, a few times a second: the API's aggregate routes (the
#: API has no tokens on loopback here) and the worker's own pages.
API_PATHS = (
    "/api/v1/summary",
    "/api/v1/trends?metric=dau",
    "/api/v1/content",
    "/api/v1/communities",
)
WORKER_PATHS = ("/ready", "/metrics")
#: Seconds between two reads: 4 a second, as a dashboard and a probe or two would.
READ_INTERVAL = 0.25


@dataclass
class LatencyFigures:
    """What one latency run measured."""

    rate: float
    p50: float
    p99: float
    events: int
    #: esn_event_loop_lag_max_seconds at the end (its window), None when the worker has none.
    loop_lag_max: float | None
    #: Loop stalls of 100 ms or more during the measured run (histogram), None when absent.
    stalls_over_100ms: int | None
    reads: dict[str, list[float]] = field(default_factory=dict)
    read_errors: int = 0


async def measure_latency(
    base: Settings, rate: float, seconds: float, users: int, warmup_seconds: float = 5
) -> LatencyFigures:
    """Run the worker, the API, readers and a paced producer; the worker's figures."""
    settings = contender_settings(
        base,
        "latency",
        topic_prefix=base.topic_prefix + "lat.",
        web_port=free_port(),
        api_port=free_port(),
        sweep_interval_seconds=5.0,
        analytics_interval_seconds=5.0,
        api_cache_seconds=0.0,
    )
    await ensure_topics(settings)
    env = settings_env(settings)
    logs = settings.state_dir
    worker = _start([sys.executable, "-m", "stream.cli", "worker"], env, logs / "bench-lat-w.log")
    api = _start([sys.executable, "-m", "stream.cli", "api"], env, logs / "bench-lat-api.log")
    worker_url = f"http://127.0.0.1:{settings.web_port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    readers: asyncio.Task[None] | None = None
    figures = LatencyFigures(rate, 0.0, 0.0, 0, None, None)
    try:
        await _wait_ok(worker_url + "/ready", worker)
        await _wait_ok(api_url + "/health", api)
        readers = asyncio.create_task(_read_forever(worker_url, api_url, figures))
        # Warm up first (script load, first fetches, lazy imports), then measure the difference
        # of two scrapes so that only the steady state counts.
        await _produce(env, rate, warmup_seconds, users)
        await asyncio.sleep(1)
        before = await asyncio.to_thread(_get, worker_url + "/metrics")
        figures.reads.clear()
        figures.read_errors = 0
        figures.events = await _produce(env, rate, seconds, users)
        await asyncio.sleep(2)
        after = await asyncio.to_thread(_get, worker_url + "/metrics")
    finally:
        if readers is not None:
            readers.cancel()
        for proc in (worker, api):
            _stop(proc)
    lag = histogram_delta(
        histogram_buckets(before, "esn_event_lag_seconds"),
        histogram_buckets(after, "esn_event_lag_seconds"),
    )
    figures.p50, figures.p99 = histogram_quantile(0.5, lag), histogram_quantile(0.99, lag)
    figures.loop_lag_max = gauge_value(after, "esn_event_loop_lag_max_seconds")
    loop = histogram_delta(
        histogram_buckets(before, "esn_event_loop_lag_seconds"),
        histogram_buckets(after, "esn_event_loop_lag_seconds"),
    )
    figures.stalls_over_100ms = observations_above(loop, 0.1) if loop else None
    return figures


def read_summary(figures: LatencyFigures) -> str:
    """One line: how many reads of each path answered, and their p99."""
    parts = []
    for path, times in sorted(figures.reads.items()):
        short = path.split("?")[0].removeprefix("/api/v1")
        parts.append(f"{short} {len(times)}x p99 {quantile(0.99, times) * 1000:.0f} ms")
    return "; ".join(parts) + f"; errors {figures.read_errors}"


async def _read_forever(worker_url: str, api_url: str, figures: LatencyFigures) -> None:
    urls = [(p, api_url + p) for p in API_PATHS] + [(p, worker_url + p) for p in WORKER_PATHS]
    turn = 0
    while True:
        path, url = urls[turn % len(urls)]
        turn += 1
        started = time.perf_counter()
        try:
            await asyncio.to_thread(_get, url)
        except OSError:
            figures.read_errors += 1
        else:
            figures.reads.setdefault(path, []).append(time.perf_counter() - started)
        await asyncio.sleep(READ_INTERVAL)


async def _produce(env: dict[str, str], rate: float, seconds: float, users: int) -> int:
    command = [sys.executable, "-m", "bench.live_producer", "--rate", str(rate)]
    command += ["--seconds", str(seconds), "--users", str(users)]
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the live producer failed: {err.decode()[-2000:]}")
    return int(out.split()[1])


def _start(command: list[str], env: dict[str, str], log_path: object) -> subprocess.Popen[bytes]:
    log = open(str(log_path), "wb")  # noqa: SIM115  the child writes it until it stops
    return subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=REPO)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _wait_ok(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            await asyncio.to_thread(_get, url, 1.0)
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f}s")


def _get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())
