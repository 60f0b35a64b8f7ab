"""Which files ``esn-pulse import DIR`` reads: the format's own, at the top of DIR, by full path."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.adapters.activitystreams import ActivityStreamsAdapter
from stream.adapters.csvgeneric import CsvAdapter
from stream.adapters.files import defines
from stream.adapters.runner import input_files, left_out
from stream.adapters.stackexchange import StackExchangeAdapter
from stream.cli_import import _adapter, expected_files


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


class TestInputFiles:
    def test_only_the_top_of_the_directory_is_read(self, tmp_path: Path) -> None:
        """A dump in a subfolder (another site, whose ids collide) is not read."""
        touch(tmp_path / "Users.xml", tmp_path / "other-site" / "Users.xml",
              tmp_path / "other-site" / "Posts.xml")  # fmt: skip
        patterns = StackExchangeAdapter.file_patterns
        assert [tmp_path / "Users.xml"] == input_files(tmp_path, patterns)
        assert [tmp_path / "other-site"] == left_out(tmp_path, patterns)

    def test_only_the_files_the_format_defines(self, tmp_path: Path) -> None:
        """A README, a 7z archive and a hidden file beside a dump are left out."""
        touch(*(tmp_path / name for name in ("Posts.xml", "Users.xml.gz", "README.txt",
                                             "site.7z", ".Users.xml", "users.xml")))  # fmt: skip
        patterns = StackExchangeAdapter.file_patterns
        assert [tmp_path / "Posts.xml", tmp_path / "Users.xml.gz"] == input_files(
            tmp_path, patterns
        )
        assert ["README.txt", "site.7z", "users.xml"] == [
            p.name for p in left_out(tmp_path, patterns)
        ], "dump names are exact; hidden files are neither read nor listed"

    def test_extensions_match_in_any_case(self, tmp_path: Path) -> None:
        """EXPORT.JSON and a gzipped JSON Lines file are Activity Streams input; a CSV is not."""
        touch(tmp_path / "EXPORT.JSON", tmp_path / "b.jsonl.gz", tmp_path / "c.csv")
        files = input_files(tmp_path, ActivityStreamsAdapter.file_patterns)
        assert ["EXPORT.JSON", "b.jsonl.gz"] == [p.name for p in files]
        assert not defines(CsvAdapter.file_patterns, tmp_path / "a.json")

    def test_a_file_is_read_as_given_by_its_full_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file named on the command line is read whatever its name, located absolutely."""
        touch(tmp_path / "notes.txt")
        monkeypatch.chdir(tmp_path)
        assert [tmp_path / "notes.txt"] == input_files(Path("notes.txt"), ("*.json",))

    @pytest.mark.parametrize("fmt", ["activitystreams", "connections", "m365-audit",
                                     "slack-audit", "slack-analytics", "graph-usage",
                                     "stackexchange", "csv", "scim", "directory-csv"])  # fmt: skip
    def test_every_format_says_which_files_it_reads(self, fmt: str) -> None:
        """Each adapter declares its patterns, each also gzipped, and says them in words."""
        mapping = "time=a,actor=b,type=c" if fmt == "csv" else None
        adapter = _adapter(fmt, mapping, "userName", "email")
        patterns = adapter.file_patterns
        assert patterns and all(f"{p}.gz" in patterns for p in patterns if not p.endswith(".gz"))
        assert expected_files(patterns).endswith(", each may be .gz")
