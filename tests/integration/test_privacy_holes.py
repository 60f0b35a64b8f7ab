"""Under ESN_PSEUDONYMIZE_KEY no raw id reaches Redis or a DLQ header, and `user` finds people.

A followed profile, an actor whose id looks like a pseudonym and a record keyed by someone else go
through the real worker; every key and value under the prefix is then searched for the raw ids.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from stream import jsonutil
from stream.analytics.initiatives import add_initiative
from stream.directory import decode_directory
from stream.privacy import pseudonymizer
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.directory_store import DirectoryStore
from stream.topics import DLQ_DETAIL, DLQ_REASON, TopicNames
from tests.api_support import ApiProcess
from tests.support import REPO, produce_raw, read_topic, settings_env, wait_fully_applied

pytestmark = pytest.mark.integration

KEY = "privacy-key-5d1"
ALICE, BOB, MALLORY = "alice.raw@corp.example", "bob.raw@corp.example", "mallory.raw@corp"
#: A source's own id that happens to have the shape of a pseudonym.
LOOKALIKE = "p_" + "0123456789abcdef" * 2


def esn(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def dump_redis(store: RedisStore, prefix: str) -> str:
    """Every key and value under the prefix, as one text."""
    client = store.client
    parts: list[str] = []
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        kind = (await client.type(key)).decode()
        parts.append(key.decode("latin-1"))
        if kind == "string":
            parts.append((await client.get(key) or b"").decode("latin-1"))
        elif kind == "hash":
            parts += [f"{k!r}{v!r}" for k, v in (await client.hgetall(key)).items()]
        elif kind == "set":
            parts += [repr(m) for m in await client.smembers(key)]
        elif kind == "zset":
            parts += [repr(m) for m in await client.zrange(key, 0, -1)]
        elif kind == "list":
            parts += [repr(m) for m in await client.lrange(key, 0, -1)]
    return "\n".join(parts)


def event(n: int, actor: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "type": kind, "actor": actor,
            "time": f"2026-05-0{n}T10:00:00Z", **extra}  # fmt: skip


class TestNoRawIdPastTheKey:
    async def test_profiles_lookalikes_and_dlq_details_are_pseudonymised(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Followed profile, lookalike actor, DLQ detail: pseudonyms only; `user` finds them."""
        keyed = settings.model_copy(
            update={"pseudonymize_key": SecretStr(KEY), "dlq_detail_ids": "hash"}
        )
        p = pseudonymizer(KEY)
        worker = await worker_factory(keyed).started()
        follow = event(1, ALICE, "follow", object={"type": "profile", "id": BOB}, target_user=BOB)
        records = [
            (ALICE.encode(), jsonutil.dumps(follow)),
            (LOOKALIKE.encode(), jsonutil.dumps(event(2, LOOKALIKE, "login"))),
            (BOB.encode(), jsonutil.dumps(event(3, BOB, "post"))),
            # Keyed by someone else: dead-lettered, the detail quotes both ids.
            (MALLORY.encode(), jsonutil.dumps(event(4, ALICE, "login"))),
        ]
        await produce_raw(settings, records)
        await wait_fully_applied(store, settings, 60, worker.check_alive)

        dump = await dump_redis(store, settings.redis_prefix)
        for raw in (ALICE, BOB, MALLORY, LOOKALIKE):
            assert raw not in dump, f"{raw} stored in Redis"
        assert "profile:" + p(BOB) in dump, "the followed profile is counted under its pseudonym"
        assert p(LOOKALIKE) in dump

        (dead,) = await read_topic(settings, TopicNames.from_settings(settings).activity_dlq, 1)
        headers = {name: value.decode() for name, value in dead.headers}
        assert "key_mismatch" == headers[DLQ_REASON]
        assert f"record key {p(MALLORY)!r} is not the actor {p(ALICE)!r}" == headers[DLQ_DETAIL]

        lookups = ((ALICE, p(ALICE)), (p(ALICE), p(ALICE)), (LOOKALIKE, p(LOOKALIKE)))
        for typed, stored in lookups:
            shown = esn(keyed, "user", typed, "--json")
            assert 0 == shown.returncode, shown.stderr
            doc = jsonutil.loads(shown.stdout)
            assert (stored, 1) == (doc["user_id"], doc["events"]), typed
        # No token configured: esn-pulse api answers on loopback without authentication.
        api = ApiProcess(keyed, REPO / ".esn-test" / "logs").start()
        try:
            for typed, stored in lookups:
                status, doc = api.get_json(f"/api/v1/users/{quote(typed, safe='')}")
                assert (200, stored) == (status, doc and doc["user_id"]), typed
        finally:
            api.stop()


class TestInitiativeUsers:
    async def test_copied_pseudonyms_are_kept_and_every_other_id_hashed(
        self, settings: Settings, store: RedisStore
    ) -> None:
        """initiative add: a known pseudonym stays, a raw id and an unknown lookalike are hashed."""
        keyed = settings.model_copy(update={"pseudonymize_key": SecretStr(KEY)})
        p = pseudonymizer(KEY)
        at = "2026-05-01T00:00:00Z"
        profile = {"kind": "profile", "user_id": p(BOB), "status": "enabled",
                   "created": at, "updated": at}  # fmt: skip
        record = decode_directory(jsonutil.dumps(profile), p(BOB).encode())
        await DirectoryStore(store).apply([(0, record)])
        await add_initiative(store, keyed, "hostile-ids", 0, [p(BOB), ALICE, LOOKALIKE])
        members = await store.client.smembers(store.keys.initiative_users("hostile-ids"))
        assert {p(BOB), p(ALICE), p(LOOKALIKE)} == {m.decode() for m in members}
