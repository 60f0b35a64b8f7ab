"""The directory agent on the real stack: latest update wins in any order, bad ones dead-letter."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest

from stream import jsonutil
from stream.generator import directory_records
from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from stream.topics import DLQ_REASON, TopicNames
from tests.support import eventually, produce_raw, read_topic

pytestmark = pytest.mark.integration


def keyed_by_user(docs: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    return [(d["user_id"].encode(), jsonutil.dumps(d)) for d in docs]


def folded_count(worker: Any) -> float:
    _, body = worker.get("/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith(("esn_directory_records_total{", "esn_directory_invalid_total{"))
    )


class TestDirectoryAgent:
    async def test_latest_update_wins_whatever_the_arrival_order(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Shuffled, duplicated profile versions and membership changes end in the latest state."""
        docs = list(directory_records(300, date(2026, 3, 2), 60, seed=5))
        rng = random.Random(9)
        extra: list[dict[str, Any]] = []
        expected_status: dict[str, str] = {}
        for doc in docs:
            if doc["kind"] == "profile":
                expected_status[doc["user_id"]] = doc["status"]  # later versions come later
        # Three owners leave and one rejoins, each step with its own version.
        owners = [d for d in docs if d["kind"] == "membership" and d["role"] == "owner"][:3]
        for step, owner in enumerate(owners):
            extra.append({**owner, "op": "remove", "updated": f"2026-04-0{step + 1}T10:00:00Z"})
        extra.append({**owners[0], "op": "add", "updated": "2026-04-09T10:00:00Z"})
        records = docs + extra + rng.sample(docs, 100)  # redeliveries
        rng.shuffle(records)
        wrong_key = {**docs[3], "user_id": "u000003"}
        bad = [(b"u000001", b"{oops"), (b"u000002", jsonutil.dumps(wrong_key))]

        worker = await worker_factory().started()
        await produce_raw(
            settings,
            keyed_by_user(records) + bad,
            topic=TopicNames.from_settings(settings).directory,
        )

        async def all_folded() -> bool:
            return folded_count(worker) >= len(records) + len(bad)

        await eventually(all_folded, 60, "directory folded", worker.check_alive)

        directory = DirectoryStore(store)
        for user_id, status in expected_status.items():
            profile = await directory.profile(user_id)
            assert profile is not None and status == profile.status, user_id
        first, second, third = (o["community"] for o in owners)
        assert owners[0]["user_id"] in await directory.community_members(first, "owner")
        assert owners[1]["user_id"] not in await directory.community_members(second, "owner")
        assert owners[2]["user_id"] not in await directory.community_members(third, "owner")
        roles = await directory.roles(owners[0]["user_id"])
        assert first in roles["owner"]

        dead = await read_topic(settings, TopicNames.from_settings(settings).directory_dlq, 2)
        assert ["key_mismatch", "not_json"] == sorted(
            dict(r.headers)[DLQ_REASON].decode() for r in dead
        )
