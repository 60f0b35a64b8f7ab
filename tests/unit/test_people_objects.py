"""Content objects that are people: recognised at the fold, withheld from aggregate callers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stream.api.access import NAMED_PEOPLE
from stream.api.routes import people_items_for
from stream.batch import pseudonymized, with_person_as_profile
from stream.events import Activity
from stream.privacy import person_object_id, pseudonymizer

URN = "urn:lsid:lconn.ibm.com:profiles.person:"


def activity(object_key: str, target: str | None = None) -> Activity:
    return Activity("e", "alice", 1, "view", "other", "view", object_key, None, target)


class TestPersonObjects:
    @pytest.mark.parametrize(
        ("object_key", "target", "person"),
        [
            ("profile:bob", None, "bob"),
            ("Person:bob", None, "bob"),
            ("user:U123", None, "U123"),
            ("card:" + URN + "bob-2", None, "bob-2"),
            ("profile:" + URN + "bob-2", None, "bob-2"),
            ("card:erin", "erin", "erin"),
            ("post:42", None, None),
            ("post:42", "erin", None),
            ("file:alice", None, None),
        ],
    )
    def test_what_names_a_person(
        self, object_key: str, target: str | None, person: str | None
    ) -> None:
        """Person types (any case), a Connections person URN, the target user; nothing else."""
        assert person == person_object_id(object_key, target)

    def test_a_person_object_is_folded_as_a_profile(self) -> None:
        """Without a key: keyed as profile:<user id>, counted under the profile object type."""
        folded = with_person_as_profile(activity("Person:" + URN + "bob"))
        assert ("profile:bob", "profile") == (folded.object_key, folded.object_type)
        assert activity("post:42") == with_person_as_profile(activity("post:42"))

    def test_under_the_key_it_is_the_person_s_pseudonym(self) -> None:
        """The same pseudonym the person has as an actor or a target."""
        p = pseudonymizer("k")
        got = pseudonymized(activity("card:erin", "erin"), p)
        assert ("profile:" + p("erin"), p("erin")) == (got.object_key, got.target_user)


def request(*scopes: str) -> Any:
    return SimpleNamespace(state=SimpleNamespace(api_scopes=frozenset(scopes)))


ANSWER = {
    "period": "day",
    "items": [
        {"item": "profile:bob", "object_type": "profile", "id": "bob", "interactions": 3},
        {"item": "post:42", "object_type": "post", "id": "42", "interactions": 2},
    ],
}


class TestTopItemsByScope:
    def test_an_aggregate_token_gets_counts_without_the_person(self) -> None:
        """A profile's id is withheld (null) and its item reads "profile"; other items stay."""
        caller = request("aggregate")
        got = people_items_for(caller, ANSWER)
        assert [("profile", None, 3), ("post:42", "42", 2)] == [
            (i["item"], i["id"], i["interactions"]) for i in got["items"]
        ]
        assert "bob" not in repr(got)
        assert not hasattr(caller.state, NAMED_PEOPLE), "nothing to log"
        assert "bob" == ANSWER["items"][0]["id"], "the computed answer is not changed in place"

    def test_a_people_token_gets_them_and_the_request_is_marked_for_the_log(self) -> None:
        """With the people scope the answer is whole, and the access log will record it."""
        caller = request("aggregate", "people")
        assert ANSWER == people_items_for(caller, ANSWER)
        assert getattr(caller.state, NAMED_PEOPLE)

    def test_no_profile_nothing_to_withhold_or_log(self) -> None:
        """An answer without profiles is returned as it is, unlogged."""
        caller = request("people")
        only_posts = {**ANSWER, "items": ANSWER["items"][1:]}
        assert only_posts == people_items_for(caller, only_posts)
        assert not hasattr(caller.state, NAMED_PEOPLE)
