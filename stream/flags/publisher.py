"""Publishing flag records from a Redis outbox to a flag topic, each exactly once, zombies fenced.

Used for esn.users.flagged.v1 (one outbox per activity partition) and esn.communities.flagged.v1
(one outbox, partition 0).

Records of outbox p go to partition p of the flag topic, in outbox order, with their sequence
number in the ``esn.seq`` header, through a transactional producer of its own per output
partition (``transactional.id = {app_id}-flags-{topic}-{p}``). Starting that producer fences
every older one with the same id (a zombie's next send or commit fails with ProducerFenced, and
it drops the partition) and resolves its open transaction; only then is the partition's last
committed record read (read_committed). An outbox entry numbered at or below it was either sent
before a crash (trimmed only now) or, when Redis lost writes and released again, numbered anew from
an older point: the outbox is then reconciled with the topic by event id (what the topic holds is
dropped, the rest renumbered after its tail; see store/outbox_reconcile.lua), never skipped by
number. docs/operations/exactly-once.md says what consumers of the flag topics can rely on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerFenced

from stream import jsonutil
from stream.clients import assign_settled, new_consumer, new_producer
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.outbox_store import (
    BehindPublished,
    OutboxStore,
    Reconciled,
)
from stream.topics import FLAG_SEQ, TopicNames

log = logging.getLogger(__name__)

#: Outbox entries per transaction: one commit marker per this many records, and a bound on what
#: a read_committed consumer waits for before it sees the first of them.
_TXN_RECORDS = 5000
#: A transaction not committed within this long (broker down) is abandoned: its producer is
#: dropped and the next attempt starts a new one, whose start aborts what was left open.
_TXN_TIMEOUT_S = 60.0
#: After being fenced, a partition is left alone this long unless a rebalance hands it back:
#: a zombie learns it lost its partitions within a heartbeat, and re-fencing the new owner in
#: the meantime would only cost it a retry (correct, but noisy).
_FENCED_HOLDOFF_S = 30.0
#: The last committed record may sit behind commit markers and aborted batches: the tail is
#: searched backwards in windows growing from this many offsets.
_TAIL_WINDOW = 16
#: Reads of the topic a reconciliation may need: a stale view is corrected by the next read.
_RECONCILE_ATTEMPTS = 3


class FlagPublisher:
    """Drains per-partition outboxes; the caller serialises calls per partition."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        topic: str | None = None,
        outbox: OutboxStore | None = None,
        key_field: str = "user_id",
    ) -> None:
        self.settings = settings
        self.topic = topic or TopicNames.from_settings(settings).flagged
        self.outbox = outbox or OutboxStore.users(store)
        self.key_field = key_field
        #: partition -> the esn.seq last committed to it (by this producer or read from the tail).
        self.published: dict[int, int] = {}
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._fenced_until: dict[int, float] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._tail_reader: AIOKafkaConsumer | None = None

    def transactional_id(self, partition: int) -> str:
        """The id that fences every other publisher of this output partition."""
        return f"{self.settings.app_id}-flags-{self.topic}-{partition}"

    async def start(self) -> None:
        """Nothing to connect yet: producers start per partition, at its first publish."""

    async def stop(self) -> None:
        """Close every producer (no transaction is open between calls) and the tail reader."""
        for partition in list(self._producers):
            self._drop_producer(partition)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._tail_reader is not None:
            reader, self._tail_reader = self._tail_reader, None
            await reader.stop()

    def forget(self, partition: int) -> None:
        """Another worker owns the partition now: fence it and re-read the tail if it comes back."""
        self.published.pop(partition, None)
        self._fenced_until.pop(partition, None)
        self._drop_producer(partition)

    async def publish(self, partition: int) -> list[dict[str, Any]]:
        """Send every pending record of one partition; returns what was committed."""
        if time.monotonic() < self._fenced_until.get(partition, 0.0):
            return []
        sent: list[dict[str, Any]] = []
        try:
            while True:
                pending = await self.outbox.head(partition, _TXN_RECORDS)
                if not pending:
                    return sent
                producer = await self._producer(partition)
                if pending[0][0] <= self.published[partition]:
                    # Sent before a crash, or numbered anew after Redis lost writes.
                    await self._reconcile(partition, pending[0][0])
                    pending = await self.outbox.head(partition, _TXN_RECORDS)
                    if not pending or pending[0][0] <= self.published[partition]:
                        return sent  # not settled yet: the next publish goes on
                docs = await asyncio.wait_for(
                    self._send_in_transaction(producer, partition, pending), _TXN_TIMEOUT_S
                )
                sent.extend(docs)
                self.published[partition] = pending[-1][0]
                await self.outbox.trim(partition, self.published[partition])
                if len(pending) < _TXN_RECORDS:
                    return sent
        except ProducerFenced:
            # A newer publisher of this partition started: it owns it and re-reads the tail.
            log.warning(
                "Flag publisher for %s[%d] fenced by a newer one; dropping the partition",
                self.topic,
                partition,
            )
            self.forget(partition)
            self._fenced_until[partition] = time.monotonic() + _FENCED_HOLDOFF_S
            return sent
        except TimeoutError as exc:
            self.forget(partition)
            raise KafkaTimeoutError(
                f"flag transaction on {self.topic}[{partition}] not committed within "
                f"{_TXN_TIMEOUT_S:.0f} s"
            ) from exc
        except BaseException:
            # The transaction may be half sent: drop its producer (the next one aborts what it
            # left open) and re-read the committed tail before the next attempt.
            self.forget(partition)
            raise

    async def _reconcile(self, partition: int, from_seq: int) -> None:
        """Bring the outbox in line with the topic from ``from_seq`` on (see the module doc)."""
        behind: BehindPublished | None = None
        for _attempt in range(_RECONCILE_ATTEMPTS):
            # Read again, not remembered: only the committed tail after our fence is final.
            tail = await self.last_published_seq(partition)
            topic_ids = await self._event_ids_since(partition, from_seq, tail)
            done = await self.outbox.reconcile(partition, tail, from_seq, topic_ids)
            if isinstance(done, Reconciled):
                self.published[partition] = tail
                if done.kept and done.dropped < len(topic_ids):
                    # Not the ordinary repeat after a crash: Redis had lost records it numbered.
                    log.warning(
                        "Flag outbox of %s[%d] was behind the topic (Redis lost writes): %d "
                        "records already published dropped, %d renumbered after esn.seq %d",
                        self.topic,
                        partition,
                        done.dropped,
                        done.kept,
                        tail,
                    )
                return
            if done is None:  # the outbox starts earlier now: read further back
                behind = None  # judged on the last answer only
                head = await self.outbox.head(partition, 1)
                if not head:
                    return
                from_seq = min(from_seq, head[0][0])
                continue
            behind = done
        if behind is None:
            return  # the outbox kept moving back: the next publish goes on from here
        # Still below what was committed and trimmed: the topic itself lost records (retention
        # deleted them, or it was recreated). What the outbox holds up to there was committed.
        log.warning(
            "Flag topic %s[%d] ends at esn.seq %d, below the %d already published (retention "
            "or a recreated topic); numbering goes on after %d",
            self.topic,
            partition,
            tail,
            behind.published_seq,
            behind.published_seq,
        )
        self.published[partition] = behind.published_seq
        await self.outbox.trim(partition, behind.published_seq)

    async def _event_ids_since(self, partition: int, from_seq: int, tail: int) -> list[str]:
        """The event ids of the committed records numbered ``from_seq`` to ``tail``, in order.

        Not past ``tail``: what another publisher committed since the tail was read is still in
        the outbox under its own numbers, and matching it would renumber what follows into them.
        """
        reader = await self._reader()
        tp = TopicPartition(self.topic, partition)
        await assign_settled(reader, [tp])
        high = (await reader.end_offsets([tp]))[tp]
        window = _TAIL_WINDOW
        found: list[tuple[int, str]] = []
        while high > 0:
            low = max(0, high - window)
            batch = await self._records_between(reader, tp, low, high)
            found = batch + found
            if low == 0 or (batch and batch[0][0] < from_seq):
                break
            high, window = low, window * 4
        return [event_id for seq, event_id in found if from_seq <= seq <= tail]

    async def _records_between(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int
    ) -> list[tuple[int, str]]:
        """(esn.seq, event id) of the committed records in offsets [low, high)."""
        return [
            (int(dict(record.headers)[FLAG_SEQ]), str(jsonutil.loads(record.value)["event_id"]))
            for record in await self._committed_between(reader, tp, low, high)
        ]

    async def _committed_between(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int
    ) -> list[Any]:
        """The committed records in offsets [low, high), in order (read_committed)."""
        reader.seek(tp, low)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while await reader.position(tp) < high:
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"could not read {self.topic}[{tp.partition}] to {high}")
            batch = await reader.getmany(tp, timeout_ms=500)
            out.extend(record for record in batch.get(tp, []) if record.offset < high)
        return out

    async def _send_in_transaction(
        self, producer: AIOKafkaProducer, partition: int, pending: list[tuple[int, str]]
    ) -> list[dict[str, Any]]:
        """One transaction: every pending record, in order, then the commit."""
        docs: list[dict[str, Any]] = []
        deliveries = []
        await producer.begin_transaction()
        for seq, record in pending:
            doc = jsonutil.loads(record)
            deliveries.append(
                await producer.send(
                    self.topic,
                    record.encode(),
                    key=str(doc[self.key_field]).encode(),
                    partition=partition,
                    headers=[(FLAG_SEQ, str(seq).encode())],
                )
            )
            docs.append(doc)
        await asyncio.gather(*deliveries)
        await producer.commit_transaction()
        return docs

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        """This partition's transactional producer; started (fencing older ones) on first use."""
        producer = self._producers.get(partition)
        if producer is not None:
            return producer
        producer = new_producer(
            self.settings,
            client_id=f"{self.settings.app_id}-flags-{partition}",
            transactional_id=self.transactional_id(partition),
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        try:
            # Starting it gets the id's next epoch: older producers are fenced and their open
            # transaction is resolved before this returns, so the tail read below is final.
            await producer.start()
            self.published[partition] = await self.last_published_seq(partition)
        except BaseException:
            await producer.stop()
            raise
        self._producers[partition] = producer
        return producer

    def _drop_producer(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is None:
            return
        # Closed in the background: forget() runs inside a rebalance callback that must not
        # wait on a broker, and a fenced or abandoned producer can never commit anything.
        task = asyncio.get_running_loop().create_task(_close_quietly(producer))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def last_published_seq(self, partition: int) -> int:
        """The ``esn.seq`` of the last committed record in the output partition (0 when none)."""
        reader = await self._reader()
        tp = TopicPartition(self.topic, partition)
        await assign_settled(reader, [tp])
        end = (await reader.end_offsets([tp]))[tp]  # read_committed: the last stable offset
        high, window = end, _TAIL_WINDOW
        while high > 0:
            low = max(0, high - window)
            last = await self._last_seq_between(reader, tp, low, high)
            if last is not None:
                return last
            high, window = low, window * 4
        return 0

    async def _last_seq_between(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int
    ) -> int | None:
        """The last committed record's esn.seq in [low, high), or None if there is none."""
        records = await self._committed_between(reader, tp, low, high)
        return int(dict(records[-1].headers)[FLAG_SEQ]) if records else None

    async def _reader(self) -> AIOKafkaConsumer:
        if self._tail_reader is None:
            reader = new_consumer(
                self.settings,
                client_id=f"{self.settings.app_id}-flags-tail",
                isolation_level="read_committed",
                enable_auto_commit=False,
                # A window that starts before what retention left is read from the log start:
                # "latest" (the default) would jump to the end and find no record at all.
                auto_offset_reset="earliest",
            )
            await reader.start()
            await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
            self._tail_reader = reader
        return self._tail_reader


async def _close_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except (KafkaError, OSError) as exc:  # fenced or unreachable: nothing left to flush
        log.debug("Closing a dropped flag producer: %s", exc)
