"""``esn-pulse inactive``: the users flagged right now, as an aligned table, CSV, or the JSON of
/api/v1/inactive (built by the API's own response model, so the two cannot drift apart)."""

from __future__ import annotations

import asyncio
import csv
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from stream import jsonutil
from stream.cli_params import Duration, configured_definitions
from stream.cli_tables import plural, table
from stream.queries import InactiveUser
from stream.settings import get_settings

MS_PER_DAY = 86_400_000
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ROLES = ("owner", "member", "follower")


@dataclass(frozen=True)
class Listing:
    """The flagged users asked for, and the engine's clock they were read at."""

    rows: list[InactiveUser]
    now_ms: int
    flag: str


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a quote."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def as_api_json(rows: list[InactiveUser]) -> dict[str, Any]:
    """Every row as one page of /api/v1/inactive, through the API's response model."""
    from stream.analytics.days import iso_time
    from stream.api.models import Inactive, InactiveRow, Roles

    page = Inactive(
        total=len(rows),
        offset=0,
        limit=len(rows),
        next_offset=None,
        users=[
            InactiveRow(
                user_id=r.user_id,
                flags=r.flags,
                last_seen=iso_time(r.last_seen_ms),
                created=iso_time(r.created_ms),
                department=r.department,
                communities=Roles(**r.roles),
            )
            for r in rows
        ],
    )
    return page.model_dump(mode="json", by_alias=True)


def table_lines(listing: Listing) -> list[str]:
    """The aligned table and its count line: user, last seen, days silent, department, roles."""
    header = ("user", "last seen", "days silent", "department", "community roles")
    body = []
    for r in listing.rows:
        silent_since = r.last_seen_ms if r.last_seen_ms is not None else r.created_ms
        body.append((
            r.user_id,
            _day(r.last_seen_ms) if r.last_seen_ms is not None else "never",
            max(0, (listing.now_ms - silent_since) // MS_PER_DAY),
            r.department or "-",
            roles_text(r.roles),
        ))  # fmt: skip
    lines = table(header, body) if body else []
    lines.append(f"{plural(len(listing.rows), 'user')} {listing.flag} at {_day(listing.now_ms)}")
    return lines


def roles_text(roles: dict[str, list[str]]) -> str:
    """``owner: c1, c2; member: c3``, or ``-``."""
    held = [f"{role}: {', '.join(roles[role])}" for role in ROLES if roles.get(role)]
    return "; ".join(held) or "-"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def _write_csv(rows: list[InactiveUser]) -> None:
    from stream.analytics.days import iso_time

    writer = csv.writer(sys.stdout)
    writer.writerow(["user_id", "last_seen", "created", "department", "flags", *ROLES])
    for r in rows:
        cells = [r.user_id, iso_time(r.last_seen_ms) or "", iso_time(r.created_ms) or "",
                 r.department or "", " ".join(r.flags),
                 *(" ".join(r.roles[role]) for role in ROLES)]  # fmt: skip
        writer.writerow([spreadsheet_safe(cell) for cell in cells])


@click.command()
@click.option(
    "--threshold",
    "threshold_ms",
    type=Duration(),
    default=None,
    help="e.g. 30d (default: the smallest configured).",
)
@click.option("--never-active", is_flag=True, help="Enabled profiles that never acted instead.")
@click.option("--community", default=None, help="Only users with a role in this community.")
@click.option("--department", default=None, help="Only users of this department.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: /api/v1/inactive's.")
def inactive(
    threshold_ms: int | None,
    never_active: bool,
    community: str | None,
    department: str | None,
    output: str,
    as_json: bool,
) -> None:
    """The users flagged right now, newest silence first."""
    from stream.analytics.days import clock_now_ms
    from stream.flags.machine import threshold_label
    from stream.queries import inactive_users
    from stream.store import RedisStore

    settings = get_settings()
    definitions = configured_definitions(settings)
    if threshold_ms is not None and threshold_ms not in definitions.thresholds_ms:
        configured = ", ".join(threshold_label(t) for t in definitions.thresholds_ms)
        raise click.BadParameter(
            f"{threshold_label(threshold_ms)} is not a configured threshold ({configured}; "
            "ESN_INACTIVITY_THRESHOLDS sets them)",
            param_hint="'--threshold'",
        )
    if as_json and output == "csv":
        raise click.UsageError("choose one of --json and --format csv")
    flag = (
        "never active"
        if never_active
        else f"inactive for {threshold_label(threshold_ms or definitions.thresholds_ms[0])}"
    )

    async def read() -> Listing:
        store = RedisStore.from_settings(settings)
        try:
            rows = await inactive_users(
                store,
                settings,
                definitions,
                threshold_ms=threshold_ms,
                never_active=never_active,
                community=community,
                department=department,
            )
            return Listing(rows, await clock_now_ms(store, settings), flag)
        finally:
            await store.close()

    listing = asyncio.run(read())
    if as_json or output == "json":
        click.echo(jsonutil.dumps(as_api_json(listing.rows)).decode())
    elif output == "csv":
        _write_csv(listing.rows)
    else:
        click.echo("\n".join(table_lines(listing)))


def register(main: click.Group) -> None:
    """Add ``inactive`` to the ``esn-pulse`` group."""
    main.add_command(inactive)
