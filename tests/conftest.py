"""Fixtures: the real local stack once per session (same code as `make run`), isolation per test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from tests.support import REPO, WorkerProcess, free_port, isolated

#: Under pytest-xdist (`make test` runs two) each worker process gets a stack of its own: ports
#: 100 apart and its own state dir, so a chaos drill that SIGKILLs its broker or Redis touches no
#: other worker's tests. "gw0", "gw1", ... or "" without xdist.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_OFFSET = 100 * int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") else 0


def _shifted(address: str) -> str:
    """``address`` with its port moved by this worker's offset (``host:port`` or a Redis URL)."""
    head, _, tail = address.rpartition(":")
    port, slash, rest = tail.partition("/")
    return f"{head}:{int(port) + _OFFSET}{slash}{rest}"


#: Test ports differ from `make run`'s so both can run on one machine.
TEST_KAFKA = _shifted(os.environ.get("ESN_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
TEST_REDIS = _shifted(os.environ.get("ESN_TEST_REDIS_URL", "redis://127.0.0.1:16379/0"))
#: Its own state dir per stack, so several sessions can each run a suite on their own ports.
TEST_STATE = Path(
    os.environ.get("ESN_TEST_STATE", str(REPO / ".esn-test"))
    + (f"-{XDIST_WORKER}" if XDIST_WORKER else "")
)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Settings of the session's stack (shared broker and Redis)."""
    return Settings(kafka_bootstrap=TEST_KAFKA, redis_url=TEST_REDIS, state_dir=TEST_STATE)


@pytest.fixture(scope="session")
def local_stack(stack_settings: Settings) -> Iterator[LocalStack]:
    """A real KRaft broker and Redis, started once; integration tests need both, never mocks."""
    stack = LocalStack(stack_settings)
    started = stack.up(create_topics=False)
    yield stack
    stack.down(tuple(started))


@pytest.fixture
def settings(local_stack: LocalStack, stack_settings: Settings) -> Settings:
    """Settings isolated to one test: own topics, key prefix, consumer group and web port."""
    isolated_settings = isolated(stack_settings, "t")
    asyncio.run(ensure_topics(isolated_settings))
    return isolated_settings


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[RedisStore]:
    """The test's view of Redis; its keys are deleted afterwards."""
    store = RedisStore.from_settings(settings)
    yield store
    async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=1000):
        await store.client.delete(key)
    await store.close()


@pytest.fixture
def worker_factory(settings: Settings, tmp_path: Path) -> Iterator[type[WorkerProcess]]:
    """Start workers for this test's settings (each on its own web port); all stop at the end."""
    started: list[WorkerProcess] = []

    class _Factory(WorkerProcess):
        def __init__(self, override: Settings | None = None) -> None:
            base = override or settings
            own_port = base.model_copy(update={"web_port": free_port()})
            super().__init__(own_port, TEST_STATE / "logs")
            started.append(self)

    yield _Factory
    for worker in started:
        worker.stop()
