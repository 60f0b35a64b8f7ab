"""The compiled fold core folds exactly what the Python gate and fold do, record for record.

Every batch is folded twice, with ``native=False`` (pure Python: the definition) and with the
compiled core (which folds the records it is sure of and leaves the rest to the Python gate), and
every field of the two deltas, the rejects and the event times must be equal. The core is built
by ``make install``; these tests fail, not skip, without it: CI must run the fold it ships.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import jsonutil
from stream.batch import Reject, fold_partition
from stream.events import (
    CONTRIBUTING_TYPES,
    COUNTED_TYPES,
    MAX_RECORD_BYTES,
    NO_OBJECT,
    OBJECT_TYPES,
    PARTICIPATING_TYPES,
)
from stream.fold import PartitionDelta, UserDelta
from stream.generator import generate_events
from stream.native import native_constants, native_fold
from stream.privacy import PERSON_OBJECT_TYPES, PERSON_URN_MARK, pseudonymizer
from stream.store.fold_call import FoldPlan, fold_call
from stream.store.keys import RedisKeys
from stream.timebounds import TimeBounds, parse_instant_ms

NOW_MS = parse_instant_ms("2026-12-01T12:00:00Z")
BOUNDS = TimeBounds.at(NOW_MS)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def records_of(pairs: list[tuple[bytes | None, bytes | None]]) -> list[Record]:
    return [Record("t", 3, offset, key, value) for offset, (key, value) in enumerate(pairs)]


def canonical(delta: PartitionDelta) -> dict[str, Any]:
    """Every field of a delta, comparable whatever the insertion order."""
    if delta.native is not None:
        # The core's batch holds the fields: written into a fresh delta to be compared.
        held = PartitionDelta(delta.topic, delta.partition, delta.first_offset, delta.last_offset)
        delta.native.write_into(held, UserDelta)
        assert (held.events, held.max_event_ms, held.totals) == (
            delta.events,
            delta.max_event_ms,
            delta.totals,
        ), "the delta's own counters follow the batch"
        delta = held
    return {
        "offsets": (delta.first_offset, delta.last_offset),
        "users": {u: (d.first_ms, d.last_ms, dict(d.counts)) for u, d in delta.users.items()},
        "day_actives": delta.day_actives,
        "day_tiers": delta.day_tiers,
        "tier_last": delta.tier_last,
        "day_content": dict(delta.day_content),
        "day_objects": dict(delta.day_objects),
        "received": delta.received,
        "communities": delta.communities,
        "totals": dict(delta.totals),
        "unknown_types": dict(delta.unknown_types),
        "events": delta.events,
        "max_event_ms": delta.max_event_ms,
        "activity_times": delta.activity_times,
    }


def both_ways(
    records: list[Record],
    pseudonymize: Any = None,
    counting_types: frozenset[str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Fold both ways, assert equality, return the delta and how many records were rejected."""
    outcomes = []
    for native in (False, True):
        rejects: list[Reject] = []
        delta, times = fold_partition(
            "t", 3, records, rejects, counting_types, pseudonymize, BOUNDS, native=native
        )
        reasons = [(r.record.offset, r.reason, r.detail) for r in rejects]
        outcomes.append((canonical(delta), sorted(times), sorted(reasons)))
    assert outcomes[0] == outcomes[1]
    return outcomes[0][0], len(outcomes[0][2])


def test_the_core_is_built_and_holds_our_constants() -> None:
    """CI folds with the core it ships, whose built-in lists are the contract's."""
    assert native_fold is not None, "esn_pulse_native is not installed: run make install"
    constants = native_constants()
    assert constants is not None
    assert constants["counted_types"] == list(COUNTED_TYPES)
    assert constants["object_types"] == list(OBJECT_TYPES)
    assert set(constants["participating"]) == PARTICIPATING_TYPES
    assert set(constants["contributing"]) == CONTRIBUTING_TYPES
    assert set(constants["person_object_types"]) == PERSON_OBJECT_TYPES
    assert constants["person_urn_mark"] == PERSON_URN_MARK
    assert constants["max_record_bytes"] == MAX_RECORD_BYTES
    assert constants["no_object"] == NO_OBJECT


def generated(users: int, days: int, seed: int) -> list[Record]:
    events = generate_events(users=users, days=days, start=date(2026, 9, 1), seed=seed)
    return records_of([(e["actor"].encode(), jsonutil.dumps(e)) for e in events])


@pytest.mark.parametrize("pseudonymized", [False, True])
def test_generated_traffic_folds_the_same(pseudonymized: bool) -> None:
    """Days of a generated organisation: the same delta, and the core took them all."""
    records = generated(300, 20, seed=7)
    pseudonymize = pseudonymizer("k") if pseudonymized else None
    delta, rejected = both_ways(records, pseudonymize)
    assert delta["events"] + rejected == len(records) and rejected == 0
    assert native_fold is not None
    _, slow, _ = native_fold(records, BOUNDS.earliest_ms, BOUNDS.latest_ms, pseudonymize, None)
    assert slow == [], "plain generated records must not need the Python gate"


def test_counting_types_fold_the_same() -> None:
    """Only logins count as activity: the actives, tiers and buffer agree."""
    both_ways(generated(100, 10, seed=3), counting_types=frozenset({"login"}))


BASE: dict[str, Any] = {
    "id": "e1",
    "type": "like",
    "actor": "u1",
    "time": "2026-11-30T09:00:00Z",
    "object": {"type": "post", "id": "p1"},
    "community": "c1",
    "target_user": "u2",
}
ODD: dict[str, list[Any]] = {
    "time": [
        "2026-11-30T09:00:00.123456Z", "2026-11-30T09:00:00.1234567Z",
        "2026-11-30T09:00:00.5+05:30",
        "2026-11-30T23:59:59.999-23:59", "2026-11-30 09:00:00Z", "2026-11-30t09:00:00z",
        "2026-11-30T09:00:00+0100", "2026-11-30T09:00:60Z", "2026-13-30T09:00:00Z",
        "2026-02-29T09:00:00Z", "2024-02-29T09:00:00Z", "2026-11-30T24:00:00Z",
        "2026-11-30T09:00:00+24:00", "2026-11-30T09:00:00+23:60", "0000-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z",
        "2026-12-01T12:05:00Z", "2026-12-01T12:05:00.001Z", "9999-12-31T23:59:59Z",
        "2026-11-30T09:00:00", 1772618400, None, "",
    ],
    "actor": ["u\n", "u\x7f", "ü-ñ", "x" * 256, "x" * 257, "", 12, None, "a b", "<b>u</b>"],
    "type": ["Like", "poll_vote", "other", "a" * 64, "a" * 65, "9x", "", None, 3, "view", "post"],
    "id": ["", "x" * 256, "x" * 257, 5, None],
    "object": [
        {"type": "blog", "id": "b"}, {"type": "kanban", "id": "k"}, {"type": "blog"}, {"id": "b"},
        {"type": "", "id": "b"}, "blog", [], None, {"type": "x" * 65, "id": "i"},
        {"type": "Person", "id": "u9"}, {"type": "profile", "id": "u2"},
        {"type": "post", "id": "u2"},
        {"type": "file", "id": "urn:lsid:lconn.ibm.com:profiles.person:u7"},
        {"type": "a:b", "id": "c"}, {"type": "post", "id": "p\x7f"}, {"type": "post", "id": 5},
        {"type": "post", "id": "p", "extra": {"deep": [1, 2, {"x": None}]}},
    ],
    "community": [None, "c", "", 5, "c" * 256, "c" * 257, "c\x7f"],
    "source": [None, "slack", {"a": 1}, "s" * 257],
    "target_user": [None, "u2", ["u2"], "u1", "t\x7f"],
    "extra": [1, -0, 1.5, 12345678901234567890, [1, [2, [3]]], {"a": {"b": {"c": {}}}}, True],
}  # fmt: skip


#: A valid record's start, for the hand-written ones below.
VIEW = b'{"type":"view","actor":"u1","id":"e","time":"2026-11-30T09:00:00Z",'


@pytest.mark.parametrize("pseudonymized", [False, True])
def test_odd_and_hostile_values_fold_the_same(pseudonymized: bool) -> None:
    """Each odd value, alone in a record, folds (or is rejected) the same both ways."""
    pairs: list[tuple[bytes | None, bytes | None]] = []
    for field, values in ODD.items():
        for value in values:
            doc = {**BASE, field: value}
            key = value.encode() if field == "actor" and isinstance(value, str) else b"u1"
            pairs.append((key, jsonutil.dumps(doc)))
    pairs += [
        (b"u1", None), (None, jsonutil.dumps(BASE)), (b"u2", jsonutil.dumps(BASE)),
        (b"u1", b""), (b"u1", b"[]"), (b"u1", b"null"), (b"u1", b"{}"), (b"u1", b"{"),
        (b"u1", jsonutil.dumps(BASE) + b" "), (b"u1", b"\n" + jsonutil.dumps(BASE)),
        (b"u1", jsonutil.dumps(BASE) + b"x"), (b"u1", b"\xff\xfe"),
        (b"u1", jsonutil.dumps(BASE).replace(b'"u1"', b'"u\\u0031"')),
        (b"u1", jsonutil.dumps(BASE).replace(b'"like"', b'"li\\ke"')),
        (b"u1", b'{"id":"a","id":"b","type":"view","actor":"u1","time":"2026-11-30T09:00:00Z"}'),
        (b"u1", b'{"actor":"u2",' + VIEW[1:-1] + b"}"),
        (b"u1", VIEW + b'"n":01}'),
        (b"u1", VIEW + b'"n":1e400}'),
        (b"u1", VIEW + b'"n":1.}'),
        (b"u1", VIEW + b'"n":-}'),
        (b"u1", VIEW + b'}'),
        (b"u1", VIEW + b'"object":{"type":"post","id":"x","type":"blog"}}'),
        (b"u1", VIEW + b'"object":{"type":"post","id":"x"},"object":null}'),
        (b"u1", b'{"specversion":"1.0","type":"com.x.like","id":"e","subject":"u1","data":{}}'),
        (b"u1", VIEW + b'"deep":' + b"[" * 40 + b"]" * 40 + b"}"),
        (b"u1", VIEW + b'"pad":"' + b"x" * MAX_RECORD_BYTES + b'"}'),
    ]  # fmt: skip
    pseudonymize = pseudonymizer("k") if pseudonymized else None
    delta, rejected = both_ways(records_of(pairs), pseudonymize)
    assert rejected > 0 and delta["events"] > 0  # both kinds are in the corpus


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["u1", "u2", "view", "like", "post", "other", "2026-11-30T09:00:00Z"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    ["id", "type", "actor", "time", "object", "community", "source", "target_user", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    docs=st.lists(
        st.tuples(
            st.dictionaries(FIELDS, JSON_VALUES, max_size=3),
            st.sets(st.sampled_from(["id", "type", "actor", "time", "object"]), max_size=2),
            st.sampled_from([b"u1", b"u2", None]),
        ),
        min_size=1,
        max_size=6,
    ),
    pseudonymized=st.booleans(),
    ascii_only=st.booleans(),
)
def test_random_batches_fold_the_same(
    docs: list[tuple[dict[str, Any], set[str], bytes | None]], pseudonymized: bool, ascii_only: bool
) -> None:
    """Whatever the shapes in a batch, the two folds agree on every field."""
    pairs: list[tuple[bytes | None, bytes | None]] = []
    for overrides, drop, key in docs:
        doc = {k: v for k, v in {**BASE, **overrides}.items() if k not in drop}
        # The standard library writes any integer (orjson refuses those past 64 bits).
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=ascii_only)
        pairs.append((key, text.encode("utf-8", "surrogatepass")))
    both_ways(records_of(pairs), pseudonymizer("k") if pseudonymized else None)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=80), key=st.sampled_from([b"u1", None]))
def test_random_bytes_fold_the_same(raw: bytes, key: bytes | None) -> None:
    """Arbitrary bytes around a valid record: nothing the core accepts differs."""
    valid = jsonutil.dumps(BASE)
    pairs: list[tuple[bytes | None, bytes | None]] = [
        (key, raw),
        (key, valid[: len(raw) % len(valid)] + raw),
        (key, valid + raw),
    ]
    both_ways(records_of(pairs))


def payload_of(delta: PartitionDelta) -> tuple[list[str], dict[str, Any]]:
    """fold.lua's keys and payload for a delta, with positions turned back into user ids and
    every list of pairs into a mapping: comparable whatever the order the two sides wrote."""
    keys, args = fold_call(delta, RedisKeys("esn:").partition(3), PLAN, 1_790_000_000)
    assert args[:2] == [delta.first_offset, delta.last_offset]
    raw = jsonutil.loads(args[2])
    users: dict[str, Any] = {}
    order: list[str] = []
    for group in raw["u"]:
        for index in range(1, len(group), 4):
            user, first, last, counts = group[index : index + 4]
            users[user] = (group[0], first, last, counts)
            order.append(user)
    of = {number: user for number, user in enumerate(order, start=1)}
    tiers = {}
    for tier, number, bitmap, stats, expire, hll, hll_expire, prog, spill, members, minutes in raw[
        "t"
    ]:
        held = {of[m]: minutes[i] if minutes else None for i, m in enumerate(members)}
        tiers[tier, number] = (bitmap, stats, expire, hll, hll_expire, prog, spill, held)

    def pairs(flat: list[Any]) -> dict[Any, Any]:
        return dict(zip(flat[0::2], flat[1::2], strict=True))

    received = {}
    for group in raw["r"]:
        for index in range(1, len(group), 3):
            received[group[index]] = (group[0], group[index + 1], group[index + 2])
    communities = {raw["c"][i]: tuple(raw["c"][i + 1 : i + 3]) for i in range(0, len(raw["c"]), 3)}
    canonical_payload = {
        "n": raw["n"],
        "u": users,
        "t": tiers,
        "m": {key: (expire, pairs(fields)) for key, expire, fields in raw["m"]},
        "o": {key: (expire, pairs(items)) for key, expire, items in raw["o"]},
        "cap": raw["cap"],
        "slots": raw["slots"],
        "r": received,
        "c": communities,
        "b": sorted(raw["b"]),
        "w": raw["w"],
        "tot": pairs(raw["tot"]),
        "unk": pairs(raw["unk"]),
    }
    return keys, canonical_payload


PLAN = FoldPlan(
    user_buckets=16, retention_days=35, analytics_retention_days=400, top_items_capacity=7
)


@pytest.mark.parametrize("pseudonymized", [False, True])
def test_the_core_writes_the_payload_fold_call_writes(pseudonymized: bool) -> None:
    """Generated traffic with odd records among it: the same KEYS and the same payload."""
    records = generated(120, 12, seed=11)
    odd = [(b"u1", jsonutil.dumps({**BASE, "community": "c\x7f", "target_user": "ü"}))]
    odd += [(b"u1", jsonutil.dumps({**BASE, "actor": "u1", "type": "poll", "id": "é"}))]
    odd += [(b"u1", b"not json"), (b"u2", jsonutil.dumps(BASE))]
    records += [Record("t", 3, len(records) + i, k, v) for i, (k, v) in enumerate(odd)]
    pseudonymize = pseudonymizer("k") if pseudonymized else None
    written = []
    for native in (False, True):
        delta, _ = fold_partition("t", 3, records, [], None, pseudonymize, BOUNDS, native=native)
        assert (delta.native is not None) == native
        keys, payload = payload_of(delta)
        written.append((keys[:7], set(keys[7:]), len(keys), payload))
    assert written[0] == written[1]
    assert written[1][3]["unk"]["poll"] == 1, "the gate's activity reached the core's batch"
