"""The analytics refresh in a process of its own, fed and read by the worker over two pipes.

The refresh read every community's member (O(members)) until layout 4's community counts. On
a thread of the worker it held the interpreter half the time at 20,000 users, and the ingest's
loop, which gives it up at every socket call, waited for it back each time: the worker's gauges
are computed here instead, sent back as their samples and set on the worker's own collectors.

Protocol: the worker writes the settings (pickled, base64) as the first line of the child's
stdin, then one JSON line per refresh ({"communities": bool}); the child answers each with one
JSON line on stdout: {"gauges": {attribute: [[labels, value], ...]}, "counters": {...}} or
{"error": "..."}. The end of its stdin (the worker stopped or died) ends the child.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pickle
import signal
import sys
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream import jsonutil
from stream.metrics import PipelineMetrics
from stream.settings import Settings

log = logging.getLogger(__name__)

#: The PipelineMetrics gauges the refresh sets (stream/analytics/refresh.py).
GAUGES: Final = (
    "active_users", "tier_users", "stickiness", "new_users", "communities", "community_people",
    "community_active_members", "department_users", "analytics_refresh_seconds",
    "analytics_refreshed", "recent_flags", "active_so_far", "ingest_stall_threshold",
)  # fmt: skip
#: ... and the counters it increments.
COUNTERS: Final = ("community_flags",)


class RefreshFailed(RuntimeError):
    """The child answered that a refresh did not complete (the message says why)."""


class RefreshProcess:
    """The worker's side: starts the child at the first refresh, again after it died."""

    def __init__(self, settings: Settings, metrics: PipelineMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._child: asyncio.subprocess.Process | None = None

    async def refresh(self, evaluate_communities: bool) -> None:
        """One refresh in the child; its figures set on the worker's collectors."""
        child = await self._running()
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(jsonutil.dumps({"communities": evaluate_communities}) + b"\n")
            await child.stdin.drain()
            line = await child.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        except asyncio.CancelledError:
            # Its answer would be read as the next refresh's: that child goes, a new one comes.
            self._child = None
            child.kill()
            raise
        if not line:
            self._child = None
            raise RefreshFailed(f"the analytics process exited ({await child.wait()})")
        reply = jsonutil.loads(line)
        if "error" in reply:
            raise RefreshFailed(reply["error"])
        apply_samples(self.metrics, reply)

    async def stop(self, timeout: float = 10.0) -> None:
        """End the child: its stdin closed, then killed if it does not exit in time."""
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout)
        except TimeoutError:
            child.kill()
            await child.wait()

    async def _running(self) -> asyncio.subprocess.Process:
        if self._child is not None and self._child.returncode is None:
            return self._child
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # one reply line holds every gauge sample (departments: thousands)
        )
        assert child.stdin is not None
        # The settings themselves, not the environment: the worker's may come from a file.
        child.stdin.write(base64.b64encode(pickle.dumps(self.settings)) + b"\n")
        self._child = child
        return child


def samples(metrics: PipelineMetrics, counters_before: dict[str, Any]) -> dict[str, Any]:
    """The refresh's gauge samples, and its counters' increments since ``counters_before``."""
    gauges = {name: _samples(getattr(metrics, name)) for name in GAUGES}
    counters = {}
    for name in COUNTERS:
        before = {tuple(sorted(labels.items())): value for labels, value in counters_before[name]}
        counters[name] = [
            [labels, value - before.get(tuple(sorted(labels.items())), 0.0)]
            for labels, value in _samples(getattr(metrics, name))
        ]
    return {"gauges": gauges, "counters": counters}


def apply_samples(metrics: PipelineMetrics, reply: dict[str, Any]) -> None:
    """Set the worker's gauges to the child's samples (labelled ones replaced whole)."""
    for name, rows in reply["gauges"].items():
        gauge: Gauge = getattr(metrics, name)
        if gauge._labelnames:
            gauge.clear()
            for labels, value in rows:
                gauge.labels(**labels).set(value)
        elif rows:
            gauge.set(rows[0][1])
    for name, rows in reply["counters"].items():
        counter: Counter = getattr(metrics, name)
        for labels, delta in rows:
            if delta:
                counter.labels(**labels).inc(delta)


def _samples(collector: Gauge | Counter) -> list[list[Any]]:
    out: list[list[Any]] = []
    for family in collector.collect():
        for sample in family.samples:
            if sample.name in (family.name, family.name + "_total"):
                out.append([dict(sample.labels), sample.value])
    return out


async def _serve() -> None:
    """The child: refresh on each request line until stdin ends."""
    from stream.analytics.refresh import AnalyticsRefresher
    from stream.flags.machine import definitions_from
    from stream.store import RedisStore

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    settings: Settings = pickle.loads(base64.b64decode(await reader.readline()))
    store = RedisStore.from_settings(settings)
    metrics = PipelineMetrics(CollectorRegistry())
    refresher = AnalyticsRefresher(settings, store, metrics, definitions_from(settings))
    out = sys.stdout.buffer
    try:
        while line := await reader.readline():
            request = jsonutil.loads(line)
            before = {name: _samples(getattr(metrics, name)) for name in COUNTERS}
            try:
                await refresher.refresh(evaluate_communities=bool(request["communities"]))
                reply = samples(metrics, before)
            except Exception as exc:  # every failure is the worker's to log, and the next to retry
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(jsonutil.dumps(reply) + b"\n")
            out.flush()
    finally:
        await refresher.stop()
        await store.close()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the worker decides when this process ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve())
