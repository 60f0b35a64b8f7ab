"""N ``esn-pulse worker`` processes on one consumer group, timed until every fence is at its end.

Timing is read from outside, as bench.ingest does: the Redis offset fences (through the store's
``load_fences``) polled every 20 ms, and the consumer group's membership asked of the broker, so
that the figure of N workers can be taken both over the whole run and after the group settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.errors import KafkaError

from stream.clients import new_admin
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.support import settings_env

REPO = Path(__file__).resolve().parent.parent
_POLL_S = 0.02
_GROUP_POLL_S = 0.25


def throughput(events: int, seconds: float) -> float:
    """Events per second; 0 when nothing was timed."""
    return events / seconds if seconds > 0 and events > 0 else 0.0


@dataclass(frozen=True)
class FleetRun:
    """What one fleet of workers did with the whole topic."""

    workers: int
    #: Events folded from the first applied batch to the last, and the time that took.
    events: int
    seconds: float
    #: From starting the processes until every fence was at its end (imports, group join).
    launch_seconds: float
    #: Events folded after the group first held every worker (no rebalance left), and the time;
    #: 0 when the run ended before it settled.
    steady_events: int
    steady_seconds: float

    @property
    def per_second(self) -> float:
        """First-to-last throughput: the figure bench.ingest prints for one worker."""
        return throughput(self.events, self.seconds)

    @property
    def steady_per_second(self) -> float:
        """Throughput once every worker had its partitions."""
        return throughput(self.steady_events, self.steady_seconds)


class WorkerFailed(RuntimeError):
    """A worker process exited, or the fleet did not finish in time."""


def fleet_settings(base: Settings, workers: int, ports: list[int]) -> list[Settings]:
    """One settings per worker: the same deployment, each its own web port."""
    if len(ports) != workers:
        raise ValueError(f"{workers} workers need {workers} web ports, got {len(ports)}")
    return [base.model_copy(update={"web_port": port}) for port in ports]


def activity_group(settings: Settings) -> str:
    """The worker's activity consumer group (as stream.ingest.new_activity_consumer names it)."""
    return f"{settings.app_id}-activity"


def all_applied(fences: dict[int, int], ends: dict[int, int]) -> bool:
    """True when every partition's fence is at its log end (the last offset is end - 1)."""
    return all(fences.get(p, -1) + 1 >= end for p, end in ends.items() if end > 0)


async def time_fleet(
    fleet: list[Settings], ends: dict[int, int], log_name: str, timeout: float
) -> FleetRun:
    """Start the fleet, wait until every fence reaches ``ends``, stop it; the timings."""
    settings = fleet[0]
    topic = TopicNames.from_settings(settings).activity
    partitions = sorted(ends)
    total = sum(ends.values())
    store = RedisStore.from_settings(settings)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [settings.state_dir / f"{log_name}-{index}.log" for index in range(len(fleet))]
    settled = asyncio.Event()
    watcher = asyncio.create_task(_watch_group(settings, len(fleet), settled))
    launched = time.perf_counter()
    try:
        for member, log in zip(fleet, logs, strict=True):
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "stream.cli", "worker"],
                        env=settings_env(member),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=REPO,
                    )
                )
        first: tuple[float, int] | None = None
        steady: tuple[float, int] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise WorkerFailed(f"a worker exited with {proc.returncode}; see {log}")
            fences = await store.load_fences(topic, partitions)
            now = time.perf_counter()
            applied = sum(f + 1 for f in fences.values())
            if first is None and applied > 0:
                first = (now, applied)
            if steady is None and settled.is_set():
                steady = (now, applied)
            if all_applied(fences, ends):
                assert first is not None
                steady_events, steady_seconds = (
                    (total - steady[1], now - steady[0]) if steady else (0, 0.0)
                )
                return FleetRun(
                    len(fleet),
                    total - first[1],
                    now - first[0],
                    now - launched,
                    steady_events,
                    steady_seconds,
                )
            await asyncio.sleep(_POLL_S)
        raise WorkerFailed(f"{len(fleet)} workers did not fold the topic in {timeout:.0f}s")
    finally:
        # The processes first: nothing below may leave a worker running.
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        watcher.cancel()
        # The watcher only informs the settled figure: its own failure is no run's failure.
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await watcher
        await store.close()


async def _watch_group(settings: Settings, members: int, settled: asyncio.Event) -> None:
    """Set ``settled`` once the activity group is Stable with ``members`` assigned members."""
    group = activity_group(settings)
    admin = new_admin(settings)
    await admin.start()
    try:
        while not settled.is_set():
            try:
                # One group per request (see stream/rebuild.py: aiokafka reads v3 as v2).
                responses = await admin.describe_consumer_groups([group])
            except KafkaError:  # a new group's coordinator may not be there yet: ask again
                responses = []
            for response in responses:
                for described in response.groups:
                    # (error_code, group_id, state, protocol_type, protocol, members, ...)
                    assigned = [m for m in described[5] if m[-1]]
                    if described[2] == "Stable" and len(assigned) == members:
                        settled.set()
            await asyncio.sleep(_GROUP_POLL_S)
    finally:
        await admin.close()
