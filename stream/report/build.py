"""Collect a period's figures and render them into one HTML file that opens offline.

The figures come from the same read models as the API; the charts are drawn by Chart.js, inlined
from stream/report/vendor (MIT), so the file needs no network. Each chart element gets
``data-rendered`` ("drawn" once its canvas holds pixels, "empty" when the period has no data for
it), and ``<html data-charts-drawn>`` counts the drawn ones, which the tests read from Chromium.
With ``people`` the report also names who to contact (docs/operations/report.md).
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Any

from stream import jsonutil
from stream.analytics import views
from stream.analytics.days import day_of_ms, iso_day, iso_time
from stream.analytics.initiatives import list_initiatives
from stream.analytics.trends import trend
from stream.flags.machine import Definitions
from stream.nudge.effect import DAY_MS, effect
from stream.report.at_risk import at_risk_section
from stream.report.contacts import as_csv, as_rows, contacts
from stream.report.headline import headline
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore

_PACKAGE = resources.files("stream.report")
_TREND_SERIES = ("dau", "wau", "mau", "stickiness", "new", "returning", "participating",
                 "contributing", "events")  # fmt: skip


async def collect(
    store: RedisStore,
    settings: Settings,
    definitions: Definitions,
    first: int,
    last: int,
    now_ms: int,
    people: bool = False,
) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able data (people named only with ``people``)."""
    days = [iso_day(d) for d in range(first, last + 1)]
    today = day_of_ms(now_ms)  # the engine's clock's day: not over, its figures still growing
    series = {m: await trend(store, m, first, last) for m in _TREND_SERIES}
    summary = await views.summary(store, settings, definitions, now_ms)
    content = await views.content_view(store, first, last)
    communities = await views.communities_view(store, settings, definitions, now_ms, "all")
    worst = sorted(
        communities["communities"],
        key=lambda c: (not c["orphaned"], not c["idle"], c["health"] or 0.0, c["community"]),
    )[:15]
    initiatives = [
        await views.initiative_view(store, settings, i.name, now_ms)
        for i in await list_initiatives(store)
    ]
    top = await views.top_view(store, "week", min(last, day_of_ms(now_ms)), 10)
    contact_rows = await contacts(store, settings, definitions, now_ms) if people else None
    return {
        "title": "ESN Pulse engagement report",
        "from": iso_day(first),
        "to": iso_day(last),
        "generated": iso_time(now_ms),
        "days": days,
        "partial_day": iso_day(today) if first <= today <= last else None,
        "series": series,
        "summary": summary,
        "content": content,
        "communities": {"counts": communities["counts"], "worst": worst},
        "initiatives": initiatives,
        "top_items": top,
        "headline": await headline(store, settings, first, last, now_ms),
        "nudges": effect(
            await NudgeStore(store).effect_entries(),
            now_ms,
            first * DAY_MS,
            (last + 1) * DAY_MS - 1,
            minimum=settings.min_group_size,
        ),
        "departments": summary["departments"],
        "at_risk": await at_risk_section(store, definitions, people),
        "min_group_size": settings.min_group_size,
        "contacts": None if contact_rows is None else as_rows(contact_rows, now_ms),
        "contacts_csv": None if contact_rows is None else as_csv(contact_rows, now_ms),
    }


def render(data: dict[str, Any]) -> str:
    """The report's HTML: template, inlined Chart.js and the data as JSON."""
    template = Template(_PACKAGE.joinpath("template.html").read_text())
    chart_js = _PACKAGE.joinpath("vendor", "chart.umd.min.js").read_text()
    return template.substitute(
        title=html.escape(data["title"]),
        period=html.escape(f"{data['from']} to {data['to']}"),
        chartjs=chart_js,
        data=script_json(data),
    )


def script_json(data: Any) -> str:
    """JSON that cannot leave the script element it is embedded in.

    "</script" would end the element and "<!--" followed by "<script" would keep its real end tag
    from ending it; escaping every "<", ">" and "&" as a JSON unicode escape (only strings hold
    them) leaves the same value for JSON.parse and no markup for the HTML parser.
    """
    text = jsonutil.dumps(data).decode()
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
