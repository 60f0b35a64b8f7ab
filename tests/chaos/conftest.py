"""Chaos fixtures: drills need the session's stack to be theirs, to SIGKILL and restart it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.stack import LocalStack


@pytest.fixture
def chaos_stack(local_stack: LocalStack) -> LocalStack:
    """The session stack, which must have been started by this suite (pid files in its dir)."""
    owned = {s.name for s in local_stack.status() if s.managed_pid is not None}
    assert {"kafka", "redis"} <= owned, (
        f"chaos drills SIGKILL and restart the broker and Redis, so the session must have "
        f"started them (pid files in {local_stack.root}); it owns only {sorted(owned)}"
    )
    return local_stack


@pytest.fixture
def drill_logs(local_stack: LocalStack) -> Path:
    """Where the drills' worker logs go."""
    return local_stack.root / "logs"
