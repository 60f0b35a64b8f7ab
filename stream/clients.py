"""One factory for every Kafka client: the bootstrap servers, TLS and SASL in one place.

Every consumer, producer, admin client and the Faust app are built here, so a company cluster
that asks for ``SASL_SSL`` is reached by all of them or by none, with the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from stream.settings import Settings

_TLS = ("SSL", "SASL_SSL")
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_DIAGNOSE_TIMEOUT_S = 10.0


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the brokers' connections, or None for the plaintext protocols."""
    if settings.kafka_security_protocol not in _TLS:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile or None,
        certfile=settings.kafka_ssl_certfile or None,
        keyfile=settings.kafka_ssl_keyfile or None,
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def security_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client takes for TLS and SASL."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol in _SASL:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def _options(settings: Settings, overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **security_options(settings),
        **overrides,
    }


def new_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer of ``topics`` (none: assign or subscribe later) with ``overrides``."""
    return AIOKafkaConsumer(*topics, **_options(settings, overrides))


async def assign_settled(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
    """Assign ``tps`` and wait out the offset reset that ``assign()`` starts in the background.

    Otherwise that reset may land after a following seek and move the position (seen: a read
    meant to start at the beginning began at the end and found nothing).
    """
    consumer.assign(tps)
    for tp in tps:
        await consumer.position(tp)


#: Every producer waits for all in-sync replicas (with the topics' min.insync.replicas, an
#: acknowledged record survives a broker loss) and is idempotent (the broker drops the copy a
#: retry after a lost acknowledgement would write).
DURABLE_PRODUCER = {"acks": "all", "enable_idempotence": True}


def new_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A durable producer (acks=all, idempotent) with ``overrides`` (transactional id,
    batching); ValueError for an override that would weaken either."""
    for name, wanted in DURABLE_PRODUCER.items():
        if name in overrides and overrides[name] not in (wanted, -1 if name == "acks" else wanted):
            raise ValueError(f"every producer is {name}={wanted!r}, not {overrides[name]!r}")
    return AIOKafkaProducer(**_options(settings, {**overrides, **DURABLE_PRODUCER}))


def new_admin(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client (topics, consumer groups, cluster description)."""
    return AIOKafkaAdminClient(**_options(settings, overrides))


def new_client(settings: Settings, **overrides: Any) -> AIOKafkaClient:
    """A bare client: bootstrap and metadata only (the worker's preflight)."""
    return AIOKafkaClient(**_options(settings, overrides))


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments: the broker URL and its credentials."""
    # Faust's own producer (dead letters) waits for all in-sync replicas too; Faust makes it
    # idempotent only inside its exactly-once transactions, which this app does not use.
    options: dict[str, Any] = {"broker": f"kafka://{settings.kafka_bootstrap}", "producer_acks": -1}
    protocol = settings.kafka_security_protocol
    if protocol in _SASL:
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            # With a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
            ssl_context=ssl_context(settings),
            mechanism=settings.kafka_sasl_mechanism,
        )
    elif protocol == "SSL":
        options["broker_credentials"] = faust.SSLCredentials(ssl_context(settings))
    return options


async def security_failure(settings: Settings) -> str | None:
    """Why the first bootstrap server refuses this client's TLS or SASL, or None.

    aiokafka's bootstrap swallows each server's error and says only that none answered;
    a wrong password or an untrusted certificate deserves its own line, so this connects
    once more, by hand, to find out.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    host, port = settings.kafka_host_port
    options = security_options(settings)
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=5000, **options), _DIAGNOSE_TIMEOUT_S
        )
    except ssl.SSLError as exc:
        return (
            f"Kafka at {host}:{port} failed the TLS handshake ({_reason(exc)}); check "
            "ESN_KAFKA_SSL_CAFILE (the CA that signed the brokers' certificates) and the host name"
        )
    except KafkaError as exc:
        if _is_auth_error(exc):
            return (
                f"Kafka at {host}:{port} refused the credentials ({_reason(exc)}); check "
                "ESN_KAFKA_SASL_USERNAME, ESN_KAFKA_SASL_PASSWORD and ESN_KAFKA_SASL_MECHANISM"
            )
        return None
    except (OSError, TimeoutError):
        return None  # not a security failure: the server is down or unreachable
    with contextlib.suppress(Exception):
        conn.close()
    return None


def _is_auth_error(exc: KafkaError) -> bool:
    name = type(exc).__name__
    return "Sasl" in name or "Authentication" in name or "Authorization" in name


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
