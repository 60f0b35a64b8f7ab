"""Ids that slipped past pseudonymisation: people as objects, pseudonym-shaped ids, DLQ details."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from stream import jsonutil
from stream.adapters.base import SourceRecord
from stream.adapters.connections import ConnectionsAdapter
from stream.batch import pseudonymized
from stream.decode import decode_activity
from stream.events import Activity, InvalidEvent
from stream.privacy import dlq_detail_redactor, looks_like_pseudonym, pseudonymizer
from stream.settings import Settings
from stream.topics import DLQ_DETAIL, dlq_headers

PERSON_URN = "urn:lsid:lconn.ibm.com:profiles.person:"


def key_mismatch_detail(key: str, actor: str) -> str:
    """The detail the worker writes for a record keyed by someone else."""
    event = {"id": "e1", "type": "login", "actor": actor, "time": "2026-05-01T10:00:00Z"}
    with pytest.raises(InvalidEvent) as caught:
        decode_activity(jsonutil.dumps(event), key.encode())
    assert "key_mismatch" == caught.value.reason
    return caught.value.detail


class TestPseudonymsAreAlwaysComputed:
    def test_an_id_shaped_like_a_pseudonym_is_hashed_too(self) -> None:
        """A source id of the form p_ + 32 hex digits is not stored as it is."""
        p = pseudonymizer("k")
        lookalike = "p_" + "0123456789abcdef" * 2
        assert looks_like_pseudonym(lookalike)
        assert lookalike != p(lookalike)
        assert p("alice") != p(p("alice")), "a pseudonym is hashed again, never passed through"

    def test_what_looks_like_a_pseudonym(self) -> None:
        """Only p_ + exactly 32 lower-case hex digits."""
        assert not looks_like_pseudonym("p_" + "g" * 32)
        assert not looks_like_pseudonym("p_" + "a" * 31)
        assert not looks_like_pseudonym("q_" + "a" * 32)
        assert not looks_like_pseudonym("P_" + "A" * 32)


class TestPeopleAsObjects:
    def test_a_profile_object_is_pseudonymised_like_an_actor(self) -> None:
        """The id of a followed profile becomes that person's pseudonym; other objects stay."""
        p = pseudonymizer("k")
        follow = Activity(
            "e", "alice", 1, "follow", "profile", "follow", "profile:bob", None, "bob"
        )
        got = pseudonymized(follow, p)
        assert ("profile:" + p("bob"), p("bob")) == (got.object_key, got.target_user)
        post = Activity("e", "alice", 1, "like", "post", "like", "post:42", None, None)
        assert "post:42" == pseudonymized(post, p).object_key

    def test_a_connections_person_urn_ends_as_the_persons_pseudonym(self) -> None:
        """A follow of a person: no part of the folded activity holds the raw id or its URN."""
        entry = {
            "verb": "follow",
            "published": "2026-05-01T10:00:00Z",
            "actor": {"id": PERSON_URN + "alice-0001", "objectType": "person"},
            "object": {"id": PERSON_URN + "bob-0002", "objectType": "person"},
        }
        (output,) = ConnectionsAdapter().map(SourceRecord("x", entry))
        assert {"type": "profile", "id": "bob-0002"} == output.record["object"]
        p = pseudonymizer("k")
        folded = pseudonymized(decode_activity(jsonutil.dumps(output.record), b"alice-0001"), p)
        assert ("profile:" + p("bob-0002"), p("bob-0002")) == (
            folded.object_key,
            folded.target_user,
        )
        assert "bob-0002" not in repr(folded) and "alice-0001" not in repr(folded)


class TestDeadLetterDetailIds:
    def settings(self, mode: str, key: str = "") -> Settings:
        return Settings(dlq_detail_ids=mode, pseudonymize_key=SecretStr(key))

    def detail_header(self, settings: Settings, detail: str) -> str:
        headers = dict(
            dlq_headers("key_mismatch", dlq_detail_redactor(settings)(detail), "t", 0, 1)
        )
        return headers[DLQ_DETAIL].decode()

    @pytest.mark.parametrize(
        "hostile", ["mallory'; DROP", 'quote"inside', "back\\slash", "<script>", "\u202eevil"]
    )
    def test_hash_and_drop_leave_no_id_in_the_header(self, hostile: str) -> None:
        """Both quoted ids of a key mismatch are replaced, whatever characters they hold."""
        detail = key_mismatch_detail(hostile, "alice")
        assert "alice" in self.detail_header(self.settings("keep"), detail)
        for settings in (
            self.settings("hash"),
            self.settings("hash", key="s3cret"),
            self.settings("drop"),
        ):
            header = self.detail_header(settings, detail)
            assert "alice" not in header and hostile not in header, header
            assert header.startswith("record key '"), "the rest of the detail stays readable"

    def test_hash_under_the_key_is_the_stored_pseudonym(self) -> None:
        """With ESN_PSEUDONYMIZE_KEY, the actor in the detail is the id Redis holds for it."""
        detail = key_mismatch_detail("bob", "alice")
        header = self.detail_header(self.settings("hash", key="s3cret"), detail)
        p = pseudonymizer("s3cret")
        assert f"record key {p('bob')!r} is not the actor {p('alice')!r}" == header

    def test_drop_replaces_each_id(self) -> None:
        """drop: the ids become '-'."""
        detail = key_mismatch_detail("bob", "alice")
        assert "record key '-' is not the actor '-'" == self.detail_header(
            self.settings("drop"), detail
        )

    def test_an_unknown_mode_is_a_setting_error(self) -> None:
        """Only keep, hash and drop."""
        bad: Any = "encrypt"
        with pytest.raises(ValidationError, match="dlq_detail_ids"):
            Settings(dlq_detail_ids=bad)


class TestKubernetesKeepsTheRealSecret:
    def test_no_manifest_overlays_the_secret_the_workers_read(self) -> None:
        """deploy/k8s ships no esn-pulse-secrets (nor any Secret with ESN_PSEUDONYMIZE_KEY), and
        every Deployment requires it (not optional), so apply -k never blanks the key."""
        k8s = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
        docs = [
            doc
            for path in sorted(k8s.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        ]
        for doc in docs:
            if doc.get("kind") == "Secret":
                data = doc.get("data", {}) | doc.get("stringData", {})
                assert "esn-pulse-secrets" != doc["metadata"]["name"]
                assert "ESN_PSEUDONYMIZE_KEY" not in data, doc["metadata"]["name"]
        refs = [
            ref["secretRef"]
            for doc in docs
            if doc.get("kind") == "Deployment"
            for container in doc["spec"]["template"]["spec"]["containers"]
            for ref in container.get("envFrom", [])
            if "secretRef" in ref
        ]
        assert refs, "the workers read their secrets from esn-pulse-secrets"
        assert all(not ref.get("optional", False) for ref in refs)
