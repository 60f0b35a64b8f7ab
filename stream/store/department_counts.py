"""The department counts: enabled profiles per department and their inactivity figures, kept by
the scripts that change profiles and states, so a read costs O(partitions), not O(users)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Final

from stream.store.redis_store import RedisStore, run_scripts, text

_BUILD_SCRIPT = resources.files("stream.store").joinpath("department_counts.lua").read_text()
_READ_SCRIPT = resources.files("stream.store").joinpath("department_counts_read.lua").read_text()
#: The field that says a partition's counts were counted from scratch once (see the script).
BUILT: Final = "built"
FIGURES: Final = ("enabled", "active", "inactive", "never_active", "at_risk")


class DepartmentCounts:
    """Reads (and builds, once per partition) the per-partition department counts."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys
        self._build = store.client.register_script(_BUILD_SCRIPT)
        self._read = store.client.register_script(_READ_SCRIPT)

    async def read(self) -> dict[str, dict[str, int]]:
        """department ('' when a profile names none) -> figure -> users, over every partition.

        A partition whose counts were never built (state written before they existed) is
        counted first, in one atomic script call: the upgrade path, run by the first read.
        """
        partitions = await self._store.partitions()
        replies = await self._hashes(partitions)
        unbuilt = [p for p, raw in zip(partitions, replies, strict=True) if BUILT not in raw]
        if unbuilt:
            await self.build(unbuilt)
            rebuilt = dict(zip(unbuilt, await self._hashes(unbuilt), strict=True))
            replies = [rebuilt.get(p, raw) for p, raw in zip(partitions, replies, strict=True)]
        out: dict[str, dict[str, int]] = {}
        for raw in replies:
            for field, value in raw.items():
                department, _, figure = field.rpartition("\t")
                if figure in FIGURES:
                    row = out.setdefault(department, dict.fromkeys(FIGURES, 0))
                    row[figure] += int(value)
        return {d: row for d, row in out.items() if any(row.values())}

    async def build(self, partitions: Sequence[int]) -> None:
        """Count these partitions' figures from scratch (each in one atomic call)."""
        calls: list[tuple[list[str], list[str]]] = []
        for p in partitions:
            k = self._keys.partition(p)
            buckets = [k.profile_bucket(b) for b in range(self._store.user_buckets)]
            calls.append(([k.department_counts, k.inactivity_states, *buckets], []))
        for reply in await run_scripts(self._client, self._build, calls):
            if isinstance(reply, Exception):
                raise reply

    async def _hashes(self, partitions: Sequence[int]) -> list[dict[str, str]]:
        calls: list[tuple[list[str], list[str]]] = [
            ([self._keys.partition(p).department_counts], []) for p in partitions
        ]
        out = []
        for reply in await run_scripts(self._client, self._read, calls):
            if isinstance(reply, Exception):
                raise reply
            # "field\tvalue" lines; a field is "<department>\t<figure>" or "built".
            lines = text(reply).split("\n") if reply else []
            out.append(dict(line.rsplit("\t", 1) for line in lines))
        return out
