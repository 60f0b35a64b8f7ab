"""The Kafka client factory's options, the security settings' checks and the replication rule."""

from __future__ import annotations

import ssl
from typing import Any

import faust
import pytest
from aiokafka.errors import KafkaError
from pydantic import SecretStr, ValidationError

from stream import clients
from stream.cli_errors import BadConfig, describe
from stream.kafka_admin import Replication, _warn_under_replicated, replication_for
from stream.settings import Settings, get_settings

SASL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "esn",
    "kafka_sasl_password": SecretStr("s3cret-pw"),
}


def settings(**values: Any) -> Settings:
    return Settings(**values)


class TestSecurityOptions:
    def test_plaintext_has_no_tls_and_no_sasl(self) -> None:
        """The default connects as before: PLAINTEXT, no context, no credentials."""
        assert {"security_protocol": "PLAINTEXT"} == clients.security_options(settings())

    def test_sasl_ssl_has_a_verifying_context_and_the_credentials(self) -> None:
        """SASL_SSL gives the mechanism, user, password and a context that checks the host."""
        options = clients.security_options(settings(**SASL))
        context = options.pop("ssl_context")
        assert {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "esn",
            "sasl_plain_password": "s3cret-pw",
        } == options
        assert isinstance(context, ssl.SSLContext)
        assert (True, ssl.CERT_REQUIRED) == (context.check_hostname, context.verify_mode)

    def test_sasl_plaintext_has_no_context(self) -> None:
        """SASL_PLAINTEXT authenticates without TLS."""
        options = clients.security_options(
            settings(**{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"})
        )
        assert "ssl_context" not in options
        assert "SASL_PLAINTEXT" == options["security_protocol"]

    def test_hostname_check_can_be_turned_off(self) -> None:
        """ESN_KAFKA_SSL_CHECK_HOSTNAME=false keeps the chain check, drops the name check."""
        context = clients.ssl_context(
            settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
        )
        assert context is not None
        assert (False, ssl.CERT_REQUIRED) == (context.check_hostname, context.verify_mode)

    async def test_overrides_and_bootstrap_reach_the_client(self) -> None:
        """new_client passes the bootstrap servers, the security options and the overrides."""
        client = clients.new_client(
            settings(kafka_bootstrap="127.0.0.1:1", **SASL), client_id="x", request_timeout_ms=7
        )
        try:
            assert ("SASL_SSL", "x", 7, [("127.0.0.1", 1)]) == (
                client._security_protocol,
                client._client_id,
                client._request_timeout_ms,
                [(host, port) for host, port, _ in client.hosts],
            )
        finally:
            await client.close()


class TestFaustBrokerOptions:
    def test_plaintext_is_the_broker_url_alone(self) -> None:
        """No credentials object for PLAINTEXT; Faust's producer waits for all replicas."""
        assert {"broker": "kafka://h:1", "producer_acks": -1} == clients.faust_broker_options(
            settings(kafka_bootstrap="h:1")
        )

    def test_sasl_ssl_gives_sasl_credentials_with_a_context(self) -> None:
        """Faust speaks SASL_SSL when its SASL credentials carry a TLS context."""
        credentials = clients.faust_broker_options(settings(**SASL))["broker_credentials"]
        assert isinstance(credentials, faust.SASLCredentials)
        assert ("SASL_SSL", "SCRAM-SHA-512", "esn") == (
            credentials.protocol.value,
            credentials.mechanism.value,
            credentials.username,
        )
        assert "s3cret-pw" not in repr(credentials)

    def test_ssl_gives_ssl_credentials(self) -> None:
        """SSL without SASL is Faust's SSLCredentials."""
        options = clients.faust_broker_options(settings(kafka_security_protocol="SSL"))
        assert isinstance(options["broker_credentials"], faust.SSLCredentials)


class TestSecuritySettings:
    def test_sasl_without_a_password_is_refused(self) -> None:
        """A SASL protocol needs both the user and the password."""
        with pytest.raises(ValidationError, match="ESN_KAFKA_SASL_USERNAME"):
            settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="esn")

    def test_a_tls_file_with_plaintext_is_refused(self) -> None:
        """A CA file would silently be unused over PLAINTEXT."""
        with pytest.raises(ValidationError, match="SSL or SASL_SSL"):
            settings(kafka_ssl_cafile="/etc/ssl/ca.pem")

    def test_a_key_without_its_certificate_is_refused(self) -> None:
        """A client key alone cannot be loaded."""
        with pytest.raises(ValidationError, match="ESN_KAFKA_SSL_CERTFILE"):
            settings(kafka_security_protocol="SSL", kafka_ssl_keyfile="/k.pem")

    def test_unknown_protocol_and_mechanism_are_refused(self) -> None:
        """Only the four protocols and three mechanisms are accepted."""
        with pytest.raises(ValidationError):
            settings(kafka_security_protocol="TLS")
        with pytest.raises(ValidationError):
            settings(kafka_sasl_mechanism="GSSAPI")

    def test_the_password_never_prints(self) -> None:
        """repr and str of the settings mask the SASL password."""
        value = settings(**SASL)
        assert "s3cret-pw" not in repr(value) and "s3cret-pw" not in str(value)


class TestReplication:
    @pytest.mark.parametrize(
        ("brokers", "expected"),
        [(1, Replication(1, 1)), (2, Replication(2, 1)), (3, Replication(3, 2)),
         (6, Replication(3, 2))],
    )  # fmt: skip
    def test_auto_is_three_or_the_cluster_size(self, brokers: int, expected: Replication) -> None:
        """0 picks min(3, brokers) replicas and one fewer in sync (at least 1)."""
        assert expected == replication_for(settings(), brokers)

    def test_a_factor_above_the_broker_count_is_refused(self) -> None:
        """Three replicas on two brokers cannot be created: one line naming both."""
        with pytest.raises(BadConfig, match=r"ESN_TOPIC_REPLICATION_FACTOR=3 .* 2 broker\(s\)"):
            replication_for(settings(topic_replication_factor=3), 2)

    def test_min_insync_above_the_factor_is_refused(self) -> None:
        """min.insync.replicas above the factor would fail every acks=all write."""
        with pytest.raises(BadConfig, match="ESN_TOPIC_MIN_INSYNC_REPLICAS=3"):
            replication_for(settings(topic_replication_factor=2, topic_min_insync_replicas=3), 3)

    def test_an_under_replicated_existing_topic_is_one_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An existing topic with fewer replicas than wanted is warned about, a new one not."""
        described = [
            {"topic": "old", "partitions": [{"replicas": [1]}, {"replicas": [1, 2, 3]}]},
            {"topic": "new", "partitions": [{"replicas": [1]}]},
            {"topic": "fine", "partitions": [{"replicas": [1, 2, 3]}]},
        ]
        with caplog.at_level("WARNING", logger="stream.kafka_admin"):
            _warn_under_replicated(described, 3, existing={"old", "fine"})
        assert 1 == len(caplog.records)
        assert "Topic old has replication factor 1, below the 3 wanted" in caplog.messages[0]


class TestErrorLines:
    def test_the_sasl_password_is_masked_in_an_error_line(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A server message that echoes the SASL password has it masked in the one line."""
        monkeypatch.setenv("ESN_KAFKA_BOOTSTRAP", "127.0.0.1:2")
        monkeypatch.setenv("ESN_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        monkeypatch.setenv("ESN_KAFKA_SASL_USERNAME", "esn")
        monkeypatch.setenv("ESN_KAFKA_SASL_PASSWORD", "kafka-topsecret")
        get_settings.cache_clear()
        try:
            failure = describe(KafkaError("the broker quoted kafka-topsecret back"))
        finally:
            get_settings.cache_clear()
        assert "kafka-topsecret" not in failure.message
        assert "quoted *** back" in failure.message
