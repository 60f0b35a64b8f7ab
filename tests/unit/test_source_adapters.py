"""The platform adapters on fixtures written from each platform's documentation, with the oddities
real exports have, and a round trip per adapter: actor, time and type survive into the worker's
gate."""

from __future__ import annotations

import asyncio
import gzip
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stream import jsonutil
from stream.adapters.base import Output, SourceRecord
from stream.adapters.connections import VERBS, ConnectionsAdapter
from stream.adapters.csvgeneric import parse_mapping
from stream.adapters.directorycsv import FIELDS, DirectoryCsvAdapter
from stream.adapters.files import ByteMeter
from stream.adapters.graphusage import GraphUsageAdapter
from stream.adapters.m365audit import OPERATIONS, M365AuditAdapter
from stream.adapters.progress import render, summary_text
from stream.adapters.runner import ImportSummary, input_files, run_import
from stream.adapters.slack import ACTIONS, SlackAnalyticsAdapter, SlackAuditAdapter
from stream.adapters.stackexchange import StackExchangeAdapter
from stream.decode import decode_activity
from stream.directory import decode_directory
from stream.events import epoch_ms
from stream.sedump import write_dump

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
HR_MAP = (
    "user_id=Email,status=Employment Status,created=Hire Date,department=Department,"
    "display_name=Name"
)

ids = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_."), min_size=1, max_size=30)
instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


days = st.dates(min_value=datetime(2001, 1, 1).date(), max_value=datetime(2025, 12, 31).date())


class ListSink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, output: Output, payload: bytes) -> None:
        self.sent.append(jsonutil.loads(payload))

    async def flush(self) -> None:
        return None


def imported(
    adapter: Any, *paths: Path, **kwargs: Any
) -> tuple[ImportSummary, list[dict[str, Any]]]:
    sink = ListSink()
    files = [f for p in paths for f in input_files(p)]
    summary = asyncio.run(run_import(adapter, files, sink, **kwargs))
    return summary, sink.sent


def activity(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in sent if "actor" in record]


def directory(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in sent if "user_id" in record]


def gate(event: dict[str, Any]) -> tuple[str, int, str]:
    """What the worker folds of an event: actor, time, type."""
    folded = decode_activity(jsonutil.dumps(event), event["actor"].encode())
    return folded.actor, folded.time_ms, folded.type


def accounted(summary: ImportSummary) -> bool:
    ignored, skipped = sum(summary.ignored.values()), sum(summary.skipped.values())
    return summary.records_read == summary.records_mapped + ignored + skipped


ALICE = "8c3d7a40-aaaa-4f21-9b59-000000000001"
BOB = "8c3d7a40-bbbb-4f21-9b59-000000000002"
CAROL = "8c3d7a40-cccc-4f21-9b59-000000000003"
ENGINEERING = "c0ffee00-0000-4000-8000-000000000001"


class TestConnections:
    def test_a_community_stream_page_with_memberships(self) -> None:
        """Entries to activity (URNs to user ids, comments recognised), memberships to directory;
        a delete is ignored, an entry without published skipped with its item number."""
        summary, sent = imported(ConnectionsAdapter(), FIXTURES / "connections")
        events = activity(sent)
        assert [(e["actor"][:13], e["type"]) for e in events] == [
            ("8c3d7a40-aaaa", "post"), ("8c3d7a40-bbbb", "join"), ("8c3d7a40-cccc", "post"),
            ("8c3d7a40-cccc", "comment"), ("8c3d7a40-aaaa", "add_member"),
            ("8c3d7a40-eeee", "leave"),
        ]  # fmt: skip
        blog = events[0]
        assert blog["object"] == {
            "type": "blog",
            "id": "urn:lsid:lconn.ibm.com:blogs.entry:5b1f-q2-wins",
        }
        assert (blog["community"], blog["application"]) == (ENGINEERING, "blogs")
        assert events[1]["time"] == "2026-04-02T16:40:00+02:00", "the offset is kept"
        memberships = {
            (m["user_id"][:13], m["community"][-1], m["role"], m["op"]) for m in directory(sent)
        }
        assert memberships == {
            ("8c3d7a40-bbbb", "1", "member", "add"), ("8c3d7a40-cccc", "2", "owner", "add"),
            ("8c3d7a40-dddd", "1", "owner", "add"), ("8c3d7a40-eeee", "1", "member", "remove"),
        }  # fmt: skip
        assert dict(summary.ignored) == {"verb_delete": 1}
        assert summary.examples == [
            (
                f"{FIXTURES}/connections/community-stream.json:item 6",
                "missing_time",
                "published is missing",
            )
        ]
        assert accounted(summary)

    @given(verb=st.sampled_from(sorted(VERBS)), user=ids, when=instants,
           offset=st.integers(-12, 14))  # fmt: skip
    def test_round_trip(self, verb: str, user: str, when: datetime, offset: int) -> None:
        """Any mapped verb: the user id inside the URN, the instant (any offset) and the type."""
        local = when.astimezone(timezone(timedelta(hours=offset)))
        entry = {"verb": verb, "published": local.isoformat(),
                 "actor": {"id": f"urn:lsid:lconn.ibm.com:profiles.person:{user}"},
                 "object": {"id": "urn:x:1", "objectType": "article"}}  # fmt: skip
        (output,) = ConnectionsAdapter().map(SourceRecord("x", entry))
        assert gate(output.record) == (user, epoch_ms(when), VERBS[verb])


class TestM365Audit:
    def test_management_api_blob_and_purview_csv(self) -> None:
        """Viva Engage records (naive UTC times, group context) from both export shapes; other
        workloads and admin operations ignored; a record without UserId and a CSV row whose
        AuditData is cut short skipped with their locations."""
        summary, sent = imported(M365AuditAdapter(), FIXTURES / "m365")
        rows = [(e["actor"], e["type"], e["time"]) for e in sent]
        assert rows == [
            ("ann@contoso.com", "post", "2026-06-15T09:00:00+00:00"),
            ("ben@contoso.com", "view", "2026-04-20T13:45:10+00:00"),
            ("ann@contoso.com", "threadviewed", "2026-06-18T11:20:00+00:00"),
            ("cat@contoso.com", "share", "2026-06-28T15:02:11+00:00"),
            ("cat@contoso.com", "post", "2026-06-28T15:10:00+00:00"),
        ]
        assert sent[0]["community"] == "Sales Community"
        assert sent[0]["object"] == {"type": "post", "id": "2147483648123"}
        assert sent[1]["object"] == {"type": "file", "id": "771223"}
        assert sent[4]["object"] == {"type": "community", "id": "Product"}
        assert dict(summary.ignored) == {"admin_operation": 1, "not_viva_engage": 1}
        assert {(loc, reason) for loc, reason, _ in summary.examples} == {
            (f"{FIXTURES}/m365/audit-content-blob.json:item 5", "missing_actor"),
            (f"{FIXTURES}/m365/purview-audit-export.csv:line 22", "not_json"),
        }
        assert accounted(summary)

    @given(operation=st.sampled_from(sorted(OPERATIONS)), user=ids, when=instants)
    def test_round_trip(self, operation: str, user: str, when: datetime) -> None:
        """CreationTime is UTC written without an offset."""
        naive = when.replace(tzinfo=None).isoformat()
        record = {"RecordType": 22, "Operation": operation, "UserId": user, "CreationTime": naive,
                  "Id": "r1"}  # fmt: skip
        (output,) = M365AuditAdapter().map(SourceRecord("x", record))
        assert gate(output.record) == (user, epoch_ms(when), OPERATIONS[operation][0])


class TestSlack:
    def test_an_audit_logs_page(self) -> None:
        """Member actions to activity keyed by e-mail; user created/deactivated to profiles;
        an SSO setting change ignored; an entry without date_create skipped."""
        summary, sent = imported(SlackAuditAdapter(), FIXTURES / "slack" / "audit-logs-page.json")
        assert [(e["actor"], e["type"]) for e in activity(sent)] == [
            ("sam@example.com", "login"), ("tom@example.com", "join"), ("sam@example.com", "view"),
        ]  # fmt: skip
        join = activity(sent)[1]
        assert (join["community"], join["time"]) == ("C0G9QF9GW", "2026-04-05T14:00:00+00:00")
        assert [(p["user_id"], p["status"], p["created"]) for p in directory(sent)] == [
            ("una@example.com", "enabled", "2026-04-01T09:00:00+00:00"),
            ("vic@example.com", "disabled", "2026-05-02T10:00:00+00:00"),
        ]
        assert (dict(summary.ignored), dict(summary.skipped)) == (
            {"admin_action": 1}, {"missing_time": 1},
        )  # fmt: skip
        by_id = imported(SlackAuditAdapter("id"), FIXTURES / "slack" / "audit-logs-page.json")[1]
        assert activity(by_id)[0]["actor"] == "W123AB456"

    def test_gzipped_member_analytics(self) -> None:
        """Counts become that many day-start events; an active day without counts one view; an
        inactive day ignored; a row without date skipped; the same file, the same ids."""
        summary, sent = imported(SlackAnalyticsAdapter(), FIXTURES / "slack")
        analytics = [e for e in sent if e["source"] == "slack-analytics"]
        assert [(e["actor"], e["type"], e["time"][:10]) for e in analytics] == [
            ("wes@example.com", "post", "2026-04-15"), ("wes@example.com", "post", "2026-04-15"),
            ("wes@example.com", "like", "2026-04-15"), ("xia@example.com", "view", "2026-06-10"),
        ]  # fmt: skip
        assert {e["time"][11:] for e in analytics} == {"00:00:00+00:00"}
        assert summary.ignored["inactive_day"] == 2
        assert (f"{FIXTURES}/slack/member-analytics-2026-06-10.json.gz:3", "missing_time") in {
            (loc, reason) for loc, reason, _ in summary.examples
        }
        again = imported(SlackAnalyticsAdapter(), FIXTURES / "slack")[1]
        assert [e["id"] for e in again] == [e["id"] for e in sent]

    @given(action=st.sampled_from(sorted(ACTIONS)), user=ids, when=instants)
    def test_audit_round_trip(self, action: str, user: str, when: datetime) -> None:
        """date_create is epoch seconds."""
        when = when.replace(microsecond=0)
        member = {"id": "W1", "email": f"{user}@x.example"}
        entry = {"id": "e1", "action": action, "date_create": int(when.timestamp()),
                 "actor": {"type": "user", "user": member}}  # fmt: skip
        (output,) = SlackAuditAdapter().map(SourceRecord("x", entry))
        assert gate(output.record) == (f"{user}@x.example", epoch_ms(when), ACTIONS[action])

    @given(user=ids, day=days, posts=st.integers(0, 5),
           likes=st.integers(0, 5))  # fmt: skip
    def test_analytics_round_trip(self, user: str, day: Any, posts: int, likes: int) -> None:
        """Every counted action arrives, at the start of its UTC day."""
        row = {"date": day.isoformat(), "user_id": "U1", "email_address": user, "is_active": True,
               "messages_posted_count": posts, "reactions_added_count": likes}  # fmt: skip
        outputs = SlackAnalyticsAdapter().map(SourceRecord("x", row))
        start = epoch_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
        folded = sorted(gate(o.record) for o in outputs)
        expected = ["post"] * posts + ["like"] * likes or ["view"]
        assert folded == sorted((user, start, kind) for kind in expected)


class TestGraphUsage:
    def test_successive_snapshots(self) -> None:
        """The older snapshot first: each new Last Activity Date once; a one-day report's counts
        as events; state changes as profiles; repeats ignored; a row without UPN skipped."""
        summary, sent = imported(GraphUsageAdapter(), FIXTURES / "graph-usage")
        assert [(e["actor"], e["type"], e["time"][:10]) for e in activity(sent)] == [
            ("yan@contoso.com", "view", "2026-04-28"), ("zoe@contoso.com", "view", "2026-04-30"),
            ("quinn@contoso.com", "view", "2026-03-20"),
            *[("zoe@contoso.com", "post", "2026-06-30")] * 2,
            *[("zoe@contoso.com", "view", "2026-06-30")] * 5,
        ]  # fmt: skip
        assert [(p["user_id"], p["status"], p["created"][:10], p["updated"][:10])
                for p in directory(sent)] == [
            ("yan@contoso.com", "enabled", "2025-09-14", "2026-05-01"),
            ("zoe@contoso.com", "enabled", "2025-11-02", "2026-05-01"),
            ("quinn@contoso.com", "disabled", "2026-03-31", "2026-05-01"),
            ("nia@contoso.com", "enabled", "2026-05-20", "2026-06-30"),
        ]  # fmt: skip
        assert dict(summary.ignored) == {"nothing_new": 2}
        assert dict(summary.skipped) == {"missing_user": 1}
        assert accounted(summary)

    def test_the_checkpoint_remembers_across_imports(self, tmp_path: Path) -> None:
        """Yesterday's import, then today's snapshot alone: nothing said twice."""
        first, second = sorted((FIXTURES / "graph-usage").iterdir())
        checkpoint = tmp_path / "graph.ckpt"
        _, day_one = imported(GraphUsageAdapter(), first, checkpoint=checkpoint)
        _, day_two = imported(GraphUsageAdapter(), second, checkpoint=checkpoint)
        _, together = imported(GraphUsageAdapter(), first, second)
        assert day_one + day_two == together

    def test_the_json_form(self, tmp_path: Path) -> None:
        """$format=application/json: camelCase fields, the same mapping."""
        doc = {"value": [{"reportRefreshDate": "2026-06-30", "userPrincipalName": "a@contoso.com",
                          "userState": "Active", "stateChangeDate": "2026-01-01",
                          "lastActivityDate": "2026-06-29", "postedCount": 1, "readCount": 0,
                          "likedCount": 0, "reportPeriod": "7"}]}  # fmt: skip
        path = tmp_path / "report.json"
        path.write_text(jsonutil.dumps(doc).decode())
        _, sent = imported(GraphUsageAdapter(), path)
        assert [(r.get("type"), r.get("time", r.get("created"))[:10]) for r in sent] == [
            (None, "2026-01-01"), ("view", "2026-06-29"),
        ]  # fmt: skip

    @given(
        user=ids,
        day=st.dates(
            min_value=datetime(2001, 1, 1).date(), max_value=datetime(2025, 12, 31).date()
        ),
    )
    def test_round_trip(self, user: str, day: Any) -> None:
        """A Last Activity Date is a view at the start of that UTC day."""
        row = {"Report Refresh Date": "2026-01-01", "User Principal Name": user,
               "Last Activity Date": day.isoformat(), "Report Period": "7"}  # fmt: skip
        _, event = GraphUsageAdapter().map(SourceRecord("x", row))
        start = epoch_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
        assert gate(event.record) == (user, start, "view")


class TestStackExchange:
    def test_a_site_dump(self) -> None:
        """Users to profiles and logins, questions/answers to posts in a topic, comments, the last
        edit; badges, tag wikis, the Community bot and unused files ignored; deleted users'
        posts and comments skipped with their row numbers."""
        summary, sent = imported(StackExchangeAdapter(), FIXTURES / "stackexchange")
        assert [(p["user_id"], p["created"][:10]) for p in directory(sent)] == [
            ("se-1", "2026-01-10"), ("se-2", "2026-02-01"), ("se-3", "2026-04-01"),
        ]  # fmt: skip
        assert sorted((e["actor"], e["type"], e["time"][:10]) for e in activity(sent)) == [
            ("se-1", "comment", "2026-06-04"), ("se-1", "edit", "2026-06-03"),
            ("se-1", "login", "2026-06-29"), ("se-1", "post", "2026-06-02"),
            ("se-2", "comment", "2026-04-10"), ("se-2", "login", "2026-04-01"),
            ("se-2", "post", "2026-03-15"), ("se-3", "login", "2026-04-01"),
        ]  # fmt: skip
        answer = next(e for e in sent if e.get("id") == "se-post-11")
        assert answer["object"] == {"type": "forum_topic", "id": "q10"}, "in its question's topic"
        assert dict(summary.ignored) == {"badge": 2, "other_post_type": 1, "system_user": 1,
                                         "unused_file": 1}  # fmt: skip
        assert {loc for loc, _, _ in summary.examples} == {
            f"{FIXTURES}/stackexchange/{name}" for name in
            ("Comments.xml:row 3", "Posts.xml:row 3", "Users.xml:row 5")
        }  # fmt: skip
        assert accounted(summary)

    def test_a_truncated_file_breaks_where_it_was_cut(self, tmp_path: Path) -> None:
        """A dump cut short: the rows before are read and sent, the file is broken at the line
        and column of the cut, and no skip stands for it."""
        text = (FIXTURES / "stackexchange" / "Comments.xml").read_text()
        cut = text.index('<row Id="102"') + 20
        (tmp_path / "Comments.xml").write_text(text[:cut])
        summary, sent = imported(StackExchangeAdapter(), tmp_path)
        assert 2 == len(sent)
        [broken] = summary.broken
        line = text[:cut].count("\n") + 1
        assert (str(tmp_path / "Comments.xml"), 2) == (broken.path, broken.records_before)
        assert broken.where.startswith(f"line {line}, column ")
        assert "not well-formed" in broken.detail
        assert not summary.skipped

    @given(user=st.integers(1, 10**9), post=st.integers(1, 10**9), when=instants,
           question=st.booleans())  # fmt: skip
    def test_round_trip(self, user: int, post: int, when: datetime, question: bool) -> None:
        """A post's owner, creation time (UTC, milliseconds, no offset) and type."""
        created = when.replace(tzinfo=None).isoformat()
        row = {"Id": str(post), "PostTypeId": "1" if question else "2", "ParentId": "7",
               "OwnerUserId": str(user), "CreationDate": created}  # fmt: skip
        (output,) = StackExchangeAdapter().map(SourceRecord("x", ("Posts.xml", row)))
        assert gate(output.record) == (f"se-{user}", epoch_ms(when), "post")


class TestDirectoryCsv:
    def test_an_hr_export_through_a_mapping(self) -> None:
        """Columns mapped, statuses normalised, the export's time as the version; an empty id
        and a bad date skipped with their lines."""
        adapter = DirectoryCsvAdapter(parse_mapping(HR_MAP, FIELDS, ()))
        summary, sent = imported(adapter, FIXTURES / "directory" / "hr-export.csv")
        assert [(p["user_id"], p["status"], p["department"]) for p in sent] == [
            ("ann@contoso.com", "enabled", "Sales"), ("ben@contoso.com", "enabled", "Sales"),
            ("cat@contoso.com", "enabled", "Product"), ("dan@contoso.com", "disabled", "Sales"),
            ("new@contoso.com", "enabled", "Product"),
        ]  # fmt: skip
        assert sent[1]["display_name"] == 'Ben "BJ" Brown'
        mtime = (FIXTURES / "directory" / "hr-export.csv").stat().st_mtime
        assert sent[0]["updated"] == datetime.fromtimestamp(mtime, UTC).isoformat()
        assert {(loc, reason) for loc, reason, _ in summary.examples} == {
            (f"{FIXTURES}/directory/hr-export.csv:line 7", "missing_user"),
            (f"{FIXTURES}/directory/hr-export.csv:line 8", "bad_time"),
        }  # fmt: skip

    def test_memberships_in_the_contract_columns(self) -> None:
        """A file with a community column holds memberships."""
        _, sent = imported(DirectoryCsvAdapter(), FIXTURES / "directory" / "memberships.csv")
        assert [(m["kind"], m["user_id"], m["role"]) for m in sent] == [
            ("membership", "ann@contoso.com", "owner"), ("membership", "ben@contoso.com", "member"),
        ]  # fmt: skip

    @given(user=ids, when=instants, enabled=st.booleans())
    def test_round_trip(self, user: str, when: datetime, enabled: bool) -> None:
        """User, creation and status survive the directory gate."""
        row = {"user_id": user, "created": when.isoformat(), "status": "yes" if enabled else "no"}
        (output,) = DirectoryCsvAdapter().map(SourceRecord("x", (row, "2026-01-01T00:00:00+00:00")))
        profile = decode_directory(jsonutil.dumps(output.record), user.encode())
        assert (profile.user_id, epoch_ms(profile.created), profile.status) == (
            user, epoch_ms(when), "enabled" if enabled else "disabled",
        )  # fmt: skip


class TestProgressAndSummary:
    def test_the_bar_and_the_sentence(self) -> None:
        """Bytes, records, rate and time left; the summary names reasons and locations."""
        line = render(ByteMeter(total=4096, done=1024), 3000, 2.0)
        assert line.startswith("[" + "#" * 8 + "." * 22 + "]  25%")
        assert "1.0 KB/4.0 KB" in line and "3,000 records" in line and "1,500/s" in line
        assert "ETA 00:00:06" in line
        summary, _ = imported(StackExchangeAdapter(), FIXTURES / "stackexchange")
        text = summary_text(summary)
        assert text.startswith("15 records read: 7 mapped (8 activity events, 3 directory")
        assert "Posts.xml:row 3  missing_actor" in text

    def test_gzip_bytes_are_counted_compressed(self, tmp_path: Path) -> None:
        """The meter counts what is read from disk, so its total is the files' sizes."""
        path = tmp_path / "day.json.gz"
        raw = io.BytesIO()
        with gzip.GzipFile(fileobj=raw, mode="wb") as handle:
            handle.write(b'{"date": "2026-01-02", "user_id": "U1", "is_active": true}\n' * 500)
        path.write_bytes(raw.getvalue())
        meter = ByteMeter(total=path.stat().st_size)
        summary = asyncio.run(run_import(SlackAnalyticsAdapter(), [path], None, meter=meter))
        assert summary.activity_events == 500 and meter.done == meter.total


class TestDemoDump:
    def test_the_made_up_dump_reads_clean_and_is_reproducible(self, tmp_path: Path) -> None:
        """make demo-real's dump: the documented format, nothing skipped, same seed same files."""
        end = datetime(2026, 6, 30, 12, 0)
        rows = write_dump(tmp_path / "a", users=40, days=90, end=end, seed=3)
        write_dump(tmp_path / "b", users=40, days=90, end=end, seed=3)
        for name in rows:
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        summary, sent = imported(StackExchangeAdapter(), tmp_path / "a")
        assert summary.skipped == {} and len(directory(sent)) == rows["Users.xml"] == 40
        assert len(activity(sent)) == 40 + rows["Posts.xml"] + rows["Comments.xml"]
        assert max(e["time"] for e in activity(sent)) <= "2026-06-30T12:00:00+00:00"
