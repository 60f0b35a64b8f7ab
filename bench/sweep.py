"""Sweep benchmark: a million-user partition set where nobody crosses, then one where 1% do.

The sweep's cost must grow with the users that change state, not with the number of users: the
figure of interest is the first line (nobody crosses), against the second (10,000 cross).

    python -m bench.sweep [--users 1000000] [--crossing 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from stream.flags.machine import UserInactivity, definitions_from
from stream.flags.release import InactivitySweeper
from stream.flags.state_codec import encode_state
from stream.settings import Settings
from stream.stack import LocalStack
from stream.store import RedisStore

DAY_MS = 86_400_000


async def populate(store: RedisStore, partitions: int, users: int, now_ms: int) -> None:
    """Active users whose next crossing is 1 to 29 days ahead, spread over the partitions."""
    batch = 50_000
    for start in range(0, users, batch):
        states: dict[int, dict[str, str]] = {p: {} for p in range(partitions)}
        due: dict[int, dict[str, int]] = {p: {} for p in range(partitions)}
        for index in range(start, min(users, start + batch)):
            user = f"u{index:07d}"
            last = now_ms - (index % 29 + 1) * DAY_MS
            state = UserInactivity(now_ms - 400 * DAY_MS, now_ms - 400 * DAY_MS, last_ms=last)
            states[index % partitions][user] = encode_state(state)
            due[index % partitions][user] = last + 30 * DAY_MS
        async with store.client.pipeline(transaction=False) as pipe:
            for partition in range(partitions):
                keys = store.keys.partition(partition)
                pipe.hset(keys.inactivity_states, mapping=states[partition])
                pipe.zadd(keys.due, due[partition])  # type: ignore[arg-type]
            await pipe.execute()


async def timed_sweep(
    sweeper: InactivitySweeper, partitions: int, now_ms: int
) -> tuple[float, int]:
    started = time.perf_counter()
    flagged = 0
    for partition in range(partitions):
        result = await sweeper.release(partition, now_ms)
        flagged += len(result.transitions)
    return time.perf_counter() - started, flagged


async def main(args: argparse.Namespace) -> None:
    base = Settings()
    await asyncio.to_thread(LocalStack(base).up)
    settings = base.model_copy(update={"redis_prefix": f"benchsweep{uuid.uuid4().hex[:6]}:"})
    store = RedisStore.from_settings(settings)
    partitions = settings.activity_partitions
    sweeper = InactivitySweeper(store, definitions_from(settings))
    now_ms = int(time.time() * 1000)
    try:
        started = time.perf_counter()
        await populate(store, partitions, args.users, now_ms)
        print(f"# ESN Pulse sweep benchmark: {args.users:,} users over {partitions} partitions")
        print(f"populated in {time.perf_counter() - started:.1f}s")
        quiet, flagged = await timed_sweep(sweeper, partitions, now_ms)
        assert flagged == 0
        print(f"sweep, nobody crossing          {quiet * 1000:10.2f} ms")
        # Move the chosen users' crossing into the past: they cross at the next sweep.
        async with store.client.pipeline(transaction=False) as pipe:
            for index in range(0, args.users, args.users // args.crossing):
                due_key = store.keys.partition(index % partitions).due
                pipe.zadd(due_key, {f"u{index:07d}": now_ms - 60_000})
            await pipe.execute()
        busy, flagged = await timed_sweep(sweeper, partitions, now_ms)
        print(
            f"sweep, {flagged:,} crossing        {busy * 1000:10.2f} ms"
            f"  ({busy / max(flagged, 1) * 1e6:.0f} µs per crossing user)"
        )
        print(f"ratio busy / quiet              {busy / quiet:10.0f}x")
    finally:
        async for key in store.client.scan_iter(match=settings.redis_prefix + "*", count=5000):
            await store.client.delete(key)
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--crossing", type=int, default=10_000)
    asyncio.run(main(parser.parse_args()))
