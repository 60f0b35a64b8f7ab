"""``esn-pulse user ID``: what the engine knows about one user, as aligned lines or as the JSON of
/api/v1/users/{id} (the API's view and response model, so the two cannot drift apart)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from stream import jsonutil
from stream.cli_errors import CliError
from stream.cli_params import configured_definitions
from stream.cli_tables import printable
from stream.flags.machine import UserInactivity
from stream.settings import get_settings


def state_text(inactivity: UserInactivity | None) -> str:
    """The inactivity engine's word for the user."""
    if inactivity is None:
        return "unknown to the inactivity engine (not swept yet)"
    if not inactivity.enabled:
        return "disabled"
    return "flagged" if inactivity.flagged else "active"


def user_lines(doc: dict[str, Any], inactivity: UserInactivity | None) -> list[str]:
    """The user for a terminal: one aligned line per fact, then the counts by event type."""
    roles = "; ".join(
        f"{role}: {', '.join(ids)}" for role, ids in doc["communities"].items() if ids
    )
    facts = [
        ("user", doc["user_id"]),
        ("state", state_text(inactivity)),
        ("flags", ", ".join(doc["flags"]) or "-"),
        ("first seen", doc["first_seen"] or "never"),
        ("last seen", doc["last_seen"] or "never"),
        ("department", doc["department"] or "-"),
        ("created", doc["created"] or "-"),
        ("communities", roles or "-"),
        ("likes", f"{doc['likes']['given']} given, {doc['likes']['received']} received"),
        ("mentions", f"{doc['mentions']['given']} given, {doc['mentions']['received']} received"),
        ("events", f"{doc['events']:,}"),
    ]
    lines = [f"{name:11} {printable(value)}" for name, value in facts]
    width = max((len(t) for t in doc["counts"]), default=0)
    lines += [f"  {printable(t):{width}}  {n:>9,}" for t, n in sorted(doc["counts"].items())]
    return lines


@click.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="The JSON of /api/v1/users/{id}.")
def user(user_id: str, as_json: bool) -> None:
    """What the engine knows about one user: activity, flags, interactions, directory."""
    from stream.analytics.views import NotFound, user_view
    from stream.api.models import User
    from stream.privacy import looks_like_pseudonym, lookup_id
    from stream.queries import inactivity_state
    from stream.store import RedisStore

    settings = get_settings()
    definitions = configured_definitions(settings)

    async def read(stored_id: str) -> tuple[dict[str, Any], UserInactivity | None] | None:
        store = RedisStore.from_settings(settings)
        try:
            view = await user_view(store, settings, definitions, stored_id)
            return view, await inactivity_state(store, settings, stored_id)
        except NotFound:
            return None
        finally:
            await store.close()

    # Under ESN_PSEUDONYMIZE_KEY the engine stores pseudonyms: look up the typed id's, or, for
    # a pseudonym copied from an output, that one as it is (as the API does).
    stored = lookup_id(settings, user_id)
    found = asyncio.run(read(stored))
    if found is None and stored != user_id and looks_like_pseudonym(user_id):
        found = asyncio.run(read(user_id))
    if found is None:
        raise CliError(
            f"no activity known for user {user_id!r}, nor a profile",
            "check the id (ids are exact, and pseudonymised under ESN_PSEUDONYMIZE_KEY: see "
            "esn-pulse pseudonym) and ESN_REDIS_PREFIX",
        )
    view, inactivity = found
    doc = User.model_validate(view).model_dump(mode="json", by_alias=True)
    if as_json:
        click.echo(jsonutil.dumps(doc).decode())
    else:
        click.echo("\n".join(user_lines(doc, inactivity)))


def register(main: click.Group) -> None:
    """Add ``user`` to the ``esn-pulse`` group."""
    main.add_command(user)
