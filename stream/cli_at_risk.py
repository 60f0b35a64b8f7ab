"""``esn-pulse at-risk``: the regulars whose silence is far past their usual rhythm (issue 16), as
an aligned table, CSV, or the JSON of /api/v1/at-risk (built by the API's own response model)."""

from __future__ import annotations

import asyncio
import csv
import sys
from typing import Any

import click

from stream import jsonutil
from stream.cli_inactive import ROLES, roles_text, spreadsheet_safe
from stream.cli_tables import plural, table
from stream.settings import get_settings

MS_PER_DAY = 86_400_000


def as_api_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row as one page of /api/v1/at-risk, through the API's response model."""
    from stream.api.models import AtRisk

    page = AtRisk.model_validate(
        {"total": len(rows), "offset": 0, "limit": len(rows), "next_offset": None, "users": rows}
    )
    return page.model_dump(mode="json", by_alias=True)


def table_lines(rows: list[dict[str, Any]], now_ms: int) -> list[str]:
    """The aligned table and its count line: user, since, rhythm, last seen, department, roles."""
    header = ("user", "at risk since", "active days", "usual gap (d)", "last seen", "department",
              "community roles")  # fmt: skip
    body = [
        (
            r["user_id"],
            (r["at_risk_since"] or "-")[:10],
            r["rhythm"]["active_days"],
            r["rhythm"]["usual_gap_days"] or "-",
            (r["last_seen"] or "never")[:10],
            r["department"] or "-",
            roles_text(r["communities"]),
        )
        for r in rows
    ]
    lines = table(header, body) if body else []
    lines.append(f"{plural(len(rows), 'user')} at risk at {_day(now_ms)}")
    return lines


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def _write_csv(rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(["user_id", "at_risk_since", "active_days", "window_days", "usual_gap_days",
                     "last_seen", "department", *ROLES])  # fmt: skip
    for r in rows:
        rhythm = r["rhythm"]
        cells = [r["user_id"], r["at_risk_since"] or "", str(rhythm["active_days"]),
                 str(rhythm["window_days"]), str(rhythm["usual_gap_days"] or ""),
                 r["last_seen"] or "", r["department"] or "",
                 *(" ".join(r["communities"].get(role, [])) for role in ROLES)]  # fmt: skip
        writer.writerow([spreadsheet_safe(cell) for cell in cells])


@click.command("at-risk")
@click.option("--community", default=None, help="Only users with a role in this community.")
@click.option("--department", default=None, help="Only users of this department.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: /api/v1/at-risk's.")
def at_risk(community: str | None, department: str | None, output: str, as_json: bool) -> None:
    """The users at risk right now (silent for far longer than their usual gap), newest first."""
    from stream.analytics.at_risk import at_risk_rows
    from stream.analytics.days import clock_now_ms
    from stream.cli_params import configured_definitions
    from stream.queries import at_risk_users
    from stream.store import RedisStore

    if as_json and output == "csv":
        raise click.UsageError("choose one of --json and --format csv")
    settings = get_settings()
    definitions = configured_definitions(settings)

    async def read() -> tuple[list[dict[str, Any]], int]:
        store = RedisStore.from_settings(settings)
        try:
            flagged = await at_risk_users(store, definitions)
            rows = await at_risk_rows(store, flagged, department=department, community=community)
            return rows, await clock_now_ms(store, settings)
        finally:
            await store.close()

    rows, now_ms = asyncio.run(read())
    if as_json or output == "json":
        click.echo(jsonutil.dumps(as_api_json(rows)).decode())
    elif output == "csv":
        _write_csv(rows)
    else:
        click.echo("\n".join(table_lines(rows, now_ms)))


def register(main: click.Group) -> None:
    """Add ``at-risk`` to the ``esn-pulse`` group."""
    main.add_command(at_risk)
