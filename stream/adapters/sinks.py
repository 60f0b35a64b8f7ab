"""Where an import sends its records: JSON Lines files, or the Kafka topics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO, Any

from stream.adapters.base import Output
from stream.produce import new_producer
from stream.settings import Settings
from stream.topics import TopicNames


class FileSink:
    """Activity to one JSON Lines file; directory records to a sibling ``*.directory.jsonl``."""

    def __init__(self, out: Path) -> None:
        self.paths = {"activity": out, "directory": out.with_suffix(".directory.jsonl")}
        self.handles: dict[str, IO[bytes]] = {}

    async def send(self, output: Output, payload: bytes) -> None:
        handle = self.handles.get(output.kind)
        if handle is None:
            handle = self.handles[output.kind] = self.paths[output.kind].open("ab")
        handle.write(payload + b"\n")

    async def flush(self) -> None:
        for handle in self.handles.values():
            handle.flush()

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


class KafkaSink:
    """Activity keyed by actor to esn.activity.v1, directory keyed by user to esn.directory.v1."""

    def __init__(self, settings: Settings) -> None:
        self.topics = TopicNames.from_settings(settings)
        self.settings = settings
        self.producer: Any = None
        self.pending: list[Any] = []

    async def start(self) -> None:
        self.producer = new_producer(self.settings)
        await self.producer.start()

    async def send(self, output: Output, payload: bytes) -> None:
        if output.kind == "activity":
            topic, key = self.topics.activity, output.record["actor"]
        else:
            topic, key = self.topics.directory, output.record["user_id"]
        self.pending.append(await self.producer.send(topic, payload, key=key.encode()))
        if len(self.pending) >= 5000:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending)
            self.pending = []

    async def stop(self) -> None:
        await self.flush()
        await self.producer.stop()
