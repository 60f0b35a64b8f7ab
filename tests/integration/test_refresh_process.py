"""The analytics refresh in its own process, against the real Redis: its gauges reach the
worker's collectors, a failure is reported (and retried with a new process), stop() ends it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from stream.analytics.refresh_process import RefreshFailed, RefreshProcess
from stream.directory import ProfileV1
from stream.metrics import PipelineMetrics
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from tests.support import free_port

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 3, 2, tzinfo=UTC).isoformat()


class TestRefreshProcess:
    async def test_the_childs_figures_are_the_workers_gauges(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """Six enabled profiles of one department: the worker's department gauge says 6."""
        profiles = [
            ProfileV1(
                user_id=f"u{n}", status="enabled", created=WHEN, updated=WHEN, department="HR"
            )
            for n in range(6)
        ]
        await DirectoryStore(store).apply([(0, p) for p in profiles])
        registry = CollectorRegistry()
        process = RefreshProcess(
            settings.model_copy(update={"min_group_size": 5}), PipelineMetrics(registry)
        )
        try:
            await process.refresh(evaluate_communities=False)
            labels = {"department": "HR", "state": "enabled"}
            assert 6 == registry.get_sample_value("esn_department_users", labels)
            assert registry.get_sample_value("esn_analytics_last_refresh_timestamp_seconds")
            child = process._child
            assert child is not None and child.returncode is None
        finally:
            await process.stop()
        assert child.returncode == 0, "stdin closed: the child ended by itself"

    async def test_a_failed_refresh_says_why_and_the_next_one_retries(
        self, settings: Settings
    ) -> None:
        """Redis unreachable: RefreshFailed names the error; the child is still there to retry."""
        nowhere = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
        process = RefreshProcess(nowhere, PipelineMetrics(CollectorRegistry()))
        try:
            for _ in range(2):
                with pytest.raises(RefreshFailed, match=r"Error|refused|connect"):
                    await process.refresh(evaluate_communities=False)
        finally:
            await process.stop()
