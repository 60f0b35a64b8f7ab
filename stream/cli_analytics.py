"""``esn-pulse`` commands over the analytics: report, initiative, summary, trend, pseudonym."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from stream import jsonutil
from stream.cli_errors import BadConfig, BadInput, CliError
from stream.cli_params import Instant, configured_definitions
from stream.cli_tables import plural, table
from stream.privacy import OTHER_GROUP
from stream.settings import Settings, get_settings

T = TypeVar("T")


def _with_store(work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    """Run ``work(store, settings)`` on a fresh store, closed afterwards."""
    from stream.store import RedisStore

    settings = get_settings()

    async def run() -> T:
        store = RedisStore.from_settings(settings)
        try:
            return await work(store, settings)
        finally:
            await store.close()

    return asyncio.run(run())


def register(main: click.Group) -> None:
    """Add the analytics commands to the ``esn-pulse`` group."""

    @main.command()
    @click.option("--from", "first", default=None, help="First UTC day (default: 30 days back).")
    @click.option("--to", "last", default=None, help="Last UTC day (default: the clock's today).")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="report.html",
                  show_default=True)  # fmt: skip
    @click.option("--people", is_flag=True,
                  help="Add who to contact (names people; CSV export in the page).")  # fmt: skip
    def report(first: str | None, last: str | None, out: Path, people: bool) -> None:
        """Write a self-contained HTML engagement report (charts work offline)."""
        from stream.analytics.days import clock_now_ms
        from stream.analytics.views import BadRequest, parse_range
        from stream.report.build import collect, render

        async def build(store: Any, settings: Settings) -> dict[str, Any]:
            now_ms = await clock_now_ms(store, settings)
            try:
                start, end = parse_range(settings, now_ms, first, last, 30)
            except BadRequest as exc:
                raise click.BadParameter(exc.message, param_hint=f"'--{exc.param}'") from None
            definitions = configured_definitions(settings)
            return await collect(store, settings, definitions, start, end, now_ms, people)

        data = _with_store(build)
        out.write_text(render(data))
        click.echo(f"{out}: {data['from']} to {data['to']}, {out.stat().st_size // 1024} KiB")

    @main.command()
    @click.option("--json", "as_json", is_flag=True, help="The JSON of /api/v1/summary.")
    def summary(as_json: bool) -> None:
        """Headline figures now: users, flags, activity tiers, communities, departments."""
        from stream.analytics.days import clock_now_ms
        from stream.analytics.views import summary as summary_view
        from stream.api.models import Summary

        async def read(store: Any, settings: Settings) -> dict[str, Any]:
            now_ms = await clock_now_ms(store, settings)
            return await summary_view(store, settings, configured_definitions(settings), now_ms)

        # Through the API's response model, as the API answers: computed now, so 0 s old.
        answer = Summary.model_validate({**_with_store(read), "cached_seconds": 0.0})
        doc = answer.model_dump(mode="json", by_alias=True)
        if as_json:
            click.echo(jsonutil.dumps(doc).decode())
        else:
            click.echo("\n".join(summary_lines(doc)))

    @main.group()
    def initiative() -> None:
        """Adoption and training initiatives: who they target and whether it worked."""

    @initiative.command("add")
    @click.argument("name")
    @click.option(
        "--start",
        "start_ms",
        type=Instant(),
        required=True,
        help="Start: a date (UTC midnight), an ISO time, or a duration ago (14d).",
    )
    @click.option(
        "--users",
        "users_file",
        type=click.File("r", encoding="utf-8-sig"),
        required=True,
        help="One user id per line (a CSV's first column; a user_id header is skipped).",
    )
    def initiative_add(name: str, start_ms: int, users_file: IO[str]) -> None:
        """Store an initiative (replacing one of the same name)."""
        from stream.analytics.initiatives import NAME_PATTERN, add_initiative

        if not NAME_PATTERN.match(name):
            raise click.BadParameter(
                f"{name!r}: letters, digits, '_', '.', '-' (max 64)", param_hint="'NAME'"
            )
        try:
            users = [line.split(",")[0].strip().strip('"') for line in users_file]
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"{users_file.name} is not UTF-8 text (byte {exc.start}: {exc.reason})",
                "save it as UTF-8 (one user id per line) and run again",
            ) from None
        users = [u for u in users if u and u.lower() not in ("user_id", "user", "id")]
        if not users:
            raise BadInput(
                f"{users_file.name} holds no user id", "put one user id per line and run again"
            )

        async def add(store: Any, settings: Settings) -> Any:
            return await add_initiative(store, settings, name, start_ms, users)

        stored = _with_store(add)
        start = datetime.fromtimestamp(start_ms / 1000, tz=UTC).isoformat()
        click.echo(f"initiative {stored.name}: {stored.users} users from {start}")

    @initiative.command("list")
    @click.option("--json", "as_json", is_flag=True, help="The JSON of /api/v1/initiatives.")
    def initiative_list(as_json: bool) -> None:
        """The stored initiatives: name, start and how many users each targets."""
        from stream.analytics.views import initiatives_view
        from stream.api.models import Initiatives

        async def read(store: Any, settings: Settings) -> dict[str, Any]:
            return await initiatives_view(store)

        doc = Initiatives.model_validate(_with_store(read)).model_dump(mode="json", by_alias=True)
        if as_json:
            click.echo(jsonutil.dumps(doc).decode())
            return
        rows = [(r["name"], r["start"] or "-", r["users"]) for r in doc["initiatives"]]
        lines = table(("initiative", "start", "users"), rows) if rows else []
        click.echo("\n".join([*lines, plural(len(rows), "initiative")]))

    @initiative.command("show")
    @click.argument("name")
    def initiative_show(name: str) -> None:
        """An initiative's figures against everyone else, as JSON (/api/v1/initiatives/NAME)."""
        from stream.analytics.days import clock_now_ms
        from stream.analytics.views import NotFound, initiative_view

        async def read(store: Any, settings: Settings) -> dict[str, Any]:
            try:
                return await initiative_view(
                    store, settings, name, await clock_now_ms(store, settings)
                )
            except NotFound as exc:
                hint = "esn-pulse initiative list shows the stored ones"
                raise CliError(str(exc), hint) from None

        from stream.api.models import Initiative

        doc = Initiative.model_validate(_with_store(read)).model_dump(mode="json", by_alias=True)
        click.echo(jsonutil.dumps(doc).decode())

    @main.command()
    @click.argument("user_ids", nargs=-1, required=True)
    def pseudonym(user_ids: tuple[str, ...]) -> None:
        """The pseudonym the engine stores for each user id (needs ESN_PSEUDONYMIZE_KEY)."""
        from stream.privacy import pseudonymizer_from

        pseudonymize = pseudonymizer_from(get_settings())
        if pseudonymize is None:
            raise BadConfig(
                "ESN_PSEUDONYMIZE_KEY is not set: ids are stored as they are",
                "set it to the worker's key to compute pseudonyms",
            )
        for user_id in user_ids:
            click.echo(f"{user_id}\t{pseudonymize(user_id)}")


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The summary for a terminal: one aligned section per subject."""
    users = doc["users"]
    lines = [f"ESN Pulse at {doc['now']} ({doc['clock']} clock)", "", "Users"]
    people = [("enabled", users["enabled"])]
    people += [(f"inactive {label}", count) for label, count in users["inactive"].items()]
    people.append(("never active", users["never_active"]))
    lines += table(("", "users"), people, indent="  ")[1:]
    windows = list(doc["tiers"])
    tiers = list(next(iter(doc["tiers"].values()), {}))
    lines += ["", "Activity (users per window)"]
    lines += table(("", *windows), [(tier, *(doc["tiers"][w][tier] for w in windows))
                                    for tier in tiers], indent="  ")  # fmt: skip
    lines.append(f"  stickiness (DAU / MAU)  {doc['stickiness']:.2f}")
    communities = doc["communities"]
    lines += ["", "Communities"]
    lines += table(tuple(communities), [tuple(communities.values())], indent="  ")
    departments = doc["departments"]
    minimum = doc["min_group_size"]
    lines += ["", f"Departments (under {minimum} people: merged into '{OTHER_GROUP}', or left out)"]
    if departments:
        states = list(next(iter(departments.values())))
        rows = [(name, *(figures[s] for s in states)) for name, figures in departments.items()]
        lines += table(("department", *(s.replace("_", " ") for s in states)), rows, "  ")
    else:
        lines.append("  none to show (no enabled profile, or all in groups too small)")
    return lines
