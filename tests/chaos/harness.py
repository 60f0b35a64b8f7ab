"""Chaos drills: a fault injected into a running pipeline, judged by oracles computed from input.

Each drill gets its own topics, keys and consumer group (``isolated``) on a stack this process
controls (LocalStack, so that redis-server and the broker can be SIGKILLed and restarted), produces
a directory and an event-clock history, injects its fault mid-stream and, once everything is
applied and published, counts what differs from the oracles: events lost or double-counted
(per-user counts against :class:`Oracle`) and flag records missing or repeated on
esn.users.flagged.v1 (against the pure state machine's transitions), with esn.seq checked gapless.
Used by tests/chaos and by ``make chaos`` (bench/chaos.py), which prints the figures.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream import jsonutil
from stream.clients import assign_settled
from stream.flags.machine import Transition
from stream.generator import directory_records, generate_events
from stream.kafka_admin import ensure_topics
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore
from stream.topics import FLAG_SEQ, TopicNames
from tests.integration.test_inactivity import as_transition, expected_transitions, ms
from tests.support import (
    EndOffsets,
    Oracle,
    WorkerProcess,
    applied_count,
    eventually,
    free_port,
    isolated,
    keyed,
    produce_raw,
)

START = date(2025, 9, 1)
#: Caught up: at most this many records of the activity topic not yet applied (a fetch's worth).
CAUGHT_UP_LAG = 2000
#: Each wait of a drill ends by this deadline: a stuck pipeline is a finding, not a hang.
WAIT_S = 150.0


@dataclass
class Figures:
    """What one drill measured."""

    scenario: str
    events: int = 0
    lost: int = 0
    double_counted: int = 0
    users_wrong: int = 0
    state_exact: bool = False
    flags_expected: int = 0
    duplicate_flags: int = 0
    missing_flags: int = 0
    seq_errors: int = 0
    recovery_seconds: float | None = None
    worker_rss_mib: float = 0.0
    redis_used_mib: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """No event lost or double-counted, every flag record exactly once, esn.seq gapless."""
        return (
            self.state_exact
            and not (self.lost or self.double_counted or self.users_wrong)
            and not (self.duplicate_flags or self.missing_flags or self.seq_errors)
        )

    def summary(self) -> str:
        """One line for an assertion message or a log."""
        recovery = "-" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}s"
        return (
            f"{self.scenario}: events {self.events}, lost {self.lost}, double-counted "
            f"{self.double_counted}, users wrong {self.users_wrong}, state exact "
            f"{self.state_exact}, flags {self.flags_expected} expected / {self.duplicate_flags} "
            f"duplicate / {self.missing_flags} missing / {self.seq_errors} esn.seq errors, "
            f"recovery {recovery}, worker RSS {self.worker_rss_mib:.0f} MiB, Redis "
            f"{self.redis_used_mib:.1f} MiB" + (f"; {'; '.join(self.notes)}" if self.notes else "")
        )


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def redis_used_mib(store: RedisStore) -> float:
    """INFO memory's used_memory, in MiB (0 while Redis is down)."""
    try:
        info = await store.client.info("memory")
    except (OSError, ConnectionError, Exception):  # down mid-drill: a figure, not an error
        return 0.0
    if "used_memory" not in info:  # a cluster's client answers per node: their sum
        return sum(float(node.get("used_memory", 0)) for node in info.values()) / 2**20
    return float(info["used_memory"]) / 2**20


class Drill:
    """One scenario's deployment, workload, workers and measurements."""

    def __init__(
        self,
        base: Settings,
        stack: LocalStack | None,
        log_dir: Path,
        scenario: str,
        users: int = 300,
        days: int = 200,
        seed: int = 31,
        rate: float | None = 4000,
        workers: int = 1,
        **overrides: Any,
    ) -> None:
        """``stack``: the single-node stack the faults break, or None when they break something
        else (a cluster's node, through a closure); ``workers`` started before the input;
        ``overrides`` of the drill's isolated settings (e.g. activity_partitions)."""
        self.scenario = scenario
        self.stack = stack
        self.log_dir = log_dir
        self.rate = rate
        self.initial_workers = workers
        self.settings = isolated(
            base,
            "chaos",
            clock="event",
            inactivity_thresholds="30d,90d",
            never_active_grace="14d",
            allowed_lateness="1h",
            sweep_interval_seconds=0.3,
            **overrides,
        )
        self.topics = TopicNames.from_settings(self.settings)
        self.directory = list(directory_records(users, START, days, seed=seed))
        self.events = _shuffled_within_hours(list(generate_events(users, days, START, seed)))
        self.workers: list[WorkerProcess] = []
        self.store = RedisStore.from_settings(self.settings)
        self.figures = Figures(scenario, events=len(self.events))
        self.fault_at: float | None = None
        self.producing: asyncio.Task[int] | None = None

    @property
    def local(self) -> LocalStack:
        """The single-node stack a fault breaks (a drill on clusters has none)."""
        assert self.stack is not None, f"{self.scenario} breaks the single-node stack: pass it"
        return self.stack

    # --- workers ----------------------------------------------------------------------

    def worker(self) -> WorkerProcess:
        """A new worker of this deployment (not started), stopped by close()."""
        process = WorkerProcess(
            self.settings.model_copy(update={"web_port": free_port()}), self.log_dir
        )
        self.workers.append(process)
        return process

    def alive(self) -> list[WorkerProcess]:
        """Workers still running (a stopped one counts: it is paused, not gone)."""
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def check_alive(self) -> None:
        """Fail when a worker that should run has exited (its log tail in the message)."""
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is not None and not getattr(w, "killed", 0):
                w.check_alive()

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL a worker (it is then expected to be gone)."""
        worker.killed = True  # type: ignore[attr-defined]
        worker.kill()

    async def applied(self) -> int:
        """Records of the activity topic folded or dead-lettered so far."""
        return await applied_count(self.store, self.settings)

    async def reached(self, share: float, timeout: float = WAIT_S) -> int:
        """Wait until ``share`` of the events are applied; returns how many are."""

        async def enough() -> bool:
            return await self.applied() >= share * len(self.events)

        await eventually(enough, timeout, f"{share:.0%} applied", self.check_alive)
        return await self.applied()

    def mark_fault(self) -> None:
        """The instant the fault was injected: recovery is timed from here."""
        self.fault_at = time.monotonic()

    # --- the run ----------------------------------------------------------------------

    async def run(self, fault: Callable[[Drill], Awaitable[None]]) -> Figures:
        """Directory, then events paced at ``rate`` while ``fault`` runs; judge the outcome."""
        try:
            await ensure_topics(self.settings)
            # Together: each waits out the group's rebalances the others cause.
            await asyncio.gather(*(self.worker().started() for _ in range(self.initial_workers)))
            await produce_raw(
                self.settings,
                [(d["user_id"].encode(), jsonutil.dumps(d)) for d in self.directory],
                topic=self.topics.directory,
            )
            await eventually(
                lambda: _directory_folded(self.alive(), len(self.directory)),
                60,
                "directory folded",
                self.check_alive,
            )
            self.producing = asyncio.create_task(
                produce_raw(self.settings, keyed(self.events), rate=self.rate)
            )
            await fault(self)
            await self._time_recovery()
            await self.producing
            await self._wait_applied()
            await self._wait_published()
        except AssertionError as exc:
            self.figures.notes.append(_note(exc))
        finally:
            if self.producing is not None and not self.producing.done():
                self.producing.cancel()
        await self.judge()
        return self.figures

    async def _time_recovery(self) -> None:
        assert self.fault_at is not None, "the fault never marked its instant"
        async with EndOffsets(self.settings, self.topics.activity) as ends:

            async def caught_up() -> bool:
                end = await ends.get()
                fences = await self.store.load_fences(self.topics.activity, sorted(end))
                return sum(e - fences[p] - 1 for p, e in end.items() if e) <= CAUGHT_UP_LAG

            await eventually(caught_up, WAIT_S, "caught up after the fault", self.check_alive)
        self.figures.recovery_seconds = time.monotonic() - self.fault_at

    async def _wait_applied(self) -> None:
        async with EndOffsets(self.settings, self.topics.activity) as ends:

            async def applied() -> bool:
                end = await ends.get()
                fences = await self.store.load_fences(self.topics.activity, sorted(end))
                return all(fences[p] + 1 == e for p, e in end.items() if e)

            await eventually(applied, WAIT_S, "every event applied", self.check_alive)

    async def _wait_published(self) -> None:
        """Every expected flag committed, then the outboxes drained, no transaction open and a
        sweep finished on each worker since: a repeat would have been sent by then."""
        partitions = range(self.settings.activity_partitions)
        expected = len(expected_transitions(self.settings, self.events, self.directory))

        async def all_committed() -> bool:
            return len(await committed_flags(self.settings)) >= expected

        await eventually(all_committed, 60, f"{expected} flags committed", self.check_alive)
        since = time.time()
        async with FlagTail(self.settings) as tail:

            async def drained() -> bool:
                keys = self.store.keys
                lengths = [
                    await self.store.client.llen(keys.partition(p).outbox) for p in partitions
                ]
                if any(lengths) or not await tail.settled():
                    return False
                ages = [await asyncio.to_thread(_sweep_age, w) for w in self.alive()]
                return all(age < time.time() - since for age in ages)

            await eventually(drained, WAIT_S, "outboxes drained after a sweep", self.check_alive)

    async def judge(self) -> None:
        """Compare the state and the flag topic with the oracles; measure memory."""
        figures = self.figures
        oracle = Oracle.of(self.events)
        states = await self.store.all_user_states()
        for user, counts in oracle.counts.items():
            state = states.get(user)
            got = Counter(state.counts) if state else Counter()
            figures.lost += sum((counts - got).values())
            figures.double_counted += sum((got - counts).values())
            if state is None or (state.first_seen_ms, state.last_seen_ms) != (
                oracle.first[user],
                oracle.last[user],
            ):
                figures.users_wrong += 1
        for user in set(states) - set(oracle.counts):
            figures.double_counted += sum(states[user].counts.values())
            figures.users_wrong += 1
        try:
            await oracle.assert_matches(self.store)
            figures.state_exact = True
        except AssertionError as exc:
            figures.notes.append(f"state: {str(exc).splitlines()[0][:200]}")

        expected = Counter(expected_transitions(self.settings, self.events, self.directory))
        records = await committed_flags(self.settings)
        published = Counter(as_transition(jsonutil.loads(r.value)) for r in records)
        figures.flags_expected = sum(expected.values())
        figures.duplicate_flags = sum((published - expected).values())
        figures.missing_flags = sum((expected - published).values())
        figures.seq_errors = seq_errors(records)
        for label, extra in (
            ("missing", expected - published),
            ("duplicate", published - expected),
        ):
            if extra:
                shown = ", ".join(
                    f"{t.user_id} {t.kind} {t.threshold_ms} at {t.at_ms}"
                    for t in sorted(extra.elements())[:3]
                )
                figures.notes.append(f"{label} flags, e.g. {shown}")
        if figures.missing_flags or figures.duplicate_flags:
            figures.notes.append(f"committed flag records: {len(records)}")
        figures.worker_rss_mib = sum(rss_mib(w.proc.pid) for w in self.alive() if w.proc)
        figures.redis_used_mib = await redis_used_mib(self.store)

    async def close(self) -> None:
        """Stop every worker (resuming a paused one first) and drop the drill's keys."""
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        try:
            client = self.store.client
            keys = [k async for k in client.scan_iter(match=self.settings.redis_prefix + "*")]
            # One DEL per key (a cluster's keys span slots), pipelined: one round trip a node.
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.delete(key)
                await pipe.execute()
        finally:
            await self.store.close()
        # Fewer logs for the next broker restart to recover.
        await drop_topics(self.settings, (self.settings.topic_prefix, self.settings.app_id))


# --- the faults ------------------------------------------------------------------------


async def worker_sigkills(drill: Drill) -> None:
    """SIGKILL the worker three times mid-stream, a new one started after each."""
    (worker,) = drill.alive()
    at = []
    for share in (0.2, 0.45, 0.7):
        await drill.reached(share)
        drill.kill(worker)
        drill.mark_fault()
        at.append(await drill.applied())
        worker = await drill.worker().started()
    if any(n >= len(drill.events) for n in at):
        drill.figures.notes.append(f"a kill landed after the stream: applied {at}")


async def redis_sigkill(drill: Drill) -> None:
    """SIGKILL redis-server mid-stream and restart it from its append-only file."""
    await drill.reached(0.4)
    _kill_redis(drill)
    drill.mark_fault()
    await asyncio.to_thread(drill.local.start_redis)


async def redis_rollback(drill: Drill) -> None:
    """SIGKILL redis-server and restart it from its AOF as it was a second earlier: what an
    everysec fsync leaves after a power loss. State and fences roll back together; the worker
    must notice that Redis is behind what it consumed and read those records again."""
    await drill.reached(0.4)
    aof = _aof_dir(drill.local)
    older = Path(tempfile.mkdtemp(prefix="aof-", dir=drill.local.root))
    shutil.copytree(aof, older / "appendonlydir")
    await drill.reached(0.55)  # at the paced rate, about a second later
    _kill_redis(drill)
    drill.mark_fault()
    shutil.rmtree(aof)
    shutil.move(older / "appendonlydir", aof)
    shutil.rmtree(older)
    await asyncio.to_thread(drill.local.start_redis)


async def broker_sigkill(drill: Drill) -> None:
    """SIGKILL the Kafka broker mid-stream and start it again on its log dirs."""
    assert drill.producing is not None
    await drill.producing  # the whole input is in the log: the backlog is what is mid-stream
    await drill.reached(0.4)
    pid = await asyncio.to_thread(drill.local.send_signal, "kafka", signal.SIGKILL)
    assert pid is not None, "the chaos stack must own its broker (pid file in its state dir)"
    drill.mark_fault()
    if await drill.applied() >= len(drill.events):
        drill.figures.notes.append("the broker kill landed after the stream was folded")
    await asyncio.to_thread(drill.local.start_kafka)


async def zombie(drill: Drill) -> None:
    """SIGSTOP a worker past its session timeout while a second one takes over, then SIGCONT
    it: it wakes holding partitions, a fetched batch and flag producers it no longer owns."""
    (first,) = drill.alive()
    await drill.reached(0.3)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGSTOP)
    drill.mark_fault()
    stopped_at = await drill.applied()
    try:
        second = await drill.worker().started()  # ready once the group dropped the first
        total = len(drill.events)

        async def took_over() -> bool:
            # Counted from the stop, not from the second's start: 10,000-record fetches can fold
            # the rest before /ready answers. (A batch in flight at the stop counts too, but it
            # is at most a fetch, and the whole input once the producer is done.)
            applied = await drill.applied()
            return applied >= total or applied >= stopped_at + 0.3 * total

        await eventually(took_over, WAIT_S, "the second worker folding", second.check_alive)
    finally:
        first.proc.send_signal(signal.SIGCONT)


async def rebalance_in_redis_outage(drill: Drill) -> None:
    """Two workers; Redis stops; one of them dies and the group starts handing its partitions
    to the other while no fence can be read (the survivor's revocation waits for its apply,
    which waits for Redis); Redis starts again. A worker started while Redis is down waits for
    it before it joins, so the rebalance comes from a member leaving."""
    second = await drill.worker().started()
    await drill.reached(0.3)
    assert await asyncio.to_thread(drill.local.stop_redis), "the chaos stack must own Redis"
    drill.mark_fault()
    try:
        drill.kill(second)
        await eventually(
            lambda: _rebalancing_without(drill.settings, 2),
            60,
            "the group rebalancing without the killed worker",
            drill.check_alive,
        )
    finally:
        await asyncio.to_thread(drill.local.start_redis)


@dataclass(frozen=True)
class Scenario:
    """A fault and the pace of the input it strikes."""

    fault: Callable[[Drill], Awaitable[None]]
    #: Events a second while the fault runs; None: the whole input at once, a backlog to fold.
    rate: float | None = 4000


#: name -> scenario, in the order make chaos runs them.
SCENARIOS: dict[str, Scenario] = {
    "worker-sigkill-x3": Scenario(worker_sigkills),
    "redis-sigkill": Scenario(redis_sigkill),
    "redis-sigkill-older-aof": Scenario(redis_rollback),
    # A backlog, so that no producer of ours has to outlive the broker: the input stays exactly
    # what the oracle was computed from.
    "broker-sigkill": Scenario(broker_sigkill, rate=None),
    "zombie-worker": Scenario(zombie),
    "rebalance-redis-down": Scenario(rebalance_in_redis_outage),
}


async def run_scenario(
    base: Settings, stack: LocalStack, log_dir: Path, name: str, **workload: Any
) -> Figures:
    """Run one named drill from start to judgement, cleaning up after it."""
    scenario = SCENARIOS[name]
    drill = Drill(base, stack, log_dir, name, rate=scenario.rate, **workload)
    try:
        return await drill.run(scenario.fault)
    finally:
        await drill.close()


# --- reading the flag topic ------------------------------------------------------------


class FlagTail:
    """Counts committed records of the flag topic; tells whether a transaction is open."""

    def __init__(self, settings: Settings) -> None:
        topic = TopicNames.from_settings(settings).flagged
        self.tps = [TopicPartition(topic, p) for p in range(settings.activity_partitions)]
        self.committed = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed"
        )
        self.raw = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)

    async def __aenter__(self) -> FlagTail:
        for consumer in (self.committed, self.raw):
            await consumer.start()
        await asyncio.sleep(0)  # aiokafka's stop() fails if its no-group task never ran
        return self

    async def __aexit__(self, *exc: object) -> None:
        for consumer in (self.committed, self.raw):
            await consumer.stop()

    async def settled(self) -> bool:
        """No transaction open: the last stable offset is the log end everywhere."""
        lso = await self.committed.end_offsets(self.tps)
        end = await self.raw.end_offsets(self.tps)
        return lso == end

    async def count(self) -> int:
        """An upper bound of the committed records (offsets include commit markers)."""
        return sum((await self.committed.end_offsets(self.tps)).values())


async def committed_flags(settings: Settings) -> list[Any]:
    """Every committed record of the flag topic, up to the last stable offset, by partition."""
    topic = TopicNames.from_settings(settings).flagged
    tps = [TopicPartition(topic, p) for p in range(settings.activity_partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[Any] = []
    try:
        # Else the reset assign() starts may land after the seek: a partition read from its
        # end, its records counted as missing flags.
        await assign_settled(consumer, tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 60
        pending = [tp for tp in tps if ends[tp]]
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                out.extend(r for r in records if r.offset < ends[tp])
            pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    finally:
        await consumer.stop()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def seq_errors(records: list[Any]) -> int:
    """Sequence numbers missing, repeated or out of order, over every partition."""
    per_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        per_partition[record.partition].append(int(dict(record.headers)[FLAG_SEQ]))
    errors = 0
    for seqs in per_partition.values():
        expected = list(range(1, len(seqs) + 1))
        errors += sum(1 for got, want in zip(seqs, expected, strict=True) if got != want)
    return errors


# --- helpers ---------------------------------------------------------------------------


def _note(exc: BaseException) -> str:
    """An assertion as one line: what timed out or failed, and the last line of its detail
    (a worker's exit names its error there)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0][:300] + (f" ... {lines[-1][:300]}" if len(lines) > 1 else "")


def _shuffled_within_hours(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Out of order within the allowed lateness (1 h), as real sources deliver."""
    rng = random.Random(4)
    by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_hour[(ms(event["time"]) or 0) // 3_600_000].append(event)
    out: list[dict[str, Any]] = []
    for hour in sorted(by_hour):
        rng.shuffle(by_hour[hour])
        out += by_hour[hour]
    return out


def _kill_redis(drill: Drill) -> None:
    pid = drill.local.send_signal("redis", signal.SIGKILL)
    assert pid is not None, "the chaos stack must own redis-server (pid file in its state dir)"


def _aof_dir(stack: LocalStack) -> Path:
    _, port = stack.settings.redis_host_port
    return stack.redis_home / f"data-{port}" / "appendonlydir"


async def _directory_folded(workers: list[WorkerProcess], count: int) -> bool:
    """Directory records folded, summed over the workers (each folds its partitions')."""
    folded = 0.0
    for worker in workers:
        _, body = await asyncio.to_thread(worker.get, "/metrics")
        folded += sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("esn_directory_records_total{")
        )
    return count <= folded


async def drop_topics(settings: Settings, prefixes: tuple[str, ...]) -> None:
    """Delete the topics whose names start with one of ``prefixes``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def _sweep_age(worker: WorkerProcess) -> float:
    """The worker's esn_sweep_age_seconds (infinite when it does not answer)."""
    _, body = worker.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith("esn_sweep_age_seconds "):
            return float(line.rsplit(" ", 1)[1])
    return float("inf")


async def _group_state(settings: Settings) -> tuple[str, int]:
    """The activity consumer group's state and member count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for response in await admin.describe_consumer_groups([f"{settings.app_id}-activity"]):
            for _, _, state, _, _, members, *_ in response.groups:
                return str(state), len(members)
        return "", 0
    finally:
        await admin.close()


async def _rebalancing_without(settings: Settings, members: int) -> bool:
    """True once the group is no longer stable with ``members``: a member left, a rebalance
    began (it completes once every member rejoined, which waits for Redis here)."""
    state, count = await _group_state(settings)
    return state != "Stable" or count < members


__all__ = ["SCENARIOS", "Drill", "Figures", "Transition", "run_scenario"]
