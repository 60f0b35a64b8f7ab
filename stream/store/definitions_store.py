"""Redis reads and writes of what the state was built under: the deployment record, and per
partition the inactivity definitions its states are under and the instant they were released to.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from stream.flags.definitions import FORMAT, DeploymentRecord
from stream.store.redis_store import RedisStore, run_scripts, text

_DEPLOYMENT_SCRIPT = resources.files("stream.store").joinpath("deployment.lua").read_text()


@dataclass(frozen=True)
class PartitionDefinitions:
    """The stored marker of one partition (None: nothing stored yet)."""

    definitions: str | None
    released_ms: int | None


class DefinitionsStore:
    """The deployment record and the per-partition definitions markers."""

    def __init__(self, store: RedisStore) -> None:
        self.client = store.client
        self.keys = store.keys
        self._register = store.client.register_script(_DEPLOYMENT_SCRIPT)

    async def register(self, configured: DeploymentRecord) -> DeploymentRecord:
        """Write ``configured`` where nothing is stored yet; return what is stored (atomic)."""
        args = [
            FORMAT,
            configured.layout,
            configured.user_buckets,
            configured.activity_types,
            configured.definitions,
        ]
        (reply,) = await run_scripts(self.client, self._register, [([self.keys.deployment], args)])
        if isinstance(reply, Exception):
            raise reply
        buckets, types, definitions, layout = (text(v) for v in reply)
        return DeploymentRecord(int(buckets), types, definitions, int(layout))

    async def stored(self) -> DeploymentRecord | None:
        """The deployment record, or None when no worker registered one yet."""
        raw = await self.client.hmget(
            self.keys.deployment, ["user_buckets", "activity_types", "definitions", "layout"]
        )
        values = [text(v) for v in raw[:3] if v is not None]
        if len(values) != 3:
            return None
        buckets, types, definitions = values
        layout = int(text(raw[3])) if raw[3] is not None else 1
        return DeploymentRecord(int(buckets), types, definitions, layout)

    async def partition(self, partition: int) -> PartitionDefinitions:
        """What a partition's inactivity states are under (unreadable counts as nothing)."""
        key = self.keys.partition(partition).inactivity_definitions
        raw = await self.client.hget(key, str(partition))
        if raw is None:
            return PartitionDefinitions(None, None)
        definitions, _, released = text(raw).partition("\t")
        return PartitionDefinitions(
            definitions or None, int(released) if released.lstrip("-").isdigit() else None
        )

    async def partition_states(self, partition: int) -> tuple[dict[str, str], dict[str, int]]:
        """Every encoded inactivity state and due crossing of a partition (a migration's input)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.partition(partition).inactivity_states)
            pipe.zrange(self.keys.partition(partition).due, 0, -1, withscores=True)
            raw_states, raw_due = await pipe.execute()
        states = {text(user): text(raw) for user, raw in raw_states.items()}
        due: dict[str, int] = {text(user): int(score) for user, score in raw_due}
        return states, due
