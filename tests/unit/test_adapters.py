"""Source adapters on fixtures written from each format's documentation, with export oddities."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream import jsonutil
from stream.adapters.activitystreams import TYPE_MAP, ActivityStreamsAdapter, activity
from stream.adapters.base import Output, SourceRecord
from stream.adapters.csvgeneric import CsvAdapter, parse_mapping
from stream.adapters.runner import ImportSummary, input_files, run_import
from stream.adapters.scim import ScimAdapter
from stream.decode import decode_activity
from stream.directory import decode_directory
from stream.events import KNOWN_TYPES, epoch_ms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
#: Ids as sources write them: any printable text, no surrounding spaces (the adapters trim).
ACTORS = st.text(
    st.characters(
        min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Cc", "Zs", "Zl", "Zp")
    ),
    min_size=1,
    max_size=40,
)
WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)


def gate(event: dict[str, Any], key: str) -> tuple[str, int, str]:
    """What the worker folds of an event: actor, time, type."""
    folded = decode_activity(jsonutil.dumps(event), key.encode())
    return folded.actor, folded.time_ms, folded.type


class ListSink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_after = fail_after

    async def send(self, output: Output, payload: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise RuntimeError("broker gone")
        self.sent.append(jsonutil.loads(payload))

    async def flush(self) -> None:
        return None


def imported(adapter: Any, *names: str) -> tuple[ImportSummary, list[dict[str, Any]]]:
    sink = ListSink()
    summary = asyncio.run(run_import(adapter, [FIXTURES / n for n in names], sink))
    return summary, sink.sent


class TestActivityStreams:
    def test_lines_with_bom_blank_lines_and_bad_records(self) -> None:
        """Every line is read; the bad ones are skipped with their line number and reason."""
        summary, sent = imported(ActivityStreamsAdapter(), "activitystreams/as2.jsonl")
        assert summary.records_read == 8 and summary.activity_events == 5
        assert dict(summary.skipped) == {"missing_time": 1, "not_json": 1, "missing_actor": 1}
        where = FIXTURES / "activitystreams" / "as2.jsonl"
        assert [f"{where}:7", f"{where}:8", f"{where}:9"] == [
            loc for loc, _, _ in summary.examples
        ], "located by the file's full path"
        post, like, follow, tentative, view = sent
        assert (post["type"], post["object"], post["community"], post["target_user"]) == (
            "post", {"type": "post", "id": "https://esn.example/notes/1"},
            "https://esn.example/groups/eng", "https://esn.example/users/bob",
        )  # fmt: skip
        assert like["actor"] == "https://esn.example/users/bob" and like["id"].startswith("as2-")
        assert like["time"] == "2026-03-02T10:00:00+01:00"
        assert follow["target_user"] == "https://esn.example/users/alice"
        assert tentative["type"] == "tentativeaccept", "unknown types are kept"
        assert view["time"] == "2026-03-04T12:00:00+00:00", "a naive time is UTC"

    def test_a_collection_document(self) -> None:
        """An OrderedCollection's orderedItems, located by item number."""
        summary, sent = imported(ActivityStreamsAdapter(), "activitystreams/as2-collection.json")
        assert [e["type"] for e in sent] == ["join", "share"]
        assert sent[0]["object"]["type"] == "community"
        assert summary.records_read == 2

    @given(
        kind=st.sampled_from(sorted(TYPE_MAP)),
        actor=st.text(
            st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="\x7f"),
            min_size=1,
            max_size=40,
        ),
        when=st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
        ),
    )
    def test_round_trip_keeps_actor_time_and_type(
        self, kind: str, actor: str, when: datetime
    ) -> None:
        """Through the adapter and the worker's gate: same actor, instant and mapped type."""
        doc = {"type": kind, "actor": {"id": actor}, "published": when.isoformat()}
        event = activity(doc)
        folded = decode_activity(jsonutil.dumps(event), actor.encode())
        assert (folded.actor, folded.time_ms, folded.type) == (
            actor,
            epoch_ms(when),
            TYPE_MAP[kind],
        )


class TestScim:
    def test_list_response_users_to_profiles(self) -> None:
        """active, meta.created/lastModified, enterprise department; a user without id skipped."""
        summary, sent = imported(ScimAdapter(), "scim/scim.json")
        alice, gina = sent
        assert alice == {
            "kind": "profile", "user_id": "https://esn.example/users/alice", "status": "enabled",
            "created": "2026-01-10T08:00:00+00:00", "updated": "2026-02-01T08:00:00+00:00",
            "department": "Engineering", "display_name": "Alice Example",
        }  # fmt: skip
        assert gina["status"] == "disabled" and gina["updated"] == gina["created"]
        assert dict(summary.skipped) == {"missing_user": 1}

    @given(user=ACTORS, when=WHEN, active=st.booleans())
    def test_round_trip_keeps_user_creation_and_status(
        self, user: str, when: datetime, active: bool
    ) -> None:
        """Through the adapter and the worker's directory gate."""
        doc = {"userName": user, "active": active, "meta": {"created": when.isoformat()}}
        (output,) = ScimAdapter().map(SourceRecord("x:1", doc))
        profile = decode_directory(jsonutil.dumps(output.record), user.encode())
        assert (profile.user_id, epoch_ms(profile.created), profile.status) == (
            user, epoch_ms(when), "enabled" if active else "disabled",
        )  # fmt: skip


class TestCsv:
    MAPPING = "time=When,actor=Who,type=What,object_id=Item,object_type=Kind"

    def test_mapping_with_bom_quoted_newlines_and_extra_columns(self) -> None:
        """Rows map through the column mapping; bad rows are skipped with their row number."""
        summary, sent = imported(CsvAdapter(parse_mapping(self.MAPPING)), "csv/activity.csv")
        assert [(e["actor"], e["type"]) for e in sent] == [
            ("alice", "post"),
            ("bob", "like"),
            ("carol", "poll_vote"),
        ]
        assert sent[1]["time"] == "2026-03-02T10:00:00+00:00"
        assert dict(summary.skipped) == {"missing_actor": 1, "bad_time": 1}
        where = FIXTURES / "csv" / "activity.csv"
        assert {f"{where}:line 5", f"{where}:line 6"} == {loc for loc, _, _ in summary.examples}
        again = imported(CsvAdapter(parse_mapping(self.MAPPING)), "csv/activity.csv")[1]
        assert [e["id"] for e in again] == [e["id"] for e in sent], "re-import, same ids"

    @given(actor=ACTORS, when=WHEN, kind=st.sampled_from(["post", "Like", "Poll Vote", "login"]))
    def test_round_trip_keeps_actor_time_and_type(
        self, actor: str, when: datetime, kind: str
    ) -> None:
        """A row through the mapping and the worker's gate: same actor, instant and type (a type
        of the source's own is kept in the event, and folded as "other")."""
        row = {"Who": actor, "When": when.isoformat(), "What": kind, "Item": "", "Kind": ""}
        (output,) = CsvAdapter(parse_mapping(self.MAPPING)).map(SourceRecord("f:line 2", row))
        name = kind.lower().replace(" ", "_")
        assert output.record["type"] == name
        folded = name if name in KNOWN_TYPES else "other"
        assert gate(output.record, actor) == (actor, epoch_ms(when), folded)

    def test_constants_and_yaml_mappings(self, tmp_path: Path) -> None:
        """type==login makes every row a login; a YAML file says the same."""
        spec = tmp_path / "map.yaml"
        spec.write_text("time: When\nactor: Who\ntype: =login\n")
        _, sent = imported(CsvAdapter(parse_mapping(str(spec))), "csv/activity.csv")
        assert {e["type"] for e in sent} == {"login"}
        with pytest.raises(ValueError, match="needs"):
            parse_mapping("actor=Who")
        with pytest.raises(ValueError, match="unknown"):
            parse_mapping("actor=Who,time=When,type==x,colour=Red")


class TestRunner:
    def test_a_resumed_import_loses_nothing(self, tmp_path: Path) -> None:
        """A sink that fails half-way; the resumed import from the checkpoint completes it."""
        checkpoint = tmp_path / "import.ckpt"
        adapter = ActivityStreamsAdapter()
        files = input_files(FIXTURES / "activitystreams")
        first = ListSink(fail_after=3)
        with pytest.raises(RuntimeError):
            asyncio.run(run_import(adapter, files, first, checkpoint, checkpoint_every=2))
        second = ListSink()
        summary = asyncio.run(run_import(adapter, files, second, checkpoint, checkpoint_every=2))
        ids = [e["id"] for e in first.sent + second.sent]
        everything = [
            e["id"] for e in imported(adapter, *(f"activitystreams/{f.name}" for f in files))[1]
        ]
        assert set(ids) == set(everything), "nothing lost"
        assert len(ids) - len(set(ids)) <= 2, "at most the records since the last checkpoint again"
        assert summary.resumed_past >= 2

    def test_dry_run_validates_without_sending(self) -> None:
        """No sink: the same summary, nothing sent."""
        summary = asyncio.run(run_import(ScimAdapter(), [FIXTURES / "scim" / "scim.json"], None))
        assert summary.directory_records == 2 and summary.records_read == 3

    def test_every_record_is_accounted_for(self) -> None:
        """records read = mapped (one output each here) + skipped, for every fixture."""
        for adapter, name in (
            (ActivityStreamsAdapter(), "activitystreams/as2.jsonl"),
            (ScimAdapter(), "scim/scim.json"),
        ):
            summary, _ = imported(adapter, name)
            emitted = summary.activity_events + summary.directory_records
            assert summary.records_read == emitted + sum(summary.skipped.values())
        record = SourceRecord("x:1", {"type": "Like", "actor": "a", "published": "bad"})
        with pytest.raises(Exception, match="bad_time"):
            ActivityStreamsAdapter().map(record)
