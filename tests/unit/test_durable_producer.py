"""Every producer of the client factory waits for all in-sync replicas and is idempotent."""

from __future__ import annotations

import pytest

from stream import clients
from stream.settings import Settings


def _settings() -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1")


class TestDurableProducer:
    async def test_defaults_are_acks_all_and_idempotent(self) -> None:
        """A producer made without options has acks=all (-1) and idempotence."""
        producer = clients.new_producer(_settings())
        assert (-1, True) == (producer._sender._acks, producer._txn_manager is not None)

    async def test_transactional_producers_keep_both(self) -> None:
        """A transactional id keeps acks=all and idempotence (the flag outbox's producers)."""
        producer = clients.new_producer(_settings(), transactional_id="t-1", linger_ms=5)
        assert (-1, "t-1") == (producer._sender._acks, producer._txn_manager.transactional_id)

    @pytest.mark.parametrize(
        ("name", "value"), [("acks", 1), ("acks", 0), ("enable_idempotence", False)]
    )
    def test_a_weaker_override_is_refused(self, name: str, value: object) -> None:
        """acks=1, acks=0 or idempotence off is a programming error, refused at construction."""
        with pytest.raises(ValueError, match=name):
            clients.new_producer(_settings(), **{name: value})

    async def test_the_same_values_spelled_out_are_accepted(self) -> None:
        """acks="all" or -1 and enable_idempotence=True given explicitly are fine."""
        for acks in ("all", -1):
            producer = clients.new_producer(_settings(), acks=acks, enable_idempotence=True)
            assert -1 == producer._sender._acks
