"""``esn-pulse rebuild`` (replay the state from Kafka) and the worker's start check that names it.

docs/operations/config-changes.md says which configuration changes need a rebuild and what it loses.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from stream.cli_errors import BadConfig, CliError
from stream.flags.definitions import DOC, DeploymentRecord, deployment_record_from, refusal
from stream.settings import Settings, get_settings

if TYPE_CHECKING:
    from stream.rebuild import RebuildPlan


def check_deployment(settings: Settings) -> None:
    """Before a worker starts: refuse, in one line, a configuration the stored state cannot follow.

    The first worker of a deployment registers its configuration; later ones must match it in
    what cannot be migrated (user buckets, counted activity types). Waits while Redis is away.
    """
    from stream.cli_params import configured_definitions
    from stream.retry import until_redis_answers
    from stream.store import LAYOUT, RedisStore
    from stream.store.definitions_store import DefinitionsStore

    configured_definitions(settings)  # a setting that does not parse: its own one line, exit 1
    configured = deployment_record_from(settings, LAYOUT)

    async def register() -> DeploymentRecord:
        store = RedisStore.from_settings(settings)
        try:
            return await until_redis_answers(
                lambda: DefinitionsStore(store).register(configured),
                settings.redis_retry_max_seconds,
                "Checking the deployment record in Redis",
            )
        finally:
            await store.close()

    why = refusal(asyncio.run(register()), configured)
    if why is not None:
        raise BadConfig(*why)


def register(main: click.Group) -> None:
    """Add ``rebuild`` to the ``esn-pulse`` group."""
    main.add_command(rebuild)


@click.command()
@click.option("--yes", is_flag=True, help="Do it (without: only say what would be done).")
@click.option(
    "--allow-loss",
    is_flag=True,
    help="Rebuild even though retention dropped records whose effects are then lost.",
)
def rebuild(yes: bool, allow_loss: bool) -> None:
    """Delete the derived state in Redis and replay the activity and directory topics.

    Every worker of the deployment must be stopped. Initiatives are kept; the flag topics keep
    their records and new ones continue their numbering.
    """
    from stream.rebuild import plan_rebuild
    from stream.rebuild import rebuild as run
    from stream.store import LAYOUT, RedisStore

    settings = get_settings()

    async def go() -> tuple[RebuildPlan, int | None]:
        store = RedisStore.from_settings(settings)
        try:
            # Redis first: the rebuild is about its state, and a Redis that does not answer is
            # the clearer line (Kafka's coordinator may still be settling on a fresh broker).
            await store.run_id()
            plan = await plan_rebuild(settings, store)
            running = {g: n for g, n in plan.members.items() if n}
            if running:
                names = ", ".join(f"{g} ({n})" for g, n in sorted(running.items()))
                raise CliError(
                    f"workers are running in consumer group {names}",
                    "stop every worker of this deployment first, then run the rebuild again",
                )
            if plan.lost and not allow_loss:
                where = ", ".join(f"{x.topic}[{x.partition}] <{x.first_offset}" for x in plan.lost)
                raise CliError(
                    f"Kafka retention already deleted {plan.lost_records} records ({where}): "
                    "their counts, last-seen times and flags cannot be rebuilt",
                    f"keep the current state, or run again with --allow-loss (see {DOC})",
                )
            if not yes:
                return plan, None
            return plan, await run(settings, store, plan)
        finally:
            await store.close()

    plan, deleted = asyncio.run(go())
    groups = ", ".join(sorted(plan.groups))
    seqs = sum(1 for seq in plan.flag_seqs.values() if seq)
    layout = ""
    if plan.stored_layout is not None and plan.stored_layout != LAYOUT:
        layout = f", from key layout {plan.stored_layout} to {LAYOUT}"
    if deleted is None:
        click.echo(
            f"would delete {plan.deleted_keys} keys under {settings.redis_prefix!r} (keeping "
            f"{plan.kept_keys} of initiatives), rewind consumer groups {groups}, continue the "
            f"flag numbering of {seqs} partitions{layout}; nothing done: run "
            "`esn-pulse rebuild --yes`"
        )
        return
    lost = f"; {plan.lost_records} records were beyond retention" if plan.lost else ""
    click.echo(
        f"deleted {deleted} keys under {settings.redis_prefix!r}, rewound {groups}{lost}{layout}; "
        "start the worker to replay the topics from the beginning"
    )
