"""ESN_REDIS_URL's forms (stream/redis_url.py) and the client each gives (store/connection)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr, ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from stream.cli_errors import describe
from stream.redis_url import parse_redis_url
from stream.settings import Settings
from stream.store.connection import redis_client


class TestParse:
    def test_single_server_forms(self) -> None:
        """redis://, rediss:// and unix:// name one server; TLS only for rediss://."""
        plain = parse_redis_url("redis://127.0.0.1:16379/3")
        assert (("127.0.0.1", 16379),) == plain.nodes
        assert not plain.cluster and not plain.tls
        assert parse_redis_url("rediss://cache.example:6380/0").tls
        assert () == parse_redis_url("unix:///run/redis.sock").nodes
        assert (("127.0.0.1", 6379),) == parse_redis_url("redis://").nodes

    def test_cluster_seeds(self) -> None:
        """redis+cluster:// lists seeds host:port (IPv6 in brackets) with optional credentials."""
        address = parse_redis_url("redis+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001,h:7002")
        assert (("10.0.0.1", 7000), ("::1", 7001), ("h", 7002)) == address.nodes
        assert address.cluster and not address.tls
        assert ("app", "s@cret") == (address.username, address.password)
        secure = parse_redis_url("rediss+cluster://h:7000/0")
        assert secure.cluster and secure.tls

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("localhost:6379", "not a Redis URL"),
            ("http://h:1", "unknown scheme 'http'"),
            ("redis://h:99999/0", "port"),
            ("redis://h:1/zero", "must be a number"),
            ("unix://", "socket's path"),
            ("redis+cluster://", "is not host:port"),
            ("redis+cluster://h1:7000,,h2:7001", "an empty entry"),
            ("redis+cluster://h1", "'h1' is not host:port"),
            ("redis+cluster://h1:0", "port 1-65535"),
            ("redis+cluster://h1:7000/2", "only database 0"),
            ("redis+cluster://h1:7000?ssl_cert_reqs=none", "takes no ?options"),
        ],
    )
    def test_malformed_urls_say_what_is_wrong(self, url: str, reason: str) -> None:
        """Each malformed form is refused with its reason."""
        with pytest.raises(ValueError, match=reason.replace("?", r"\?")):
            parse_redis_url(url)

    def test_errors_never_repeat_credentials(self) -> None:
        """A bad cluster URL's error names the bad seed but never the password."""
        with pytest.raises(ValueError) as caught:
            parse_redis_url("redis+cluster://app:hunter22@h1:7000,h2")
        assert "hunter22" not in str(caught.value)
        assert "'h2'" in str(caught.value)


class TestSettings:
    def test_a_bad_url_is_one_line_naming_the_setting(self) -> None:
        """A malformed ESN_REDIS_URL fails the settings: one line, the variable, no secret."""
        with pytest.raises(ValidationError) as caught:
            Settings(redis_url="redis+cluster://u:hunter22@h1:7000,nope")
        failure = describe(caught.value)
        assert "\n" not in failure.message
        assert "invalid setting ESN_REDIS_URL" in failure.message
        assert "hunter22" not in failure.message

    def test_a_prefix_with_a_brace_is_one_line_naming_the_setting(self) -> None:
        """A brace in ESN_REDIS_PREFIX would become every key's hash tag: refused up front."""
        with pytest.raises(ValidationError) as caught:
            Settings(redis_prefix="esn{x}:")
        failure = describe(caught.value)
        assert "\n" not in failure.message and "ESN_REDIS_PREFIX" in failure.message

    def test_tls_files_accept_the_tls_cluster_form(self) -> None:
        """A Redis TLS file goes with rediss+cluster:// too, and is refused with redis+cluster://."""
        Settings(redis_url="rediss+cluster://h:7000", redis_tls_cafile="/ca.pem")
        with pytest.raises(ValidationError, match="needs a rediss://"):
            Settings(redis_url="redis+cluster://h:7000", redis_tls_cafile="/ca.pem")

    def test_host_port_of_a_cluster_is_its_first_seed(self) -> None:
        """redis_host_port of a cluster URL is its first seed."""
        assert ("h1", 7000) == Settings(redis_url="redis+cluster://h1:7000,h2:7001").redis_host_port


class TestFactory:
    async def test_single_server_client(self) -> None:
        """redis:// gives a Redis client with the settings' credentials."""
        settings = Settings(redis_url="redis://127.0.0.1:1/2", redis_password="pw-from-settings")
        client = redis_client(settings, socket_timeout=3)
        try:
            assert isinstance(client, aioredis.Redis)
            kwargs = client.connection_pool.connection_kwargs
            assert ("pw-from-settings", 2, 3) == (
                kwargs["password"],
                kwargs["db"],
                kwargs["socket_timeout"],
            )
        finally:
            await client.aclose()

    async def test_cluster_client_from_seeds(self) -> None:
        """redis+cluster:// gives a RedisCluster seeded with every listed node, URL credentials
        unless the settings give their own, TLS for rediss+cluster://."""
        settings = Settings(redis_url="rediss+cluster://app:url-pw@127.0.0.1:1,127.0.0.1:2")
        client = redis_client(settings, socket_timeout=3)
        try:
            assert isinstance(client, RedisCluster)
            seeds = client.nodes_manager.startup_nodes
            assert {"127.0.0.1:1", "127.0.0.1:2"} == set(seeds)
            assert ("app", "url-pw", SSLConnection, "required") == (
                client.connection_kwargs["username"],
                client.connection_kwargs["password"],
                client.connection_kwargs["connection_class"],
                client.connection_kwargs["ssl_cert_reqs"],
            )
        finally:
            await client.aclose()
        own = settings.model_copy(update={"redis_password": SecretStr("settings-pw")})
        client = redis_client(own)
        try:
            assert "settings-pw" == client.connection_kwargs["password"]
        finally:
            await client.aclose()
