"""Imports fail loudly: a broken file (cut short, corrupt, not UTF-8) is reported where it broke,
the checkpoint stops past its last good record, and hostile records are counted skips."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from stream import jsonutil
from stream.adapters.activitystreams import ActivityStreamsAdapter
from stream.adapters.base import Output, SourceRecord
from stream.adapters.csvgeneric import CsvAdapter, parse_mapping
from stream.adapters.jsonstream import MAX_RECORD_BYTES, MAX_TOKEN_BYTES
from stream.adapters.runner import ImportSummary, input_files, run_import
from stream.adapters.slack import SlackAuditAdapter
from stream.adapters.stackexchange import StackExchangeAdapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


def like(number: int) -> dict[str, Any]:
    return {"id": f"a{number}", "type": "Like", "actor": f"u{number}",
            "published": "2026-03-01T10:00:00Z", "object": "https://esn.example/n/1"}  # fmt: skip


def line(number: int) -> str:
    return json.dumps(like(number))


class ListSink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, output: Output, payload: bytes) -> None:
        self.sent.append(jsonutil.loads(payload))

    async def flush(self) -> None:
        return None


def imported(adapter: Any, *paths: Path, **options: Any) -> tuple[ImportSummary, list[str]]:
    """The summary, and the ids (or user ids) sent."""
    sink = ListSink()
    files = [f for path in paths for f in input_files(path)]
    summary = asyncio.run(run_import(adapter, files, sink, **options))
    return summary, [event.get("id") or event["user_id"] for event in sink.sent]


def as2(path: Path, **options: Any) -> tuple[ImportSummary, list[str]]:
    return imported(ActivityStreamsAdapter(), path, **options)


def where_of(summary: ImportSummary) -> str:
    [broken] = summary.broken
    return broken.where


class TestBrokenFiles:
    def test_a_json_document_cut_short(self, tmp_path: Path) -> None:
        """A single-line collection cut mid-record: the whole records before it are sent, the
        break is at the end of the data, by byte."""
        text = json.dumps({"type": "Collection", "items": [like(n) for n in range(50)]})
        cut = text.index('"a30"') + 3
        (tmp_path / "page.json").write_text(text[:cut])
        summary, sent = as2(tmp_path / "page.json")
        assert [f"a{n}" for n in range(30)] == sent
        [broken] = summary.broken
        assert (f"byte {cut:,}", 30) == (broken.where.split(" (")[0], broken.records_before)
        assert "cut short" in broken.detail

    def test_invalid_json_is_located_to_its_byte_line_and_column(self, tmp_path: Path) -> None:
        """A bad token in a pretty-printed document: exact byte, line and column."""
        text = json.dumps({"orderedItems": [like(n) for n in range(40)]}, indent=2)
        at = text.index('"Like"', text.index('"a25"'))
        (tmp_path / "page.json").write_text(text[:at] + "Like" + text[at + 6 :])
        summary, sent = as2(tmp_path / "page.json")
        assert 25 == len(sent)
        line_number = text[:at].count("\n") + 1
        column = at - text[:at].rindex("\n")
        assert f"byte {at:,} (line {line_number:,}, column {column:,})" == where_of(summary)

    def test_the_last_line_of_json_lines_cut_short(self, tmp_path: Path) -> None:
        """A bad line in the middle is a skip; a last line cut short (no newline) breaks it."""
        body = f"{line(1)}\nnot json\n{line(2)}\n{line(3)[:25]}"
        (tmp_path / "a.jsonl").write_text(body)
        summary, sent = as2(tmp_path / "a.jsonl")
        assert (["a1", "a2"], {"not_json": 1}) == (sent, dict(summary.skipped))
        assert f"byte {len(body):,}" == where_of(summary).split(" (")[0]

    def test_a_truncated_gzip(self, tmp_path: Path) -> None:
        """gzip cut short: the records decompressed whole are sent, located after the last."""
        data = gzip.compress("".join(line(n) + "\n" for n in range(3000)).encode())
        (tmp_path / "a.jsonl.gz").write_bytes(data[: len(data) // 2])
        summary, sent = as2(tmp_path / "a.jsonl.gz")
        [broken] = summary.broken
        assert 0 < len(sent) < 3000 and broken.records_before == len(sent)
        assert f"after record {len(sent):,} (a.jsonl.gz:{len(sent)})" == broken.where
        assert "cut short" in broken.detail

    def test_a_gzip_crc_error(self, tmp_path: Path) -> None:
        """A corrupt gzip trailer: every record was read, the file is still broken."""
        data = bytearray(gzip.compress("".join(line(n) + "\n" for n in range(10)).encode()))
        data[-6] ^= 0xFF
        (tmp_path / "a.jsonl.gz").write_bytes(bytes(data))
        summary, _ = as2(tmp_path / "a.jsonl.gz")
        assert "CRC" in summary.broken[0].detail

    def test_csv_ending_inside_a_quoted_field(self, tmp_path: Path) -> None:
        """An open quote at the end of the file breaks it on the line it opened; a row with
        bad quoting before it is one skip."""
        (tmp_path / "a.csv").write_text(
            'When,Who,What\n2026-03-01T10:00:00Z,a,"x"y\n2026-03-01T10:00:00Z,b,login\n'
            '2026-03-02T10:00:00Z,"c,login\n2026-03-03T10:00:00Z,d,login\n'
        )  # fmt: skip
        adapter = CsvAdapter(parse_mapping("time=When,actor=Who,type=What,id=Who"))
        summary, sent = imported(adapter, tmp_path / "a.csv")
        assert (["b"], {"bad_csv": 1}) == (sent, dict(summary.skipped))
        [broken] = summary.broken
        assert ("line 5", 2) == (broken.where, broken.records_before)
        assert "opened on line 4" in broken.detail

    def test_bytes_that_are_not_utf8(self, tmp_path: Path) -> None:
        """Latin-1 in a CSV: the exact byte, line and column of the first bad byte."""
        text = "When,Who,What\n2026-03-01T10:00:00Z,a,login\n2026-03-01T10:00:00Z,José,login\n"
        data = text.encode("latin-1")
        (tmp_path / "a.csv").write_bytes(data)
        adapter = CsvAdapter(parse_mapping("time=When,actor=Who,type=What"))
        summary, _ = imported(adapter, tmp_path / "a.csv")
        at = data.index(b"\xe9")
        column = at - data.rindex(b"\n", 0, at)
        assert f"byte {at:,} (line 3, column {column:,})" == where_of(summary)

    def test_xml_not_well_formed(self, tmp_path: Path) -> None:
        """A Stack Exchange file with a broken row: line and column of it."""
        (tmp_path / "Comments.xml").write_text(
            '<?xml version="1.0"?>\n<comments>\n'
            '  <row Id="1" PostId="7" UserId="3" CreationDate="2026-03-01T10:00:00" />\n'
            '  <row Id="2" PostId="7" UserId=3 />\n</comments>\n'
        )  # fmt: skip
        summary, sent = imported(StackExchangeAdapter(), tmp_path)
        assert ["se-comment-1"] == sent
        assert where_of(summary).startswith("line 4, column ")


class TestStopOrKeepGoing:
    def folder(self, tmp_path: Path) -> Path:
        (tmp_path / "1.jsonl").write_text(f"{line(1)}\n{line(2)}\n")
        (tmp_path / "2.jsonl").write_text(f"{line(3)}\n{line(4)[:20]}")
        (tmp_path / "3.jsonl").write_text(f"{line(5)}\n")
        return tmp_path

    def test_a_broken_file_stops_the_import(self, tmp_path: Path) -> None:
        """The files after a broken one are not read."""
        summary, sent = as2(self.folder(tmp_path))
        assert (["a1", "a2", "a3"], 1) == (sent, len(summary.broken))
        assert summary.broken[0].path.endswith("2.jsonl")

    def test_keep_going_reads_the_rest(self, tmp_path: Path) -> None:
        """--keep-going: the next files are read; the broken one is still reported, and listed
        in the skipped file with its place."""
        skipped: list[tuple[str, str, str]] = []
        summary, sent = as2(self.folder(tmp_path), keep_going=True,
                            on_skip=lambda *row: skipped.append(row))  # fmt: skip
        assert (["a1", "a2", "a3", "a5"], 1) == (sent, len(summary.broken))
        where = f"byte {len(line(3)) + 21:,}"
        assert [(str(tmp_path / "2.jsonl") + ":" + where, "broken_file")] == [
            (location, reason) for location, reason, _ in skipped
        ]

    def test_the_checkpoint_resumes_past_the_last_good_record(self, tmp_path: Path) -> None:
        """Broken at record 3: the checkpoint holds 2; once the file is whole, a rerun sends
        only what was not sent."""
        path, checkpoint = tmp_path / "a.jsonl", tmp_path / "ckpt"
        whole = "".join(line(n) + "\n" for n in range(1, 6))
        path.write_text(whole[: whole.index('"a3"') + 5])
        first, sent = as2(path, checkpoint=checkpoint)
        assert (["a1", "a2"], 2) == (sent, first.broken[0].records_before)
        assert {str(path.resolve()): 2} == json.loads(checkpoint.read_text())["files"]
        path.write_text(whole)
        second, resent = as2(path, checkpoint=checkpoint)
        assert (["a3", "a4", "a5"], 2, []) == (resent, second.resumed_past, second.broken)


class TestHostileRecords:
    def test_deep_nesting_is_a_skip(self, tmp_path: Path) -> None:
        """100,000 levels, in a document and on a line: too_deep skips, neighbours read."""
        deep = "[" * 100_000 + "]" * 100_000
        (tmp_path / "doc.json").write_text(f'{{"orderedItems": [{line(1)}, {deep}, {line(2)}]}}')
        deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
        (tmp_path / "b.jsonl").write_text(f"{line(3)}\n{deep_object}\n{line(4)}\n")
        summary, sent = as2(tmp_path)
        assert (["a3", "a4", "a1", "a2"], {"too_deep": 2}) == (sent, dict(summary.skipped))
        assert not summary.broken

    def test_a_record_too_large_is_a_skip(self, tmp_path: Path) -> None:
        """A record over the cap in a document, and on a line: too_large, the others read."""
        big = {**like(2), "content": "x" * (MAX_RECORD_BYTES + 10)}
        records = [like(1), big, like(3)]
        (tmp_path / "doc.json").write_text(json.dumps({"orderedItems": records}, indent=1))
        (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        summary, sent = as2(tmp_path)
        assert (["a1", "a3", "a1", "a3"], {"too_large": 2}) == (sent, dict(summary.skipped))

    def test_one_token_past_the_limit_breaks_the_file(self, tmp_path: Path) -> None:
        """A string yajl would hold whole: the file is refused there, not read into memory."""
        huge = {**like(2), "content": "x" * (2 * MAX_TOKEN_BYTES)}
        (tmp_path / "doc.json").write_text(json.dumps({"orderedItems": [like(1), huge]}))
        summary, sent = as2(tmp_path / "doc.json")
        assert ["a1"] == sent and "one JSON token" in summary.broken[0].detail

    def test_nan_and_infinity(self, tmp_path: Path) -> None:
        """NaN is not JSON: a skipped line; in a document, the document is broken where it is.
        Numbers past any time (1e300, 1e400, 10**30) are bad times, not crashes."""
        (tmp_path / "a.jsonl").write_text(f'{line(1)}\n{{"type": "Like", "x": NaN}}\n{line(2)}\n')
        lines, sent = as2(tmp_path / "a.jsonl")
        assert (["a1", "a2"], {"not_json": 1}) == (sent, dict(lines.skipped))
        document = f'[{line(3)}, {{"x": Infinity}}]'
        (tmp_path / "d.json").write_text(document)
        doc, sent = as2(tmp_path / "d.json")
        assert ["a3"] == sent and where_of(doc).startswith(f"byte {document.index('Inf'):,}")
        actor = '"actor": {"type": "user", "user": {"id": "U1", "email": "a@example.com"}}'
        entries = [f'{{"id": "{n}", "action": "user_login", "date_create": {when}, {actor}}}'
                   for n, when in enumerate(("1e300", "1" + "0" * 30, "1e400"))]  # fmt: skip
        (tmp_path / "s.json").write_text('{"entries": [' + ", ".join(entries) + "]}")
        slack, _ = imported(SlackAuditAdapter(), tmp_path / "s.json")
        assert ({"bad_time": 3}, []) == (dict(slack.skipped), slack.broken)

    def test_an_adapter_failing_on_one_record_skips_it(self, tmp_path: Path) -> None:
        """An exception the adapter did not foresee is that record's internal_error skip."""

        class Fragile(ActivityStreamsAdapter):
            def map(self, record: SourceRecord) -> list[Output]:
                if record.raw.get("id") == "a2":
                    raise KeyError("surprise")
                return super().map(record)

        (tmp_path / "a.jsonl").write_text(f"{line(1)}\n{line(2)}\n{line(3)}\n")
        summary, sent = imported(Fragile(), tmp_path / "a.jsonl")
        assert (["a1", "a3"], {"internal_error": 1}) == (sent, dict(summary.skipped))
        assert "KeyError" in summary.examples[0][2]


@pytest.mark.parametrize(("fmt", "name", "key"), [
    ("scim", "scim/scim.json", "Resources"),
    ("activitystreams", "activitystreams/as2-collection.json", "orderedItems"),
    ("m365-audit", "m365/audit-content-blob.json", None),
    ("slack-audit", "slack/audit-logs-page.json", "entries"),
    ("connections", "connections/community-stream.json", "list"),
])  # fmt: skip
def test_fixture_documents_stream_to_the_records_a_whole_parse_gives(
    fmt: str, name: str, key: str | None
) -> None:
    """Every document fixture, streamed, gives the items a whole-document parse has."""
    from stream.cli_import import _adapter

    whole = jsonutil.loads((FIXTURES / name).read_bytes().removeprefix(b"\xef\xbb\xbf"))
    items = whole if key is None else whole[key]
    records: list[Any] = []

    class Recording:
        def __init__(self, adapter: Any) -> None:
            self.adapter, self.name = adapter, adapter.name

        def records(self, path: Path) -> Any:
            for record in self.adapter.records(path):
                records.append(record.raw)
                yield record

        def map(self, record: SourceRecord) -> list[Output]:
            return list(self.adapter.map(record))

    summary, _ = imported(Recording(_adapter(fmt, None, "userName", "email")), FIXTURES / name)
    assert (items, []) == (records, summary.broken)
