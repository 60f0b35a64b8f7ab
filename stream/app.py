"""The Faust app: the activity ingest service, the dead-letter topic, /metrics, /health, /ready.

``faust -A stream.app worker`` and ``esn-pulse worker`` both find ``app`` here.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.analytics.refresh_process import RefreshFailed, RefreshProcess
from stream.batch import Reject
from stream.clients import faust_broker_options
from stream.directory_fold import DirectoryFolder
from stream.ingest import ActivityIngest
from stream.kafka_admin import ensure_topics
from stream.loop_lag import LoopLagMonitor
from stream.metrics import PipelineMetrics
from stream.metrics_auth import CHALLENGE, basic_auth_check
from stream.privacy import dlq_detail_redactor
from stream.settings import Settings, get_settings
from stream.store import RedisStore
from stream.topics import TopicNames, dead_letter_payload, dlq_headers

log = logging.getLogger(__name__)


class Pipeline:
    """The worker's parts, reachable from views and tests."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.topics = TopicNames.from_settings(settings)
        self.metrics = PipelineMetrics(registry)
        self.store = RedisStore.from_settings(settings)
        self.ingest: ActivityIngest | None = None


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the Faust app and wire the pipeline into it."""
    registry = registry or CollectorRegistry()
    pipeline = Pipeline(settings, registry)
    datadir = settings.state_dir.resolve() / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        **faust_broker_options(settings),  # the broker URL and its TLS/SASL credentials
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        datadir=str(datadir),
        store="memory://",
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        # A worker killed without leaving its group is noticed after this long; Faust's 60 s
        # default would hold a restarted worker's startup (and readiness) for a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # /metrics, /health and /ready only: Faust's router, table, graph and stats pages would
        # show table contents and topology; /api/v1 is esn-pulse api's (stream/api/).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
    )
    app.pipeline = pipeline  # type: ignore[attr-defined]
    dead_letters = app.topic(
        pipeline.topics.activity_dlq, key_serializer="raw", value_serializer="raw"
    )

    redact_detail = dlq_detail_redactor(settings)  # ESN_DLQ_DETAIL_IDS

    async def send_dead_letter(reject: Reject, topic: faust.types.TopicT = dead_letters) -> Any:
        record = reject.record
        headers = dlq_headers(
            reject.reason,
            redact_detail(reject.detail),
            record.topic,
            record.partition,
            record.offset,
            reject.exception,
        )
        key, value = dead_letter_payload(record.key, record.value, headers)
        pending = await topic.send(key=key, value=value, headers=headers)
        return await pending

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def start_ingest() -> None:
        await ensure_topics(settings)
        ingest = ActivityIngest(
            settings,
            pipeline.store,
            pipeline.metrics,
            send_dead_letter,
            loop=app.loop,
            beacon=app.beacon,
        )
        pipeline.ingest = ingest
        await app.add_runtime_dependency(ingest)

    loop_lag = LoopLagMonitor(pipeline.metrics.loop_lag, pipeline.metrics.loop_lag_max)

    @app.task  # type: ignore[untyped-decorator]
    async def watch_loop_lag() -> None:
        # From the worker's start: a stall while it joins the group or replays counts too.
        await loop_lag.run()

    directory = app.topic(pipeline.topics.directory, key_serializer="raw", value_serializer="raw")
    directory_dead_letters = app.topic(
        pipeline.topics.directory_dlq, key_serializer="raw", value_serializer="raw"
    )

    # The directory is low volume (roster imports, HR updates): a plain Faust agent serves it,
    # and latest-update-wins folding makes Faust's at-least-once delivery harmless.
    @app.agent(directory)
    async def fold_directory(stream: faust.StreamT[Any]) -> None:
        folder = DirectoryFolder(settings, pipeline.store)

        async def dead_letter(reject: Reject) -> Any:
            pipeline.metrics.directory_invalid.labels(reject.reason).inc()
            return await send_dead_letter(reject, directory_dead_letters)

        # take_events (not take) keeps each record's key for the key check; untyped in Faust.
        batches = stream.take_events(500, within=0.2)  # type: ignore[attr-defined]
        async for events in batches:
            applied, _ = await folder.fold([event.message for event in events], dead_letter)
            for done in applied:
                pipeline.metrics.directory_records.labels(done.kind).inc()

    # What faust's setup_prometheus_sensors does, with the page ours: it may ask for basic auth.
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    metrics_auth = basic_auth_check(settings)  # ESN_METRICS_USERNAME / ESN_METRICS_PASSWORD

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        if metrics_auth is not None and not metrics_auth(request.headers.get("Authorization")):
            body = {"error": {"status": 401, "message": "/metrics needs basic auth credentials"}}
            return self.json(body, status=401, headers=dict(CHALLENGE))
        # As a header: aiohttp refuses a charset inside content_type=.
        return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # The refresh runs in a process of its own (its own Redis client and community flag
    # producer): it reads every community's members, which on the ingest's loop stalled the
    # fold and /ready, and on a thread starved the ingest of the interpreter (issue 15).
    analytics = RefreshProcess(settings, pipeline.metrics)

    # A Faust timer: every worker refreshes the gauges; the owner of activity partition 0 (one
    # worker at a time, whoever it is after a rebalance) also evaluates the community flags.
    # No ingest lock is held: a refresh over a large directory must not pause the fold.
    @app.timer(interval=settings.analytics_interval_seconds)  # type: ignore[untyped-decorator]
    async def refresh_analytics() -> None:
        ingest = pipeline.ingest
        if ingest is None or not ingest.joined.is_set():
            return
        owns_first = any(tp.partition == 0 for tp in ingest.consumer.assignment())
        try:
            await analytics.refresh(evaluate_communities=owns_first)
        except RefreshFailed as exc:
            log.warning("Analytics refresh incomplete (%s); retrying at the next one", exc)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types it too narrowly
    async def stop_analytics(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Bounded: a broker that went away first must not hold the worker's exit.
        await analytics.stop(timeout=10)

    @app.page("/health")
    async def health(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return self.json({"status": "up"})

    @app.page("/ready")
    async def ready(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ingest = pipeline.ingest
        redis_ok = await pipeline.store.ping()
        assigned = ingest is not None and ingest.joined.is_set()
        if ingest is None:
            reasons = ["starting"] + ([] if redis_ok else ["Redis unreachable"])
        else:
            reasons = ingest.not_ready_reasons(redis_ok)
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "kafka_assigned": assigned,
            "redis": redis_ok,
        }
        return self.json(body, status=503 if reasons else 200)

    return app


app = create_app(get_settings())
