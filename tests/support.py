"""Test support: the oracle, a worker subprocess, waiting on conditions, raw Kafka I/O."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from stream import jsonutil
from stream.clients import new_consumer, new_producer
from stream.events import COUNTED_TYPES, EVENT_TYPES, NO_OBJECT, OBJECT_TYPES, OTHER
from stream.fold import MS_PER_DAY, utc_day
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames

REPO = Path(__file__).resolve().parent.parent


# --- the oracle ----------------------------------------------------------------------------


@dataclass
class Oracle:
    """Expected state, computed from the input independently of the worker's fold."""

    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    daily: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: int = 0

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]]) -> Oracle:
        """Fold plain v1 event dicts the slow, obvious way."""
        oracle = cls()
        for event in events:
            actor = event["actor"]
            ms = round(datetime.fromisoformat(event["time"]).timestamp() * 1000)
            oracle.first[actor] = min(oracle.first.get(actor, ms), ms)
            oracle.last[actor] = max(oracle.last.get(actor, ms), ms)
            event_type = event["type"] if event["type"] in EVENT_TYPES else OTHER
            oracle.counts[actor][event_type] += 1
            oracle.daily[utc_day(ms // MS_PER_DAY)].add(actor)
            obj = event.get("object")
            object_type = NO_OBJECT if obj is None else obj["type"]
            if obj is not None and object_type not in OBJECT_TYPES:
                object_type = OTHER
            oracle.totals[event_type, object_type] += 1
            oracle.events += 1
        return oracle

    async def assert_matches(self, store: RedisStore) -> None:
        """Every user's first/last/counts, every day's actives and the totals agree exactly."""
        states = await store.all_user_states()
        assert set(self.first) == set(states), "users with state differ from the oracle's"
        for user, state in states.items():
            expected_counts = {t: c for t, c in self.counts[user].items() if c}
            assert (self.first[user], self.last[user], expected_counts) == (
                state.first_seen_ms,
                state.last_seen_ms,
                state.counts,
            ), f"user {user}"
        for day, users in self.daily.items():
            assert users == await store.daily_active_users(day), f"day {day}"
        assert dict(self.totals) == await store.totals()
        assert set(COUNTED_TYPES) >= {t for c in self.counts.values() for t in c}


# --- settings and processes ----------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated(base: Settings, name: str, **overrides: Any) -> Settings:
    """Settings of their own: topics, key prefix, consumer group and web port, plus overrides."""
    tag = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "topic_prefix": f"{name}{tag}.",
        "redis_prefix": f"{name}{tag}:",
        "app_id": f"esn-{name}-{tag}",
        "web_port": free_port(),
        "activity_partitions": 6,
        "user_buckets": 128,
        # Generated history may be old; keep its daily sets for the oracles.
        "daily_active_retention_days": 3650,
    }
    return base.model_copy(update={**update, **overrides})


def settings_env(settings: Settings) -> dict[str, str]:
    """ESN_* environment variables that reproduce ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESN_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        secret = getattr(value, "get_secret_value", None)
        env[f"ESN_{name.upper()}"] = str(secret() if secret else value)
    return env


class WorkerProcess:
    """``esn-pulse worker`` as a real subprocess, so that SIGKILL is real."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_path = log_dir / f"worker-{settings.app_id}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    async def started(self) -> WorkerProcess:
        """Start and wait for /ready without blocking the test's event loop."""
        self.start()

        async def ready() -> bool:
            status, _ = await asyncio.to_thread(self.get, "/ready")
            return status == 200

        await eventually(ready, 90, "worker /ready", self.check_alive)
        return self

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=settings_env(self.settings),
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        return self

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}"
            )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    also: Callable[[], None] | None = None,
) -> None:
    """Await ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if also:
            also()
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- Kafka I/O -----------------------------------------------------------------------------


async def produce_raw(
    settings: Settings,
    records: Iterable[tuple[bytes | None, bytes]],
    rate: float | None = None,
    topic: str | None = None,
) -> int:
    """Send (key, value) pairs exactly as given (bad ones included), to the activity topic."""
    topic = topic or TopicNames.from_settings(settings).activity
    producer = new_producer(settings, linger_ms=5, enable_idempotence=True)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if rate and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def keyed(events: Iterable[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    """Events as (actor key, JSON value) records."""
    return [(e["actor"].encode(), jsonutil.dumps(e)) for e in events]


class EndOffsets:
    """Log-end offsets of a topic, through one long-lived consumer (no group)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.partitions = range(settings.activity_partitions)
        self.consumer = new_consumer(settings)

    async def __aenter__(self) -> EndOffsets:
        await self.consumer.start()
        # aiokafka's stop() raises CancelledError if its no-group task never got to run.
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def get(self) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        ends = await self.consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}


async def read_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 60
) -> list[Any]:
    """Every record of a topic from the beginning, until ``expected`` arrived or timeout."""
    consumer = new_consumer(
        settings,
        topic,
        auto_offset_reset="earliest",
        # Flag topics are written in transactions: what a consumer may rely on is the committed.
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def wait_fully_applied(
    store: RedisStore,
    settings: Settings,
    timeout: float,
    also: Callable[[], None] | None = None,
) -> None:
    """Wait until every partition's fence is at its log end (all folded or dead-lettered)."""
    topic = TopicNames.from_settings(settings).activity
    async with EndOffsets(settings, topic) as end_offsets:

        async def applied() -> bool:
            ends = await end_offsets.get()
            fences = await store.load_fences(topic, sorted(ends))
            return bool(ends) and all(fences[p] + 1 == end for p, end in ends.items() if end > 0)

        await eventually(applied, timeout, "all records applied", also)


async def applied_count(store: RedisStore, settings: Settings) -> int:
    """Records of the activity topic folded or dead-lettered so far (sum of fences + 1)."""
    topic = TopicNames.from_settings(settings).activity
    fences = await store.load_fences(topic, list(range(settings.activity_partitions)))
    return sum(fence + 1 for fence in fences.values())


def delete_deployment_keys(settings: Settings) -> None:
    """Delete every Redis key under the settings' prefix: a module fixture's cleanup."""

    async def delete() -> None:
        store = RedisStore.from_settings(settings)
        try:
            async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
                await store.client.delete(key)
        finally:
            await store.close()

    asyncio.run(delete())
