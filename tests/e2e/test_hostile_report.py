"""The HTML report with hostile community and item ids, as headless Chromium runs it.

An id like ``<!--<script`` inside the report's JSON script element would keep that element's end
tag from ending it (the HTML parser's "double escaped" state) and swallow the page; ``</script>``
would end it early. The data must come through as text, and every chart must still be drawn.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stream.report.build import render, script_json

pytestmark = pytest.mark.e2e

HOSTILE = [
    "<!--<script",
    "</script><script>document.title='owned'</script>",
    "<img src=x onerror=alert(1)>",
    "a & b &amp; \u2028 \u2029 \\u003c",
    "--><!--",
]


def report_data(ids: list[str]) -> dict[str, Any]:
    """The figures the report's page reads, with ``ids`` as community and item ids."""
    days = ["2026-05-01", "2026-05-02"]
    series = {name: [3, 4] for name in ("dau", "wau", "mau", "new", "returning")}
    tiers = {"registered": 9, "active": 5, "participating": 3, "contributing": 1}
    return {
        "title": "ESN Pulse engagement report <b>",
        "from": days[0],
        "to": days[-1],
        "generated": "2026-05-02T12:00:00.000+00:00",
        "days": days,
        "series": {**series, "stickiness": [0.2, 0.3]},
        "summary": {
            "users": {"enabled": 9, "never_active": 1, "inactive": {"30d": 2}},
            "active": {"1d": 3, "7d": 5, "30d": 6},
            "stickiness": 0.25,
            "communities": {"orphaned": 1, "idle": 1},
            "tiers": {"7d": tiers, "30d": tiers},
        },
        "content": {
            "by_type_and_object": [{"type": t, "object_type": "post", "events": 2} for t in ids],
            "by_day": [{"counts": {t: 1 for t in ids}} for _ in days],
        },
        "communities": {
            "counts": {"healthy": 1, "idle": 1, "orphaned": 1},
            "worst": [
                {"community": c, "people": 6, "active_members": 2, "health": 0.5, "orphaned": True}
                | {"idle": False}
                for c in ids
            ],
        },
        "initiatives": [],
        "top_items": {"items": [{"item": f"post:{i}", "interactions": 5} for i in ids]},
        "min_group_size": 5,
        "at_risk": {
            "count": len(ids),
            "people": [
                {
                    "user_id": i,
                    "at_risk_since": "2026-05-01T09:00:00.000+00:00",
                    "active_days": 20,
                    "usual_gap_days": 2.8,
                    "last_seen": None,
                    "department": i,
                    "roles": i,
                }
                for i in ids
            ],
        },
    }


class TestScriptJson:
    def test_no_markup_character_is_left_and_the_value_is_the_same(self) -> None:
        """No <, > or & in the embedded JSON; parsing it gives the data back unchanged."""
        data = report_data(HOSTILE)
        embedded = script_json(data)
        assert not {"<", ">", "&"} & set(embedded)
        assert data == json.loads(embedded)

    def test_the_title_is_escaped_as_html(self) -> None:
        """Text substituted into the page's markup is HTML-escaped."""
        page = render(report_data(HOSTILE))
        assert "engagement report &lt;b&gt;" in page.split("<script>")[0]


class TestInChromium:
    def test_hostile_ids_are_text_and_every_chart_is_drawn(self, tmp_path: Path) -> None:
        """Chromium runs the page to its end: tables hold the ids as text, no injected element."""
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        assert chromium, "Debian's chromium is installed by make install"
        out = tmp_path / "report.html"
        data = report_data(HOSTILE)
        data["departments"] = {i: {"enabled": 6, "active": 4, "at_risk": 2} for i in HOSTILE}
        out.write_text(render(data))
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000",
             "--dump-dom", out.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        html_tag = dom.stdout.index("<html")
        head = dom.stdout[html_tag : dom.stdout.index(">", html_tag) + 1]
        assert 'data-charts-total="' in head, dom.stderr[-2000:]
        total = int(head.split('data-charts-total="')[1].split('"')[0])
        drawn = int(head.split('data-charts-drawn="')[1].split('"')[0])
        assert (10, 10) == (total, drawn), head  # ten without initiatives, departments drawn
        body = dom.stdout.split("<tbody>", 1)[1]
        for hostile in HOSTILE:
            # As text, the DOM serialises it with <, > and & escaped.
            text = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert f"<td>{text}</td>" in body, hostile
            assert f"<td>post:{text}</td>" in body, hostile
        assert "<img src" not in dom.stdout and "owned" not in dom.stdout.split("<body")[0]
        at_risk = dom.stdout.split('id="at-risk-people"', 1)[1].split("</section>", 1)[0]
        for hostile in HOSTILE:
            text = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert 3 == at_risk.count(f"<td>{text}</td>"), hostile  # user, department, roles
