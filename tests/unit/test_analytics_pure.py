"""Pure analytics logic: group-size merging, pseudonyms, initiative history, community flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.analytics.communities import CommunityHealth
from stream.analytics.community_flags import change_records, state_of
from stream.analytics.initiatives import (
    flagged_at,
    group_figures,
    parse_history,
    reactivated_by,
    week_ends,
)
from stream.api.app import openapi_document
from stream.batch import pseudonymized
from stream.events import Activity
from stream.fold import PartitionDelta
from stream.privacy import merge_small_groups, pseudonymizer
from tests.community_oracle import CommunityInputs, evaluate

DAY = 86_400_000
REPO = Path(__file__).resolve().parents[2]


class TestPrivacy:
    def test_small_groups_merge_into_other(self) -> None:
        """Groups under the minimum become "other" when "other" reaches the minimum."""
        assert {"a": "a", "b": "other", "c": "other"} == merge_small_groups(
            {"a": 10, "b": 3, "c": 2}, 5
        )

    def test_a_still_small_other_is_left_out(self) -> None:
        """No reported group describes fewer people than the minimum."""
        assert {"a": "a"} == merge_small_groups({"a": 10, "b": 3}, 5)

    def test_pseudonyms_are_keyed_stable_and_distinct(self) -> None:
        """Same id and key, same pseudonym; another key or id, another one; no raw id inside."""
        one, other = pseudonymizer("k1"), pseudonymizer("k2")
        assert one("alice") == one("alice") != other("alice")
        assert one("alice") != one("bob")
        assert one("alice").startswith("p_") and len(one("alice")) == 34
        assert one(one("alice")) != one("alice"), "a pseudonym-shaped id is hashed too"

    def test_activity_actor_and_target_are_pseudonymised(self) -> None:
        """Both ids of an event, not the event's other fields."""
        p = pseudonymizer("k")
        a = Activity("e", "alice", 1, "like", "post", "like", "post:1", "c1", "bob")
        got = pseudonymized(a, p)
        assert (got.actor, got.target_user, got.community) == (p("alice"), p("bob"), "c1")


class TestFoldAnalytics:
    def test_tiers_content_items_received_and_communities(self) -> None:
        """One batch's analytics deltas, including ids the line format cannot carry."""
        delta = PartitionDelta("t", 0, 0, 0)
        delta.add(Activity("1", "a", 10, "like", "post", "like", "post:p1", "c1", "b"))
        delta.add(Activity("2", "a", 20, "post", "blog", "post", "blog:b1", "c1", None))
        delta.add(Activity("3", "b", 30, "view", "post", "view", "post:p1", "c\tbad", "x"))
        delta.add(Activity("4", "b", DAY + 5, "mention", "comment", "mention", None, None, "a"))
        assert {("p", "1970-01-01"): {"a"}, ("c", "1970-01-01"): {"a"},
                ("p", "1970-01-02"): {"b"}} == delta.day_tiers  # fmt: skip
        assert {("1970-01-01", "post:p1"): 2, ("1970-01-01", "blog:b1"): 1} == dict(
            delta.day_objects
        )
        assert {"b": [1, 0], "a": [0, 1]} == delta.received
        assert {"c1": [20, 2]} == delta.communities
        assert delta.day_content["1970-01-02", "mention|comment"] == 1

    def test_activity_types_narrow_the_active_sets_only(self) -> None:
        """With ESN_ACTIVITY_TYPES=post, a view is not activity but still content."""
        delta = PartitionDelta("t", 0, 0, 0, counting_types=frozenset({"post"}))
        delta.add(Activity("1", "a", 10, "view", "post", "view", "post:p1"))
        assert delta.day_actives == {} and delta.activity_times == set()
        assert delta.day_content["1970-01-01", "view|post"] == 1


class TestInitiativeHistory:
    HISTORY = parse_history(f"i@{10 * DAY},r@{20 * DAY},n@{2 * DAY},i@{40 * DAY}")

    def test_history_is_time_ordered(self) -> None:
        """Entries appended across releases are read in time order."""
        assert [c for _, c in self.HISTORY] == ["n", "i", "r", "i"]

    @pytest.mark.parametrize(
        ("day", "flagged"),
        [(1, False), (2, True), (15, True), (20, False), (39, False), (40, True)],
    )
    def test_flagged_at(self, day: int, flagged: bool) -> None:
        """Changes at exactly the instant count."""
        assert flagged_at(self.HISTORY, day * DAY) is flagged

    def test_reactivated_in_a_half_open_interval(self) -> None:
        """(after, by]: a reactivation at the start itself is not 'since the start'."""
        assert reactivated_by(self.HISTORY, 15 * DAY, 20 * DAY)
        assert not reactivated_by(self.HISTORY, 20 * DAY, 30 * DAY)

    def test_week_ends_cut_at_now(self) -> None:
        """Whole weeks, then the partial one; none before the start."""
        assert [7 * DAY, 14 * DAY, 17 * DAY] == week_ends(0, 17 * DAY)
        assert [] == week_ends(5 * DAY, 4 * DAY)

    def test_group_figures(self) -> None:
        """Flagged at the start, reactivated by each week's end, rate."""
        histories = {"a": self.HISTORY, "b": parse_history(f"i@{DAY}")}
        got = group_figures(["a", "b", "c"], histories, 15 * DAY, [22 * DAY, 29 * DAY])
        assert (got["users"], got["inactive_at_start"]) == (3, 2)
        assert [(w["reactivated"], w["rate"]) for w in got["weeks"]] == [(1, 0.5), (1, 0.5)]


class TestCommunityFlags:
    INPUTS = CommunityInputs(
        roles={"c": {"owner": {"o"}, "member": {"m", "o"}, "follower": set()}},
        last_seen={"o": 0, "m": 29 * DAY},
        disabled=set(),
        last_activity={"c": DAY},
        events={"c": 3},
    )

    def evaluate_at(self, now: int) -> CommunityHealth:
        return evaluate("c", self.INPUTS, now, 30 * DAY, 30 * DAY)

    def test_orphaned_when_every_owner_is_inactive(self) -> None:
        """Owner seen at 0: active up to exactly 30 days later, orphaned after."""
        assert not self.evaluate_at(30 * DAY).orphaned
        assert self.evaluate_at(30 * DAY + 1).orphaned

    def test_idle_and_health(self) -> None:
        """Idle after the window without an event; health is active people / people."""
        health = self.evaluate_at(31 * DAY + 1)
        assert health.idle and health.people == 2 and health.health == 0.5

    def test_a_change_makes_one_record_per_flag(self) -> None:
        """From nothing to orphaned and idle: two records; no change: none."""
        health = self.evaluate_at(40 * DAY)
        records = change_records(health, "", 40 * DAY)
        assert sorted(r["kind"] for r in records) == ["idle", "orphaned"]
        assert change_records(health, state_of(health), 41 * DAY) == []
        back = self.evaluate_at(10 * DAY)
        assert [r["kind"] for r in change_records(back, "oi", 10 * DAY)] == [
            "orphaned_resolved",
            "idle_resolved",
        ]


def test_openapi_file_is_the_generated_document() -> None:
    """docs/api/openapi.json is what the api's models generate.

    Regenerate it with ``python -m stream.api.app > docs/api/openapi.json``.
    """
    assert json.loads((REPO / "docs/api/openapi.json").read_text()) == openapi_document()
