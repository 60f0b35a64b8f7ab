"""Builds the nudge service from its settings and rules, and runs it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from typing import IO

from prometheus_client import start_http_server

from stream.nudge.channels import Channel
from stream.nudge.channels.smtp import SmtpChannel
from stream.nudge.channels.webhook import WebhookChannel
from stream.nudge.delivery import Deliverer
from stream.nudge.metrics import NudgeMetrics
from stream.nudge.rules import Rules
from stream.nudge.service import NudgeService, wall_ms
from stream.nudge.settings import NudgeSettings
from stream.nudge.suppression import OptOuts
from stream.privacy import pseudonymizer_from
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore


def channels_of(rules: Rules, nudge_settings: NudgeSettings) -> dict[str, Channel]:
    """One sender per configured channel."""
    out: dict[str, Channel] = {}
    for name, config in rules.channels.items():
        if config.type == "email":
            out[name] = SmtpChannel(nudge_settings, rules.links.get("opt_out", ""))
        else:
            out[name] = WebhookChannel(config, nudge_settings.webhook_timeout_seconds)
    return out


def build(
    settings: Settings,
    nudge_settings: NudgeSettings,
    rules: Rules,
    redis: RedisStore,
    dry_run_out: IO[str] | None = None,
    metrics: NudgeMetrics | None = None,
) -> NudgeService:
    """The service, its deliverer and its state, wired."""
    pseudonymize = pseudonymizer_from(settings)
    metrics = metrics or NudgeMetrics()
    store = NudgeStore(redis, dry_run=dry_run_out is not None)
    opt_outs = OptOuts(rules.opt_out_file, pseudonymize)
    opt_outs.refresh()  # a missing opt-out file stops the start, before anything is sent
    deliverer = Deliverer(
        rules,
        store,
        channels_of(rules, nudge_settings),
        metrics,
        opt_outs,
        wall_ms,
        int(nudge_settings.lease_seconds * 1000),
        dry_run_out,
    )
    return NudgeService(
        settings,
        rules,
        store,
        deliverer,
        metrics,
        pseudonymize,
        nudge_settings.poll_seconds,
        dry_run=dry_run_out is not None,
    )


async def serve(
    settings: Settings,
    nudge_settings: NudgeSettings,
    rules: Rules,
    dry_run_out: IO[str] | None = None,
) -> None:
    """Run until a stop signal; /metrics on ESN_NUDGE_METRICS_PORT when set."""
    from stream.kafka_admin import ensure_topics

    await ensure_topics(settings)  # the flagged and directory topics, as the worker makes them
    redis = RedisStore.from_settings(settings)
    metrics = NudgeMetrics()
    if nudge_settings.metrics_port:
        start_http_server(
            nudge_settings.metrics_port, nudge_settings.metrics_host, registry=metrics.registry
        )
    service = build(settings, nudge_settings, rules, redis, dry_run_out, metrics)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop.set)
    try:
        await service.run()
    finally:
        await redis.close()
