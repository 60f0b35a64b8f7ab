"""fold.lua's Redis cost on generated events: CPU per event by section, and memory by key kind.

Folds the bench's generated records per partition (CRC-32 of the actor), applies every batch in
order with an instrumented copy of fold.lua (each ``-- @section <name>`` marker becomes a
``redis.call('TIME')``) and prints the Redis process's CPU per event (from /proc: run it on the
machine Redis runs on), each section's share of the script's time, then MEMORY USAGE by key kind.

    ESN_REDIS_URL=redis://127.0.0.1:46479/0 python -m bench.fold_cost --events 500000 --release

``--directory`` folds the organisation's directory first (profiles and memberships), so that the
"community health" section has role holders to move (without it that section finds none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import resources

from bench.memory_figures import key_kind
from bench.population import release_all
from bench.population_load import LoadedRecord
from bench.workload import SEED, START_DAY, generated_records
from stream import jsonutil
from stream.batch import fold_partition
from stream.directory_fold import DirectoryFolder
from stream.fold import PartitionDelta
from stream.generator import directory_records
from stream.settings import Settings
from stream.store import RedisStore

_TIMER = (
    "local __T = {}\n"
    "local function __m(name) local t = redis.call('TIME'); __T[#__T + 1] = name; "
    "__T[#__T + 1] = string.format('%d', t[1] * 1000000 + t[2]) end\n"
    "__m('parse')\n"
)


@dataclass(frozen=True)
class _Record:
    """The fields of a Kafka record fold_partition reads."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


def instrumented_fold() -> str:
    """fold.lua with a timer at each section marker, returning the times instead of its status."""
    source = resources.files("stream.store").joinpath("fold.lua").read_text()
    body = re.sub(r"^-- @section (\w+)$", r"__m('\1')", source, flags=re.M)
    return _TIMER + body.replace("return {1, applied}\n", "__m('done')\nreturn __T\n")


def redis_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a local process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches_of(args: argparse.Namespace) -> tuple[list[PartitionDelta], int]:
    """The generated records folded into batches of ``args.batch`` per partition; their users."""
    per_partition: dict[int, list[_Record]] = defaultdict(list)
    records = generated_records(args.events, args.users, args.days)
    for key, value in records:
        p = zlib.crc32(key) % args.partitions
        per_partition[p].append(_Record("t", p, len(per_partition[p]), key, value))
    out = []
    for p, held in per_partition.items():
        for start in range(0, len(held), args.batch):
            out.append(fold_partition("t", p, held[start : start + args.batch])[0])
    return out, len({key for key, _ in records})


async def fold_directory(settings: Settings, store: RedisStore, args: argparse.Namespace) -> None:
    """The generated organisation's directory, on the partitions the events are placed on."""
    folder = DirectoryFolder(settings, store)
    offsets: Counter[int] = Counter()
    batch: list[LoadedRecord] = []
    for record in directory_records(args.users, START_DAY, args.days, seed=SEED):
        key = record["user_id"].encode()
        p = zlib.crc32(key) % args.partitions
        batch.append(LoadedRecord("d", p, offsets[p], key, jsonutil.dumps(record)))
        offsets[p] += 1
        if len(batch) >= 5000:
            await folder.fold(batch, None)
            batch.clear()
    if batch:
        await folder.fold(batch, None)


async def main(args: argparse.Namespace) -> None:
    settings = Settings().model_copy(
        update={"redis_prefix": f"foldcost{os.getpid()}:", "activity_partitions": args.partitions}
    )
    store = RedisStore.from_settings(settings)
    script = store.client.register_script(instrumented_fold())
    pid = int((await store.client.info("server"))["process_id"])
    batches, users = batches_of(args)
    if args.directory:
        await fold_directory(settings, store, args)
    events = sum(delta.events for delta in batches)
    by_section: Counter[str] = Counter()
    cpu_before = redis_cpu_seconds(pid)
    for delta in batches:
        keys, call_args = store._script_call(delta)
        marks = [
            v.decode() if isinstance(v, bytes) else v for v in await script(keys, [*call_args, ""])
        ]
        names, times = marks[0::2], [int(t) for t in marks[1::2]]
        for index, name in enumerate(names[:-1]):
            by_section[name] += times[index + 1] - times[index]
    cpu = redis_cpu_seconds(pid) - cpu_before
    print(f"redis cpu {cpu / events * 1e6:.2f} us/event ({events} events, {len(batches)} batches)")
    timed = sum(by_section.values())
    for name, spent in by_section.most_common():
        print(
            f"  {name:12} {spent / timed * 100:5.1f}%  {cpu * spent / timed / events * 1e6:6.2f} us"
        )
    if args.release:
        released = await release_all(settings, store, int(time.time() * 1000))
        print(f"released {released} buffered changes")
    sizes: Counter[str] = Counter()
    async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=5000):
        kind = key_kind(key.decode(), settings.redis_prefix)
        sizes[kind] += await store.client.memory_usage(key, samples=0) or 0
        await store.client.delete(key)
    steady = sum(size for kind, size in sizes.items() if kind not in ("buf", "outbox"))
    print(
        f"memory, all but the reorder buffer and the outbox: {steady / users:.0f} B/user ({users})"
    )
    for kind, size in sizes.most_common():
        print(f"  {kind:10} {size / users:8.1f} B/user")
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--release", action="store_true", help="release the buffer, then measure")
    parser.add_argument("--directory", action="store_true", help="fold the directory first")
    asyncio.run(main(parser.parse_args()))
