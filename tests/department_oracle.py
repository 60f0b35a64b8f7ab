"""The department counts held to the scan of every profile and state they replace."""

from __future__ import annotations

import asyncio
import time

from stream.analytics.departments import department_figures, department_figures_scan
from stream.settings import Settings
from stream.store import RedisStore


async def assert_department_counts_exact(
    store: RedisStore, settings: Settings, settle_seconds: float = 0.0
) -> None:
    """The counted figures equal the scan's, per department (no merging) and as reported.

    ``settle_seconds``: with a worker still sweeping, the scan (several reads, not one atomic
    step) can straddle a release; the two are compared again until they agree or time is up.
    """
    everyone = settings.model_copy(update={"min_group_size": 1})
    deadline = time.monotonic() + settle_seconds
    while True:
        scanned = await department_figures_scan(store, everyone)
        counted = await department_figures(store, everyone)
        if scanned == counted or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    assert scanned == counted
    assert await department_figures_scan(store, settings) == await department_figures(
        store, settings
    )
