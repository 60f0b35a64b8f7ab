"""Dead letters as data: hostile headers decoded, deduplication, selection, the summary, the doc."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stream.dlq import UNKNOWN_REASON, DeadLetter, Deduplicator, DlqSummary, Selection
from stream.events import INVALID_REASONS
from stream.topics import DLQ_EXCEPTION, dlq_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations" / "dead-letters.md"


@dataclass
class Record:
    """The parts of aiokafka's ConsumerRecord that a dead letter reads."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def letter(
    offset: int, reason: str = "not_json", source: int | None = None, at: int = 0
) -> DeadLetter:
    headers = dlq_headers(reason, "d", "t.esn.activity.v1", 1, offset if source is None else source)
    return DeadLetter.from_record(Record(0, offset, at, b"k", b"v", headers))


class TestFromRecord:
    def test_worker_headers_are_read(self) -> None:
        """Reason, detail, source coordinates and exception class come from the headers."""
        headers = dlq_headers("internal_error", "boom", "t.esn.activity.v1", 4, 17, "KeyError")
        dead = DeadLetter.from_record(Record(2, 9, 1000, None, b"x", headers))
        assert ("internal_error", "boom", ("t.esn.activity.v1", 4, 17), "KeyError") == (
            dead.reason, dead.detail, dead.source, dead.exception
        )  # fmt: skip

    def test_missing_or_hostile_headers_do_not_raise(self) -> None:
        """No reason reads as unknown; an unparsable or negative coordinate means no source."""
        bare = DeadLetter.from_record(Record(0, 3, 0, None, None, []))
        assert (UNKNOWN_REASON, None, None) == (bare.reason, bare.source, bare.exception)
        hostile = dlq_headers("bad_field", "x", "t", 1, 2)
        hostile[3] = (hostile[3][0], b"\xff\xfe")
        assert DeadLetter.from_record(Record(0, 3, 0, None, None, hostile)).source is None
        negative = dlq_headers("bad_field", "x", "t", 1, -5)
        assert DeadLetter.from_record(Record(0, 3, 0, None, None, negative)).source is None
        empty_exception = [*dlq_headers("x", "y", "t", 1, 2), (DLQ_EXCEPTION, b"")]
        assert (
            DeadLetter.from_record(Record(0, 3, 0, None, None, empty_exception)).exception is None
        )


class TestDeduplication:
    def test_a_record_dead_lettered_twice_is_kept_once(self) -> None:
        """Same source coordinates: the first is kept, the later one counted as a duplicate."""
        dedupe = Deduplicator()
        letters = [letter(0, source=7), letter(1, source=3), letter(2, source=7)]
        assert [True, True, False] == [dedupe.first_time(dead) for dead in letters]
        assert 1 == dedupe.duplicates

    def test_letters_without_source_are_each_their_own(self) -> None:
        """No source headers: identity is the DLQ position, so nothing is merged."""
        dedupe = Deduplicator()
        bare = [DeadLetter.from_record(Record(n % 2, n, 0, None, b"v", [])) for n in range(3)]
        assert [True, True, True] == [dedupe.first_time(dead) for dead in bare]


class TestSelectionAndSummary:
    def test_selection_by_reason_and_time(self) -> None:
        """Reasons filter (empty: all) and since_ms is inclusive."""
        letters = [letter(0, "not_json", at=10), letter(1, "bad_time", at=20), letter(2, at=30)]

        def chosen(selection: Selection) -> list[int]:
            return [dead.offset for dead in letters if selection.matches(dead)]

        assert [1] == chosen(Selection(frozenset({"bad_time"})))
        assert [1, 2] == chosen(Selection(since_ms=20))
        assert [2] == chosen(Selection(frozenset({"not_json"}), since_ms=20))
        assert [0, 1, 2] == chosen(Selection())

    def test_summary_counts_per_reason_with_first_and_last(self) -> None:
        """Counts, first/last write times per reason, and the distinct source records."""
        letters = [letter(0, at=50), letter(1, "bad_time", at=5), letter(2, at=10, source=0)]
        summary = DlqSummary.of(letters)
        assert (3, 2) == (summary.total, summary.distinct)
        assert ["not_json", "bad_time"] == list(summary.reasons)
        figures = summary.reasons["not_json"]
        assert (2, 10, 50) == (figures.count, figures.first_ms, figures.last_ms)


def test_the_doc_lists_every_reason() -> None:
    """docs/operations/dead-letters.md has a row for each of stream.events.INVALID_REASONS."""
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.MULTILINE))
    assert set(INVALID_REASONS) <= rows
