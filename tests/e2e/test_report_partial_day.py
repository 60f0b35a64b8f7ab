"""The report marks a partial day in headless Chromium: a note naming it, nothing when none."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stream.report.build import render
from tests.e2e.test_hostile_report import report_data

pytestmark = pytest.mark.e2e


def run_page(page: str, work: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's stderr (console messages)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by make install"
    out = work / "report.html"
    out.write_text(page)
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={work / 'chromium'}", "--virtual-time-budget=10000",
         "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout, done.stderr


def partial_note(dom: str) -> str:
    """The header's partial-day note as serialised (its attributes and text)."""
    start = dom.index('<div class="partial" id="partial-note"')
    return dom[start : dom.index("</div>", start)]


class TestPartialDayInChromium:
    def test_the_partial_day_is_named_and_every_chart_drawn(self, tmp_path: Path) -> None:
        """With today in the period, the note says which day is partial; no console error."""
        data = report_data(["post-1"])
        data["partial_day"] = data["days"][-1]
        dom, stderr = run_page(render(data), tmp_path)
        note = partial_note(dom)
        assert "hidden" not in note
        assert f"{data['days'][-1]} is a partial day" in note
        assert "CONSOLE" not in stderr, stderr[-2000:]
        assert 'data-charts-drawn="9"' in dom.split("<head")[0]

    def test_no_note_without_a_partial_day(self, tmp_path: Path) -> None:
        """A period that ended before today shows no partial-day note."""
        data = report_data(["post-1"])
        data["partial_day"] = None
        dom, stderr = run_page(render(data), tmp_path)
        assert 'hidden=""' in partial_note(dom)
        assert "CONSOLE" not in stderr, stderr[-2000:]
