"""The single-node stack never starts a lone server where the settings name a cluster."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stream.settings import Settings
from stream.stack import LocalStack, StackError
from tests.support import free_port


class TestStackAndClusters:
    def test_a_bootstrap_list_that_does_not_answer_is_not_replaced_by_one_broker(
        self, tmp_path: Path
    ) -> None:
        """With several bootstrap servers down, stack up refuses (before fetching any jar)
        instead of starting a one-broker cluster on the first port."""
        ports = [free_port(), free_port()]
        settings = Settings(
            kafka_bootstrap=",".join(f"127.0.0.1:{port}" for port in ports),
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            state_dir=tmp_path,
        )
        stack = LocalStack(settings)
        assert not stack.kafka_up()
        try:
            with pytest.raises(StackError, match="starts a single broker only"):
                stack.up()
        finally:
            stack.down()  # what a regression would have started
        assert not (tmp_path / "kafka" / f"libs-{settings.kafka_version}").exists()

    def test_a_redis_cluster_url_is_not_replaced_by_one_server(self, tmp_path: Path) -> None:
        """With a redis+cluster:// URL that does not answer, the stack refuses to start Redis."""
        settings = Settings(
            redis_url=f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}",
            state_dir=tmp_path,
        )
        stack = LocalStack(settings)
        assert not stack.redis_up()
        with pytest.raises(StackError, match="starts a single Redis only"):
            stack.start_redis()

    def test_kafka_counts_as_up_when_any_listed_broker_answers(self, tmp_path: Path) -> None:
        """A bootstrap list whose first broker is down still counts as up (a cluster minus one)."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            alive = server.getsockname()[1]
            settings = Settings(
                kafka_bootstrap=f"127.0.0.1:{free_port()},127.0.0.1:{alive}", state_dir=tmp_path
            )
            assert LocalStack(settings).kafka_up()
