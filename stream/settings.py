"""Every knob of ESN Pulse in one frozen settings object, read from ``ESN_*`` environment variables
and, under them, an optional config file (:mod:`stream.config_file`).

The settings table (docs/reference/settings.md) is checked against this class by a unit test, so a
new field here must be documented there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream.config_file import ConfigFileSource, explain
from stream.redis_url import parse_redis_url
from stream.timebounds import parse_duration_ms, parse_instant_ms


class Settings(BaseSettings):
    """Runtime configuration; each field maps to ``ESN_<FIELD_NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ESN_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    kafka_security_protocol: str = Field(
        "PLAINTEXT",
        pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: str = Field(
        "SCRAM-SHA-512",
        pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
        description="SASL mechanism (SASL_* protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str = Field("", description="SASL user of every Kafka client.")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), description="SASL password of ESN_KAFKA_SASL_USERNAME; never printed."
    )
    kafka_ssl_cafile: str = Field(
        "", description="CA bundle that verifies the brokers' certificates; empty: system CAs."
    )
    kafka_ssl_certfile: str = Field(
        "", description="Client certificate (PEM) when the brokers ask for one (mutual TLS)."
    )
    kafka_ssl_keyfile: str = Field("", description="Private key (PEM) of ESN_KAFKA_SSL_CERTFILE.")
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        repr=False,  # may hold a password: never in a repr or a log line
        description="Redis URL for all state; rediss:// for TLS; redis+cluster://host:port[,...] "
        "(rediss+cluster://) for a Redis Cluster's seed nodes. A secret: never printed.",
    )
    redis_username: str = Field(
        "", description="Redis ACL user (overrides the URL's); empty: the URL's or default."
    )
    redis_password: SecretStr = Field(
        SecretStr(""), description="Redis password (overrides the URL's); empty: the URL's."
    )
    redis_tls_cafile: str = Field(
        "", description="CA bundle that verifies Redis's TLS certificate (rediss://)."
    )
    redis_tls_certfile: str = Field(
        "", description="Client certificate for Redis TLS (when Redis asks for one)."
    )
    redis_tls_keyfile: str = Field("", description="Private key of ESN_REDIS_TLS_CERTFILE.")
    app_id: str = Field(
        "esn-pulse", description="Faust app id; also the prefix of the consumer group ids."
    )
    topic_prefix: str = Field(
        "", description="Prepended to every topic name (tenants, test isolation); empty in prod."
    )
    redis_prefix: str = Field("esn:", description="Prepended to every Redis key.")
    activity_partitions: int = Field(
        12, ge=1, description="Partitions of the activity topic when ESN Pulse creates it."
    )
    topic_replication_factor: int = Field(
        0,
        ge=0,
        description="Replicas of each topic ESN Pulse creates; 0: 3, or fewer on a smaller "
        "cluster. More than the cluster's brokers is refused.",
    )
    topic_min_insync_replicas: int = Field(
        0,
        ge=0,
        description="min.insync.replicas of each topic ESN Pulse creates; 0: the replication "
        "factor minus one (at least 1).",
    )
    web_host: str = Field("127.0.0.1", description="Interface of the worker's web server.")
    web_port: int = Field(6066, description="Port of /metrics, /health and /ready.")
    metrics_username: str = Field(
        "", description="When set, /metrics asks for HTTP basic auth as this user; empty: open."
    )
    metrics_password: SecretStr = Field(
        SecretStr(""), description="Password of ESN_METRICS_USERNAME on /metrics; never printed."
    )
    api_host: str = Field(
        "127.0.0.1",
        description="Interface of `esn-pulse api` (/api/v1); a non-loopback one needs API tokens.",
    )
    api_port: int = Field(6067, description="Port of `esn-pulse api`.")
    api_tokens: SecretStr = Field(
        SecretStr(""),
        description="API bearer tokens as name:scope[,scope]:sha256-hex entries separated by "
        "spaces or newlines (`esn-pulse api token` makes one); scopes: aggregate, people.",
    )
    api_tokens_file: str = Field(
        "", description="A file of API token entries, one a line (# comments), read at start."
    )
    api_access_log: str = Field(
        "",
        description="JSON-lines file recording each people-scope API request (token name, route, "
        "time, status); empty: the api process's stderr.",
    )
    api_cache_seconds: float = Field(
        10.0, ge=0, description="How long the API reuses a /summary or /inactive computation."
    )
    # 10,000: a backfill's batch spans many days, and each day's keys cost fold.lua the same
    # whatever the batch holds; 2,000 cost Redis 35% more CPU an event (docs/design/performance.md).
    batch_max_records: int = Field(
        10_000, ge=1, description="Most records folded into Redis in one fetch (fenced batches)."
    )
    batch_wait_ms: int = Field(
        50,
        ge=0,
        description="How long a fetch waits for records; bounds the latency added by batching.",
    )
    user_buckets: int = Field(
        1024,
        ge=1,
        description="Hashes the user records of each partition are spread over; about users/"
        "(64 x partitions) keeps each bucket compact. Changing it needs a rebuild (replay).",
    )
    daily_active_retention_days: int = Field(
        35, ge=1, description="Days a per-day active-user set is kept in Redis."
    )
    redis_retry_max_seconds: float = Field(
        5.0, gt=0, description="Cap of the exponential backoff while Redis is unreachable."
    )
    state_dir: Path = Field(
        Path(".esn"),
        description="Local stack data: Kafka jars and log dirs, Redis AOF, pid files, logs.",
    )
    kafka_version: str = Field(
        "4.3.1", description="org.apache.kafka:kafka_2.13 version the local stack runs."
    )
    log_level: str = Field("info", description="Worker log level.")
    inactivity_thresholds: str = Field(
        "30d", description="Inactive when the last activity is older than this; several: 30d,90d."
    )
    never_active_grace: str = Field(
        "14d", description="An enabled profile with no activity this long after creation."
    )
    at_risk_active_days: int = Field(
        10,
        ge=0,
        le=56,
        description="At risk: a regular (active on at least this many of the 56 days before their "
        "last activity) silent for several usual gaps; 0 turns the at-risk flag off.",
    )
    at_risk_gap_factor: float = Field(
        5.0,
        ge=1.0,
        le=56.0,
        description="At risk after this many usual gaps (56 days over the active days) of silence.",
    )
    at_risk_min_silence: str = Field(
        "21d", description="Never at risk after less silence than this (a day or more)."
    )
    at_risk_fade: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fading: a regular whose last two weeks held this share fewer active days "
        "than the six weeks before; 0 turns the fade rule off.",
    )
    at_risk_fade_silence: str = Field(
        "7d", description="A fading regular is at risk after this much silence (a day or more)."
    )
    activity_types: str = Field(
        "", description="Event types that count as activity (comma list); empty: all types."
    )
    clock: str = Field(
        "wall",
        pattern="^(wall|event)$",
        description="wall: now is the wall clock; event: now is the highest event time seen "
        "(replays and backfills).",
    )
    allowed_lateness: str = Field(
        "5m", description="How late an event may arrive and still be ordered by its time."
    )
    min_event_time: str = Field(
        "2000-01-01T00:00:00Z",
        description="Events timed before this (RFC 3339) are dead-lettered as bad_time.",
    )
    max_future_skew: str = Field(
        "5m",
        description="Events timed later than the wall clock plus this are dead-lettered as "
        "bad_time, under either clock.",
    )
    sweep_interval_seconds: float = Field(
        5.0, gt=0, description="How often flags are brought up to the clock."
    )
    pseudonymize_key: SecretStr = Field(
        SecretStr(""),
        description="When set, user ids are replaced at ingest by an HMAC-SHA256 pseudonym under "
        "this key (activity and directory alike); empty: ids are kept.",
    )
    dlq_detail_ids: str = Field(
        "keep",
        pattern="^(keep|hash|drop)$",
        description="Ids quoted in a dead letter's esn.dlq.detail header: keep, hash (their "
        "pseudonym) or drop. The record itself is kept raw.",
    )
    min_group_size: int = Field(
        5,
        ge=1,
        description="Smallest group (department) reported on its own; smaller ones are merged "
        "into 'other', which is dropped if still smaller.",
    )
    analytics_retention_days: int = Field(
        400, ge=35, description="Days of daily trends, HyperLogLogs, content mix and top items."
    )
    analytics_interval_seconds: float = Field(
        30.0, gt=0, description="How often the analytics gauges and community flags are refreshed."
    )
    top_items_capacity: int = Field(
        1000,
        ge=10,
        description="Items kept per day for the most-interacted-with content (exact while a "
        "day has no more distinct items; past it the least counted are dropped).",
    )
    community_window_days: int = Field(
        30,
        ge=1,
        description="A community's active members are those active in this many days; with no "
        "event in it for as long, it is idle.",
    )
    community_metrics_top_n: int = Field(
        0,
        ge=0,
        description="Opt-in: export per-community gauges for the N largest communities "
        "(community ids become label values); 0: none.",
    )
    ready_stall_seconds: float = Field(
        120.0,
        gt=0,
        description="/ready answers 503 when records wait and no batch was applied for this long.",
    )
    ingest_stall_seconds: float = Field(
        900.0,
        gt=0,
        description="Exported as esn_ingest_stall_threshold_seconds: the ingest-stalled alert "
        "fires when no event was applied for this long while a worker is up.",
    )
    prometheus_port: int = Field(
        9090, description="Port of the local Prometheus that `make run` starts (loopback)."
    )
    config_file: str = Field(
        "",
        description="A .toml or .env file of settings under the environment variables, which "
        "win; empty: ./esn-pulse.toml if present. Also `esn-pulse --config FILE`.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the config file: the first that sets one wins."""
        return init_settings, env_settings, ConfigFileSource(settings_cls)

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_needs_credentials(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Without both, a SASL handshake fails at the broker with a less helpful message.
        sasl = str(info.data.get("kafka_security_protocol", "")).startswith("SASL_")
        if sasl and not (info.data.get("kafka_sasl_username") and value.get_secret_value()):
            raise ValueError("a SASL_* protocol needs ESN_KAFKA_SASL_USERNAME and this password")
        return value

    @field_validator("metrics_password")
    @classmethod
    def _metrics_credentials_in_pairs(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # One without the other would leave /metrics open (or unusable) without saying so.
        if bool(info.data.get("metrics_username")) != bool(value.get_secret_value()):
            raise ValueError("set both ESN_METRICS_USERNAME and ESN_METRICS_PASSWORD, or neither")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _tls_file_needs_tls(cls, value: str, info: ValidationInfo) -> str:
        # A TLS file with a plaintext protocol would silently connect unencrypted.
        protocol = str(info.data.get("kafka_security_protocol", ""))
        if value and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError("a Kafka TLS file needs protocol SSL or SASL_SSL")
        if (
            value
            and info.field_name == "kafka_ssl_keyfile"
            and not info.data.get("kafka_ssl_certfile")
        ):
            raise ValueError("a client key needs its certificate in ESN_KAFKA_SSL_CERTFILE")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _a_prefix_without_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            # A brace would become the keys' hash tag: every key in one slot, scripts refused.
            raise ValueError("a Redis key prefix must not hold '{' or '}' (the keys' hash tags)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str) -> str:
        parse_redis_url(value)  # its ValueError is the one line the CLI prints
        return value

    @field_validator("redis_tls_cafile", "redis_tls_certfile", "redis_tls_keyfile")
    @classmethod
    def _tls_needs_rediss(cls, value: str, info: ValidationInfo) -> str:
        # A TLS file with a plain redis:// URL would silently connect unencrypted.
        url = str(info.data.get("redis_url", ""))
        if value and not url.startswith(("rediss://", "rediss+cluster://")):
            raise ValueError(
                "a Redis TLS file needs a rediss:// or rediss+cluster:// ESN_REDIS_URL"
            )
        return value

    @field_validator("min_event_time")
    @classmethod
    def _an_instant(cls, value: str) -> str:
        parse_instant_ms(value)
        return value

    @field_validator("max_future_skew", "allowed_lateness", "never_active_grace")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @field_validator("at_risk_min_silence", "at_risk_fade_silence")
    @classmethod
    def _a_day_or_more(cls, value: str) -> str:
        # Per-day activity decides the rule (the state keeps one bit a day), and the reorder
        # buffer may keep a person's first and last event of a day only.
        if parse_duration_ms(value) < 86_400_000:
            raise ValueError("must be a day or more (for example 7d)")
        return value

    @field_validator("inactivity_thresholds")
    @classmethod
    def _durations(cls, value: str) -> str:
        # Checked here, not where the engine reads them: a bad one is then one line (exit 1) at
        # start, before the Faust app is even built.
        for part in value.split(","):
            parse_duration_ms(part)
        return value

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        """The first bootstrap server as (host, port)."""
        first = self.kafka_bootstrap.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port)

    @property
    def redis_host_port(self) -> tuple[str, int]:
        """Host and port of the Redis URL (a cluster's first seed; a socket's: 127.0.0.1:6379)."""
        nodes = parse_redis_url(self.redis_url).nodes
        return nodes[0] if nodes else ("127.0.0.1", 6379)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and the config file."""
    try:
        return Settings()
    except ValidationError as exc:
        # A bad value from the config file is reported with its file and line.
        raise explain(exc, Settings) from None
