"""The latency bench's producer, in a process of its own: live events at a fixed rate.

Each event is stamped with the wall clock as it is sent, so the worker's event lag histogram
reads event-to-Redis latency. Own process: its sends must not share the bench's event loop
(or the worker's) and show up as latency that is not the worker's.

    python -m bench.live_producer --rate 5000 --seconds 60 --users 20000   (ESN_* settings)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from stream import jsonutil
from stream.generator import live_events
from stream.produce import new_producer
from stream.settings import Settings
from stream.topics import TopicNames

#: Events sent between two pacing sleeps: small steps, since bursts would show up as latency.
STEP = 10


async def send_live(settings: Settings, rate: float, seconds: float, users: int) -> int:
    """Send ``rate * seconds`` events at ``rate``; the number sent."""
    topic = TopicNames.from_settings(settings).activity
    stream = live_events(users)
    count = int(rate * seconds)
    producer = new_producer(settings)
    await producer.start()
    try:
        started = time.monotonic()
        for sent in range(1, count + 1):
            event = next(stream)
            event["time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
            await producer.send(topic, jsonutil.dumps(event), key=event["actor"].encode())
            if sent % STEP == 0:
                ahead = sent / rate - (time.monotonic() - started)
                await asyncio.sleep(max(0.0, ahead))
        await producer.flush()
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    print(f"sent {count} events in {elapsed:.2f}s ({count / elapsed:,.0f}/s)", flush=True)
    return count


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(send_live(Settings(), args.rate, args.seconds, args.users))
