"""The ingest benchmark's contenders: how each is started, and the one timer they all share.

Each contender is its own process reading the same pre-produced topic with its own consumer
group and Redis prefix. The timer polls Redis from outside: the worker's (and the plain loop's)
offset fences, or the peers' progress hash, which they write in the same MULTI as their state.
Either way a contender's figure is the events applied from its first applied batch to its last
over the time between them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.last_seen import progress_key
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames
from tests.support import settings_env

REPO = Path(__file__).resolve().parent.parent
#: The quixstreams peer's interpreter: its own venv (quixstreams pins an older pydantic).
QUIX_PYTHON = REPO / ".venv" / "quix" / "bin" / "python"

#: Reads how many records a contender has applied so far (sum over partitions of offset + 1).
Progress = Callable[[RedisStore], Awaitable[int]]


@dataclass
class Throughput:
    """One contender's run."""

    name: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Contender:
    """A process to time, and how the timer sees its progress."""

    name: str
    tag: str
    command: list[str]
    #: None: the offset fences (stream/store); else the peer's progress hash.
    peer: bool = False


def contender_settings(base: Settings, tag: str, **extra: object) -> Settings:
    """The run's settings with the contender's own Redis prefix and consumer group."""
    return base.model_copy(
        update={"redis_prefix": f"{base.topic_prefix}{tag}:", "app_id": f"bench-{tag}", **extra}
    )


def peer_command(python: Path | str, module: str, settings: Settings) -> list[str]:
    """The command line of a last-seen peer reading the run's topic into its own prefix."""
    return [
        str(python),
        "-m",
        module,
        "--bootstrap",
        settings.kafka_bootstrap,
        "--redis-url",
        settings.redis_url,
        "--topic",
        TopicNames.from_settings(settings).activity,
        "--group",
        f"{settings.app_id}-activity",
        "--prefix",
        settings.redis_prefix,
        "--max-records",
        str(settings.batch_max_records),
        "--state-dir",
        str(settings.state_dir),
    ]


def contenders(base: Settings, skip_naive: bool) -> list[Contender]:
    """The four contenders of issue 15, in the order they run (and the naive Faust agent)."""
    python = sys.executable
    chosen = [
        Contender("esn-pulse worker", "worker", [python, "-m", "stream.cli", "worker"]),
        Contender("plain loop, same writes", "plain", [python, "-m", "bench.plain_loop"]),
        Contender(
            "quixstreams last-seen",
            "quix",
            peer_command(QUIX_PYTHON, "bench.quix_last_seen", contender_settings(base, "quix")),
            peer=True,
        ),
        Contender(
            "aiokafka last-seen",
            "aiolast",
            peer_command(python, "bench.aiokafka_last_seen", contender_settings(base, "aiolast")),
            peer=True,
        ),
    ]
    if not skip_naive:
        chosen.append(Contender("naive Faust agent", "naive", [python, "-m", "bench.naive_faust"]))
    return chosen


def fence_progress(settings: Settings) -> Progress:
    """Records applied by a fenced contender: its offset fences, read through the store."""
    topic = TopicNames.from_settings(settings).activity
    partitions = list(range(settings.activity_partitions))

    async def applied(store: RedisStore) -> int:
        fences = await store.load_fences(topic, partitions)
        return sum(fence + 1 for fence in fences.values())

    return applied


def peer_progress(settings: Settings) -> Progress:
    """Records applied by a peer: its progress hash (partition -> highest applied offset)."""
    key = progress_key(settings.redis_prefix)

    async def applied(store: RedisStore) -> int:
        offsets = await store.client.hvals(key)  # bench code: a peer's key, not the store's
        return sum(int(offset) + 1 for offset in offsets)

    return applied


async def time_fold(
    settings: Settings, command: list[str], total: int, name: str, progress: Progress
) -> Throughput:
    """Start ``command``, time first-to-last applied batch by polling ``progress``, stop it."""
    store = RedisStore.from_settings(settings)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    log = (settings.state_dir / f"bench-{slug}.log").open("wb")
    proc = subprocess.Popen(command, env=settings_env(settings), stdout=log, stderr=log, cwd=REPO)
    try:
        started_at = None
        applied_at_start = 0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log.name}")
            applied = await progress(store)
            now = time.perf_counter()
            if started_at is None and applied > 0:
                started_at, applied_at_start = now, applied
            if applied >= total:
                assert started_at is not None
                return Throughput(name, total - applied_at_start, now - started_at)
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{name} did not finish in time")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await store.close()
        log.close()
