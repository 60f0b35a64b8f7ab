"""A flag outbox in Redis: the numbered records waiting for the flag publisher, read, trimmed
after a commit, and reconciled with the topic after Redis lost writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from stream.store.keys import RedisKeys
from stream.store.redis_store import RedisStore, text

_TRIM_SCRIPT = resources.files("stream.store").joinpath("outbox_trim.lua").read_text()
_RECONCILE_SCRIPT = resources.files("stream.store").joinpath("outbox_reconcile.lua").read_text()
#: How long ids already on the topic wait for the release that makes them again. Minutes, in
#: practice (the worker re-reads what Redis lost at once); a month covers a worker that stays
#: down meanwhile, and a stale id can only ever match its own change.
AHEAD_TTL_S = 30 * 86_400


@dataclass(frozen=True)
class OutboxKeys:
    """The keys of one kind of outbox, per output partition."""

    entries: Callable[[int], str]
    counter: Callable[[int], str]
    ahead: Callable[[int], str]
    published: Callable[[int], str]

    @classmethod
    def users(cls, keys: RedisKeys) -> OutboxKeys:
        """Per activity partition: esn.users.flagged.v1."""
        return cls(
            lambda p: keys.partition(p).outbox,
            lambda p: keys.partition(p).outbox_seq,
            lambda p: keys.partition(p).flags_ahead,
            lambda p: keys.partition(p).published_seq,
        )

    @classmethod
    def communities(cls, keys: RedisKeys) -> OutboxKeys:
        """One outbox (partition 0): esn.communities.flagged.v1."""
        return cls(
            lambda _p: keys.community_outbox,
            lambda _p: keys.community_outbox_seq,
            lambda _p: keys.community_flags_ahead,
            lambda _p: keys.community_published_seq,
        )


@dataclass(frozen=True)
class Reconciled:
    """What a reconciliation did to an outbox."""

    dropped: int  # already on the topic
    kept: int  # renumbered after the topic's tail


@dataclass(frozen=True)
class BehindPublished:
    """Refused: the tail given is below a sequence number already committed and trimmed."""

    published_seq: int


class OutboxStore:
    """Reads and rewrites the outboxes of one kind; the caller serialises calls per partition."""

    def __init__(self, store: RedisStore, keys: OutboxKeys) -> None:
        self.store = store
        self.keys = keys
        self._trim = store.client.register_script(_TRIM_SCRIPT)
        self._reconcile = store.client.register_script(_RECONCILE_SCRIPT)

    @classmethod
    def users(cls, store: RedisStore) -> OutboxStore:
        """The user flags' outboxes, one per activity partition (esn.users.flagged.v1)."""
        return cls(store, OutboxKeys.users(store.keys))

    @classmethod
    def communities(cls, store: RedisStore) -> OutboxStore:
        """The community flags' one outbox (esn.communities.flagged.v1, partition 0)."""
        return cls(store, OutboxKeys.communities(store.keys))

    async def head(self, partition: int, count: int) -> list[tuple[int, str]]:
        """The first ``count`` entries: (sequence number, record JSON), in order."""
        raw: list[Any] = await self.store.client.lrange(self.keys.entries(partition), 0, count - 1)
        entries = []
        for entry in raw:
            seq_text, record = text(entry).split("\t", 1)
            entries.append((int(seq_text), record))
        return entries

    async def trim(self, partition: int, last_seq: int) -> int:
        """Drop the entries up to ``last_seq`` (committed to the topic); returns how many."""
        removed = await self._trim(
            keys=[self.keys.entries(partition), self.keys.published(partition)],
            args=[last_seq],
        )
        return int(removed)

    async def reconcile(
        self, partition: int, tail_seq: int, from_seq: int, topic_ids: list[str]
    ) -> Reconciled | BehindPublished | None:
        """Drop what the topic holds from ``from_seq`` to ``tail_seq`` (``topic_ids``, by event
        id) and renumber the rest after ``tail_seq``; None when the outbox now starts before
        ``from_seq`` (read the topic further back)."""
        k = self.keys
        dropped, kept = await self._reconcile(
            keys=[
                k.entries(partition),
                k.counter(partition),
                k.ahead(partition),
                k.published(partition),
            ],
            args=[tail_seq, from_seq, "\n".join(topic_ids), "event_id", AHEAD_TTL_S],
        )
        if int(dropped) == -2:
            return BehindPublished(int(kept))
        if int(dropped) < 0:
            return None
        return Reconciled(int(dropped), int(kept))
