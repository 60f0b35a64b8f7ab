"""Reference for the benchmark: the straightforward Faust agent with ``take_events()``.

Same decode, fold and fenced Redis writes as the worker, but every record travels through Faust's
per-event stream machinery. Run as ``python -m bench.naive_faust`` with the ESN_* settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import faust

from stream.batch import fold_fetch
from stream.clients import faust_broker_options
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import TopicNames

settings = Settings()
app = faust.App(
    f"{settings.app_id}-naive",
    **faust_broker_options(settings),
    web_enabled=False,
    store="memory://",
    topic_allow_declare=False,
    consumer_auto_offset_reset="earliest",
    broker_max_poll_records=settings.batch_max_records,
    stream_buffer_maxsize=8192,
    datadir=str(settings.state_dir.resolve() / "faust-naive"),
)
activity = app.topic(
    TopicNames.from_settings(settings).activity, key_serializer="raw", value_serializer="raw"
)


@app.agent(activity)
async def fold(stream: AsyncIterator[Any]) -> None:
    store = RedisStore.from_settings(settings)
    async for events in stream.take_events(settings.batch_max_records, within=0.05):  # type: ignore[attr-defined]
        by_partition: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for event in events:
            message = event.message
            by_partition[message.topic, message.partition].append(message)
        await store.apply(fold_fetch(by_partition).deltas)


if __name__ == "__main__":
    (settings.state_dir / "faust-naive").mkdir(parents=True, exist_ok=True)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
