"""The periodic analytics refresh: low-cardinality gauges and the community flags.

Every worker refreshes its gauges (they describe the whole deployment: aggregate with ``max``);
only the owner of activity partition 0 evaluates and publishes community flags.
"""

from __future__ import annotations

import logging
import time

from stream.analytics.communities import CommunityHealth, all_communities, community_counts
from stream.analytics.community_flags import CommunityFlagger
from stream.analytics.days import clock_now_ms, day_of_ms
from stream.analytics.departments import department_figures
from stream.analytics.tiers import tier_counts
from stream.analytics.trends import daily_counter
from stream.flags.machine import Definitions
from stream.fold import MS_PER_DAY
from stream.metrics import PipelineMetrics
from stream.settings import Settings
from stream.store import AnalyticsReads, FlagReads, RedisStore

log = logging.getLogger(__name__)


class AnalyticsRefresher:
    """Recomputes the analytics gauges; evaluates community flags when asked to."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        metrics: PipelineMetrics,
        definitions: Definitions,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.definitions = definitions
        self.flagger = CommunityFlagger(settings, store)
        self._flagger_started = False

    async def stop(self) -> None:
        """Close the community flag producer if it was started."""
        if self._flagger_started:
            await self.flagger.stop()

    async def refresh(self, evaluate_communities: bool) -> None:
        """One refresh at the clock's now."""
        started = time.perf_counter()
        store, metrics = self.store, self.metrics
        now_ms = await clock_now_ms(store, self.settings)
        enabled = await FlagReads(store).enabled_users()
        tiers = await tier_counts(store, now_ms, enabled)
        for window, row in tiers.items():
            metrics.active_users.labels(window).set(row["active"])
            for tier, users in row.items():
                metrics.tier_users.labels(tier, window).set(users)
        mau = tiers["30d"]["active"]
        metrics.stickiness.set(tiers["1d"]["active"] / mau if mau else 0.0)
        today = day_of_ms(now_ms)
        (new_today,) = await daily_counter(store, "n", range(today, today + 1))
        metrics.new_users.set(new_today)
        communities = await all_communities(
            store,
            now_ms,
            self.settings.community_window_days * 86_400_000,
            self.definitions.thresholds_ms[0],
        )
        for state, number in community_counts(communities).items():
            metrics.communities.labels(state).set(number)
        self._community_top_n(communities)
        departments = await department_figures(store, self.settings)
        metrics.department_users.clear()
        for department, row in departments.items():
            for state, users in row.items():
                metrics.department_users.labels(department, state).set(users)
        if evaluate_communities:
            if not self._flagger_started:
                await self.flagger.start()
                self._flagger_started = True
            await self.flagger.commit(communities, now_ms)
            for record in await self.flagger.publish():
                metrics.community_flags.labels(record["kind"]).inc()
        await self._alert_inputs(now_ms)
        metrics.analytics_refresh_seconds.set(time.perf_counter() - started)
        metrics.analytics_refreshed.set(time.time())

    async def _alert_inputs(self, now_ms: int) -> None:
        """Engine-time windows for the alert rules: recent flags, active users so far."""
        metrics, store = self.metrics, self.store
        metrics.ingest_stall_threshold.set(self.settings.ingest_stall_seconds)
        for kind in ("inactive", "never_active", "at_risk", "reactivated"):
            for window, span_ms in (("1h", 3_600_000), ("7d", 7 * MS_PER_DAY)):
                metrics.recent_flags.labels(kind, window).set(
                    await flags_between(store, self.settings, kind, now_ms - span_ms, now_ms)
                )
        today, minute = divmod(now_ms, MS_PER_DAY)
        minute //= 60_000
        for label, day in (("today", today), ("week_ago", today - 7)):
            metrics.active_so_far.labels(label).set(await active_until(store, day, minute))

    def _community_top_n(self, communities: list[CommunityHealth]) -> None:
        top_n = self.settings.community_metrics_top_n
        if not top_n:
            return
        largest = sorted(communities, key=lambda c: (-c.people, c.community))[:top_n]
        self.metrics.community_people.clear()
        self.metrics.community_active_members.clear()
        for row in largest:
            self.metrics.community_people.labels(row.community).set(row.people)
            self.metrics.community_active_members.labels(row.community).set(row.active_members)


async def flags_between(
    store: RedisStore, settings: Settings, kind: str, after_ms: int, until_ms: int
) -> int:
    """Users flagged ``kind`` with a flag time in (after_ms, until_ms], minute resolution."""
    days = range(after_ms // MS_PER_DAY, until_ms // MS_PER_DAY + 1)
    per_day = await FlagReads(store).flags_per_minute(kind, days)
    total = 0
    for day, counts in per_day.items():
        for minute, count in counts.items():
            at = day * MS_PER_DAY + minute * 60_000
            if after_ms < at <= until_ms:
                total += count
    return total


async def active_until(store: RedisStore, day: int, minute: int) -> int:
    """Users whose first activity of ``day`` was at or before ``minute`` of it."""
    counts = await AnalyticsReads(store).first_activity_minutes(day)
    return sum(users for m, users in counts.items() if m <= minute)
