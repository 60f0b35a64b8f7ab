"""Before the Faust worker starts: wait for Kafka and Redis, answering probes meanwhile.

Faust cannot start without a broker (its producer and agents connect as they start), and a worker
that exits at once when a dependency is down is restarted into a crash loop by its supervisor.
So the worker waits here instead: one log line per retry with a capped backoff, ``/health`` up,
``/ready`` 503 with the reason, and a prompt exit on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from stream.cli_errors import redact_url
from stream.clients import new_client, security_failure
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger(__name__)

#: Backoff between probes: doubling from the first, capped (a few lines a minute at most).
_FIRST_DELAY_S = 1.0
_MAX_DELAY_S = 30.0
_PROBE_TIMEOUT_S = 10.0


async def kafka_unreachable(settings: Settings) -> str | None:
    """Why the brokers cannot be used, or None when one answers a metadata request."""
    client = new_client(settings, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(client.bootstrap(), _PROBE_TIMEOUT_S)
        return None
    except Exception as exc:  # every failure to reach it is the same answer: not yet
        # ... but a refused password or certificate is said as such: no outage to wait out,
        # yet retried all the same (the broker's user or ACL may be created after the worker).
        refused = await security_failure(settings)
        return refused or f"Kafka at {settings.kafka_bootstrap} unreachable ({type(exc).__name__})"
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def redis_unreachable(settings: Settings) -> str | None:
    """Why Redis cannot be used, or None when it answers PING."""
    store = RedisStore.from_settings(settings)
    try:
        if await asyncio.wait_for(store.ping(), _PROBE_TIMEOUT_S):
            return None
        return f"Redis at {redact_url(settings.redis_url)} unreachable"
    except TimeoutError:
        return f"Redis at {redact_url(settings.redis_url)} did not answer PING"
    finally:
        await store.close()


async def wait_for_dependencies(settings: Settings) -> bool:
    """Return True once Kafka and Redis answer; False when asked to stop first."""
    # Faust configures logging only as it starts; until then these lines need a handler, and
    # the clients' own per-connection errors would repeat what the retry line already says.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    quiet = [logging.getLogger(name) for name in ("aiokafka", "redis")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        return await _wait(settings)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
        log.removeHandler(handler)
        log.propagate = True


async def _wait(settings: Settings) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reasons: list[str] = []
    runner: web.AppRunner | None = None
    try:
        delay, attempt = _FIRST_DELAY_S, 0
        while not stop.is_set():
            reasons = [
                why
                for why in await asyncio.gather(
                    kafka_unreachable(settings), redis_unreachable(settings)
                )
                if why is not None
            ]
            if not reasons:
                if attempt:
                    log.warning("Kafka and Redis answer now: starting the worker")
                return True
            attempt += 1
            log.warning(
                "Not starting yet: %s; retry %d in %.0f s", "; ".join(reasons), attempt, delay
            )
            if runner is None:
                runner = await _serve_probes(settings, reasons)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(_MAX_DELAY_S, delay * 2)
        log.warning("Stopped while waiting for %s", "; ".join(reasons))
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()


async def _serve_probes(settings: Settings, reasons: list[str]) -> web.AppRunner:
    """/health up and /ready 503 with the current reasons, on the worker's own address."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "up"})

    async def ready(request: web.Request) -> web.Response:
        body = {"ready": False, "reasons": reasons, "kafka_assigned": False}
        return web.json_response(body, status=503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.warning(
            "Cannot serve /health and /ready on %s:%d meanwhile: %s",
            settings.web_host,
            settings.web_port,
            exc,
        )
    return runner
