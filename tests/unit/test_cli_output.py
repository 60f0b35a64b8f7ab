"""The pure parts of what ``esn-pulse`` prints: aligned tables, counts in words, the one lines of
produce and import."""

from __future__ import annotations

from types import SimpleNamespace

from stream.cli_import import expected_files, nothing_mapped_line
from stream.cli_produce import rejected_line
from stream.cli_tables import plural, printable, table


class TestTable:
    def test_columns_line_up_and_numbers_align_right(self) -> None:
        """Each column as wide as its widest cell; a column of numbers is right-aligned."""
        lines = table(("name", "users", "note"), [("a", 5, "x"), ("longer", 12_345, "yy")])
        assert ["name     users  note", "a            5  x", "longer  12,345  yy"] == lines

    def test_the_last_column_is_not_padded(self) -> None:
        """No trailing spaces after a long last cell's shorter neighbours."""
        lines = table(("a", "roles"), [("x", "owner: c1, c2"), ("y", "-")])
        assert all(line == line.rstrip() for line in lines)

    def test_control_characters_are_escaped(self) -> None:
        """An ESC, a C1 CSI, a newline or a tab in a cell cannot move the cursor or the rows."""
        assert "a\\x1b[2Jb\\x9bc\\x0ad\\x09" == printable("a\x1b[2Jb\x9bc\nd\t")
        [_, row] = table(("name",), [("x\ny",)])
        assert "x\\x0ay" == row

    def test_an_empty_table_is_its_header(self) -> None:
        """No rows: the header alone, left-aligned."""
        assert ["a  b"] == table(("a", "b"), [])


class TestCountsInWords:
    def test_one_and_many(self) -> None:
        """'1 user', '0 users', '2,048 users'."""
        assert ["1 user", "0 users", "2,048 users"] == [plural(n, "user") for n in (1, 0, 2048)]


class TestProduceLine:
    def test_it_counts_names_the_file_and_the_first_lines(self) -> None:
        """How many, of which file, the first five line numbers and how many more."""
        rejected = [(n, "not_json") for n in (3, 7, 9, 10, 11, 12, 40)]
        line = rejected_line("events.jsonl", 1000, rejected)
        assert line == (
            "7 lines of events.jsonl rejected (lines 3, 7, 9, 10, 11 and 2 more, reasons "
            "listed above), 1,000 sent"
        )

    def test_stdin_and_one_line(self) -> None:
        """'-' is stdin; one rejected line is 'line'."""
        line = rejected_line("<stdin>", 0, [(1, "x")])
        assert line.startswith("1 line of stdin rejected (line 1,")


class TestImportLines:
    def test_expected_files_in_words(self) -> None:
        """The patterns without their .gz twins, and a word that those are read too."""
        assert "*.csv, each may be .gz" == expected_files(("*.csv", "*.csv.gz"))
        assert "Users.xml" == expected_files(("Users.xml",))

    def test_nothing_mapped(self) -> None:
        """Records read, none mapped: check --format; none read: the export may be empty."""
        read = nothing_mapped_line(SimpleNamespace(records_read=3), "scim", 1)
        assert read.startswith("esn-pulse: nothing imported: 3 records read from 1 file, none ")
        assert "--format" in read
        empty = nothing_mapped_line(SimpleNamespace(records_read=0), "scim", 2)
        assert "no record in 2 files" in empty and "not empty" in empty
