"""The report's page on its own, in headless Chromium: the checks the pipeline test relies on can
fail, every series of a chart has its own colour (past the palette's twelve too), every chart
with axes names them, and a chart without data is a "no data for this period" line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stream.report.build import _PACKAGE, render
from tests.chromium import open_page, png_pixels
from tests.e2e.test_hostile_report import report_data

pytestmark = pytest.mark.e2e


class TestTheChecksCanFail:
    def test_a_console_error_and_an_uncaught_exception_are_seen(self, tmp_path: Path) -> None:
        """console.error and a TypeError both reach Page.console (from each of the two runs)."""
        page = tmp_path / "bad.html"
        page.write_text('<html><body><script>console.error("boom"); null.x;</script></body></html>')
        console = open_page(page, tmp_path, height=600).console
        assert 4 == len(console), console
        assert '"boom"' in console[0] and "Uncaught TypeError" in console[1]
        assert console[:2] == console[2:]

    def test_a_blank_page_has_one_colour(self, tmp_path: Path) -> None:
        """The screenshot of an empty page is one colour: the not-blank check would fail on it."""
        page = tmp_path / "blank.html"
        page.write_text("<html><body></body></html>")
        _, _, colours = png_pixels(open_page(page, tmp_path, height=600).png)
        assert 1 == len(colours), colours.most_common(3)


class TestChartsOfThePage:
    def test_twenty_series_get_twenty_colours_and_empty_charts_say_so(self, tmp_path: Path) -> None:
        """20 event types: 20 colours in the doughnut and the stacked bars; no departments and
        no tiers data: a line instead of the chart; no console message."""
        data = report_data([f"type-{i:02d}" for i in range(20)])
        data["summary"]["tiers"] = {}
        out = tmp_path / "report.html"
        out.write_text(render(data))
        page = open_page(out, tmp_path)
        assert [] == page.console
        colours = {
            chart: json.loads(listed.replace("&quot;", '"'))
            for chart, listed in re.findall(
                r'data-chart="([^"]*)" data-colours="([^"]*)"', page.dom
            )
        }
        for chart in ("chart-mix", "chart-content-days"):
            assert 20 == len(set(colours[chart])), colours[chart]
        empty = re.findall(
            r'<p class="empty" data-chart="([^"]*)" data-rendered="empty">', page.dom
        )
        assert {"chart-departments", "chart-tiers"} == set(empty)
        assert "no data for this period" in page.dom
        assert "2" == page.html_attribute("data-charts-empty")

    def test_every_chart_with_axes_titles_both(self) -> None:
        """Each line or bar chart call in the template passes axes(x title, y title)."""
        template = _PACKAGE.joinpath("template.html").read_text()
        calls = list(re.finditer(r'chart\((?:"[^"]+"|canvas\.id), \{ type: "(line|bar)"', template))
        assert len(calls) >= 9
        for call in calls:
            rest = template[call.end() : template.index("});", call.end())]
            assert re.search(r'options: axes\("[^"]+", "[^"]+"', rest), rest[:200]
