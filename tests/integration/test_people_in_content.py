"""Content items that are people (a followed profile, a person object, a Connections person URN,
an object that is the event's target user) through the real worker and `esn-pulse api`: stored
as profiles (pseudonymised under the key), and named in /content/top to people-scope tokens only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from stream import jsonutil
from stream.privacy import pseudonymizer
from stream.settings import Settings
from stream.store import RedisStore
from tests.api_support import ApiProcess, make_token
from tests.integration.test_privacy_holes import dump_redis
from tests.support import REPO, produce_raw, wait_fully_applied

pytestmark = pytest.mark.integration

KEY = "people-in-content-key"
ALICE = "alice.actor@corp.example"
#: The people acted on, each named a different way by its event.
BOB, CAROL, DAVE, ERIN = (
    "bob.followed@corp.example",
    "carol.person@corp.example",
    "dave-urn-0004",
    "erin.target@corp.example",
)
URN = "urn:lsid:lconn.ibm.com:profiles.person:"
TOP = "/api/v1/content/top?period=day&date=2026-05-01&limit=100"


def events() -> list[tuple[bytes, bytes]]:
    """One event per way of naming a person, and likes of a post that must stay listed."""
    objects: list[tuple[str, dict[str, str], str | None]] = [
        ("follow", {"type": "profile", "id": BOB}, BOB),
        ("view", {"type": "Person", "id": CAROL}, None),
        ("view", {"type": "card", "id": URN + DAVE}, None),
        ("mention", {"type": "card", "id": ERIN}, ERIN),
        ("like", {"type": "post", "id": "post-42"}, None),
        ("like", {"type": "post", "id": "post-42"}, None),
    ]
    out = []
    for n, (kind, obj, target) in enumerate(objects):
        event: dict[str, Any] = {
            "id": f"people-{n}", "type": kind, "actor": ALICE,
            "time": f"2026-05-01T10:00:{n:02d}Z", "object": obj,
        }  # fmt: skip
        if target is not None:
            event["target_user"] = target
        out.append((ALICE.encode(), jsonutil.dumps(event)))
    return out


def tokens_for(settings: Settings, tmp_path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Secrets of an aggregate-only and a people token, and the api's settings overrides."""
    aggregate, people = (
        make_token("dashboards", "aggregate"),
        make_token("hr", "people", "aggregate"),
    )
    overrides = {
        "api_tokens": SecretStr(f"{aggregate.entry}\n{people.entry}"),
        "api_access_log": str(tmp_path / "access.jsonl"),
    }
    return {"aggregate": aggregate.secret, "people": people.secret}, overrides


def listed(api: ApiProcess, secret: str) -> tuple[str, dict[str, Any]]:
    status, body = api.get(TOP, secret)
    assert 200 == status, body
    return body.decode(), {
        i["item"] if i["id"] is None else i["id"]: i for i in json.loads(body)["items"]
    }


def access_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_access_lines(path: Path, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The log's lines once it has ``count``: a line is written just after its answer is sent."""
    deadline = time.monotonic() + timeout
    while len(lines := access_lines(path)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return lines


class TestPeopleAmongTheTopItems:
    async def test_without_a_key_an_aggregate_token_sees_no_one(
        self, settings: Settings, store: RedisStore, worker_factory: Any, tmp_path: Path
    ) -> None:
        """Raw ids (no ESN_PSEUDONYMIZE_KEY): every person object is a profile; an aggregate
        token gets their counts with id null, a people token their ids, and is logged."""
        worker = await worker_factory().started()
        await produce_raw(settings, events())
        await wait_fully_applied(store, settings, 60, worker.check_alive)
        secrets, overrides = tokens_for(settings, tmp_path)
        api = ApiProcess(settings, REPO / ".esn-test" / "logs", **overrides).start()
        try:
            body, items = listed(api, secrets["aggregate"])
            for person in (BOB, CAROL, DAVE, ERIN, URN):
                assert person not in body, f"{person} named to an aggregate token"
            assert 2 == items["post-42"]["interactions"], "other items keep their ids"
            withheld = [i for i in json.loads(body)["items"] if i["id"] is None]
            assert [("profile", "profile", 1)] * 4 == [
                (i["item"], i["object_type"], i["interactions"]) for i in withheld
            ]
            assert [] == access_lines(tmp_path / "access.jsonl"), "aggregate answers are not logged"

            body, items = listed(api, secrets["people"])
            for person in (BOB, CAROL, DAVE, ERIN):
                assert "profile:" + person == items[person]["item"]
            assert URN not in body, "a Connections URN is folded to the person's user id"
            (line,) = wait_for_access_lines(tmp_path / "access.jsonl", 1)
            assert ("hr", "/api/v1/content/top", 200) == (
                line["token"],
                line["route"],
                line["status"],
            )
        finally:
            api.stop()

    async def test_under_the_key_every_person_object_is_a_pseudonym(
        self, settings: Settings, store: RedisStore, worker_factory: Any, tmp_path: Path
    ) -> None:
        """With ESN_PSEUDONYMIZE_KEY no raw id of any person object reaches Redis, and the people
        token sees each as the pseudonym the person has as an actor."""
        keyed = settings.model_copy(update={"pseudonymize_key": SecretStr(KEY)})
        p = pseudonymizer(KEY)
        worker = await worker_factory(keyed).started()
        await produce_raw(settings, events())
        await wait_fully_applied(store, settings, 60, worker.check_alive)
        dump = await dump_redis(store, settings.redis_prefix)
        for raw in (ALICE, BOB, CAROL, DAVE, ERIN, URN):
            assert raw not in dump, f"{raw} stored in Redis"
        secrets, overrides = tokens_for(keyed, tmp_path)
        api = ApiProcess(keyed, REPO / ".esn-test" / "logs", **overrides).start()
        try:
            body, _ = listed(api, secrets["aggregate"])
            assert not any(p(person) in body for person in (BOB, CAROL, DAVE, ERIN))
            _, items = listed(api, secrets["people"])
            assert {p(person) for person in (BOB, CAROL, DAVE, ERIN)} | {"post-42"} == set(items)
        finally:
            api.stop()
