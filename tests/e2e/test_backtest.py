"""``esn-pulse backtest`` as a user runs it, on a small generated history written to files, the
same history generated in the command, and a Stack Exchange dump: the figures are the pure
replay's, whichever way the history comes in. No server is needed (or asked)."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from stream.backtest_history import generated
from stream.flags.backtest import backtest
from stream.flags.machine import definitions_from
from stream.sedump import write_dump
from stream.settings import Settings
from tests.e2e.test_cli_errors import nowhere, one_line_error, run_cli

__all__ = ["nowhere"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.e2e

USERS, DAYS, SEED, START = 400, 150, 3, "2026-01-05"


@pytest.fixture(scope="module")
def history_files(tmp_path_factory: pytest.TempPathFactory, nowhere: Settings) -> list[Path]:
    """The generator's activity and directory, written by ``esn-pulse generate``."""
    folder = tmp_path_factory.mktemp("history")
    events, directory = folder / "events.jsonl", folder / "directory.jsonl"
    done = run_cli(nowhere, "generate", "--users", str(USERS), "--days", str(DAYS),
                   "--seed", str(SEED), "--start", START, "--out", str(events),
                   "--directory-out", str(directory))  # fmt: skip
    assert 0 == done.returncode, done.stderr
    return [events, directory]


def figures(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


class TestBacktest:
    def test_files_and_the_generator_give_the_pure_replays_figures(
        self, nowhere: Settings, history_files: list[Path]
    ) -> None:
        """The generated files, the generator in the command and the pure replay agree."""
        from_files = figures(run_cli(nowhere, "backtest", *map(str, history_files), "--json"))
        spec = f"{USERS}:{DAYS}:{SEED}"
        in_command = figures(run_cli(nowhere, "backtest", "--generated", spec, "--start", START,
                                     "--json"))  # fmt: skip
        changes, _ = generated(USERS, DAYS, SEED, date.fromisoformat(START), None)
        expected, replayed = backtest(changes, definitions_from(nowhere))
        assert from_files["rules"] == in_command["rules"]
        assert from_files["history"] == in_command["history"]
        rule = from_files["rules"][0]
        assert {k: v for k, v in expected.as_json().items()} == {
            k: rule[k] for k in expected.as_json()
        }
        assert replayed.people == from_files["history"]["people"]
        # A history of 150 days of 400 people has warnings and lapses to score.
        assert rule["warnings"] > 0 and rule["inactive"] > 0

    def test_the_text_report_and_a_grid(self, nowhere: Settings, history_files: list[Path]) -> None:
        """One rule: the four figures in words; a grid: a row per combination."""
        one = run_cli(nowhere, "backtest", *map(str, history_files), "--horizon-days", "40")
        assert 0 == one.returncode, one.stderr
        for words in ("precision", "recall", "median lead time", "per 1,000 people per week",
                      "horizon 40 days"):  # fmt: skip
            assert words in one.stdout
        grid = run_cli(nowhere, "backtest", *map(str, history_files), "--active-days", "8,16",
                       "--gap-factor", "2,3", "--json")  # fmt: skip
        rows = figures(grid)["rules"]
        assert [(8, 2.0), (8, 3.0), (16, 2.0), (16, 3.0)] == [
            (r["active_days"], r["gap_factor"]) for r in rows
        ]
        # Fewer active days and a shorter silence can only flag more people, never fewer.
        assert rows[0]["warnings"] >= rows[1]["warnings"] >= rows[3]["warnings"]

    def test_a_stack_exchange_dump(self, nowhere: Settings, tmp_path: Path) -> None:
        """The importer's stackexchange format: profiles from Users.xml, activity from posts."""
        write_dump(tmp_path, users=300, days=300, seed=5)
        rule = figures(run_cli(nowhere, "backtest", "--format", "stackexchange", str(tmp_path),
                               "--json"))  # fmt: skip
        assert rule["history"]["people"] >= 250
        assert rule["rules"][0]["inactive"] > 0

    def test_nothing_to_replay_is_one_line(self, nowhere: Settings, tmp_path: Path) -> None:
        """A file of no usable record: exit 1 and one line saying what to check."""
        empty = tmp_path / "nothing.jsonl"
        empty.write_text('{"not": "an event"}\n')
        result = run_cli(nowhere, "backtest", str(empty))
        line = one_line_error(result)
        assert 1 == result.returncode
        assert "nothing" in line or "no activity" in line

    def test_a_broken_dump_is_one_line_naming_the_file(
        self, nowhere: Settings, tmp_path: Path
    ) -> None:
        """A Posts.xml cut short: exit 1 naming the file, no traceback."""
        write_dump(tmp_path, users=20, days=30, seed=1)
        posts = tmp_path / "Posts.xml"
        posts.write_bytes(posts.read_bytes()[:-300])
        result = run_cli(nowhere, "backtest", "--format", "stackexchange", str(tmp_path))
        line = one_line_error(result)
        assert 1 == result.returncode
        assert "Posts.xml" in line

    def test_the_at_risk_flag_off_is_one_line(
        self, nowhere: Settings, history_files: list[Path]
    ) -> None:
        """ESN_AT_RISK_ACTIVE_DAYS=0 and no --active-days: nothing to score, exit 1."""
        result = run_cli(nowhere, "backtest", str(history_files[0]),
                         env={"ESN_AT_RISK_ACTIVE_DAYS": "0"})  # fmt: skip
        line = one_line_error(result)
        assert 1 == result.returncode
        assert "ESN_AT_RISK_ACTIVE_DAYS" in line
