"""Folding a partition's records: event-time min/max, counts, days, totals, fences."""

from __future__ import annotations

from dataclasses import dataclass

from stream import jsonutil
from stream.batch import fold_fetch, records_after
from stream.events import Activity
from stream.fold import PartitionDelta, utc_day

DAY_MS = 86_400_000


def activity(actor: str, time_ms: int, event_type: str = "view", obj: str = "none") -> Activity:
    return Activity("id", actor, time_ms, event_type, obj, event_type)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class TestPartitionDelta:
    def test_out_of_order_events_only_widen_first_and_last(self) -> None:
        """A late event moves first seen back but never moves last seen back."""
        delta = PartitionDelta("t", 0, 0, 0)
        for t in (5000, 9000, 1000, 7000):
            delta.add(activity("u", t))
        user = delta.users["u"]
        assert (user.first_ms, user.last_ms) == (1000, 9000)

    def test_counts_days_and_totals(self) -> None:
        """Per-type counts, per-UTC-day actives and (type, object) totals add up."""
        delta = PartitionDelta("t", 0, 0, 0)
        delta.add(activity("a", DAY_MS - 1, "like", "post"))
        delta.add(activity("a", DAY_MS, "like", "post"))
        delta.add(activity("b", DAY_MS + 5, "login"))
        assert dict(delta.users["a"].counts) == {"like": 2}
        assert {"1970-01-01": {"a": 1439}, "1970-01-02": {"a": 0, "b": 0}} == delta.day_actives
        assert dict(delta.totals) == {("like", "post"): 2, ("login", "none"): 1}
        assert (delta.events, delta.max_event_ms) == (3, DAY_MS + 5)

    def test_unknown_types_are_tallied_by_raw_name(self) -> None:
        """Events folded as "other" keep their raw name for the operator."""
        delta = PartitionDelta("t", 0, 0, 0)
        delta.add(Activity("i", "u", 1, "other", "none", "poll_vote"))
        assert dict(delta.unknown_types) == {"poll_vote": 1}

    def test_utc_day(self) -> None:
        """Day numbers map to ISO dates."""
        assert utc_day(20516) == "2026-03-04"


class TestFoldFetch:
    def test_invalid_records_are_rejected_but_covered_by_the_fence(self) -> None:
        """The delta spans every record, bad ones included, so the fence moves past them."""
        good = jsonutil.dumps(
            {"id": "1", "type": "view", "actor": "u", "time": "2026-01-01T00:00:00Z"}
        )
        records = [
            Record("t", 3, 10, b"u", good),
            Record("t", 3, 11, b"u", b"garbage"),
            Record("t", 3, 12, b"x", good),
        ]
        folded = fold_fetch({("t", 3): records})
        (delta,) = folded.deltas
        assert (delta.first_offset, delta.last_offset, delta.events) == (10, 12, 1)
        assert [r.reason for r in folded.rejects] == ["not_json", "key_mismatch"]
        assert [r.record.offset for r in folded.rejects] == [11, 12]

    def test_records_after_an_applied_offset(self) -> None:
        """After a partial overlap only the records past the fence are refolded."""
        records = [Record("t", 0, o, b"u", b"{}") for o in range(5)]
        assert [r.offset for r in records_after(records, 2)] == [3, 4]
