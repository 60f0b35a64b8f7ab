"""The demo's history: the generated organisation's directory and events up to a cutoff, sent
with their progress shown, then waited for until the worker has folded them and flagged who is
inactive (so what the demo prints next is already true)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from stream import jsonutil
from stream.cli_errors import CliError
from stream.demo_console import Phase, Progress, line_counter, wait_for_worker
from stream.generator import DEMO_SEED as SEED
from stream.generator import directory_records, generate_events
from stream.settings import Settings


@dataclass(frozen=True)
class DemoHistory:
    """What a demo's history was drawn from: its live traffic must draw the same organisation."""

    users: int
    days: int
    first_day: date


def _record_path(settings: Settings) -> Path:
    # One per topic prefix: the record describes what that prefix's topic holds.
    return Path(settings.state_dir) / f"demo-history-{settings.topic_prefix or 'default'}.json"


def record_history(settings: Settings, history: DemoHistory) -> None:
    """Note which organisation the topic's history came from, for a later run's live traffic."""
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"users": history.users, "days": history.days, "first_day": str(history.first_day)}
    path.write_bytes(jsonutil.dumps(doc))


def recorded_history(settings: Settings) -> DemoHistory | None:
    """The organisation an earlier run replayed into the topic; None if unknown or unreadable."""
    try:
        doc = jsonutil.loads(_record_path(settings).read_bytes())
        first_day = date.fromisoformat(doc["first_day"])
        return DemoHistory(int(doc["users"]), int(doc["days"]), first_day)
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def replay_history(
    settings: Settings,
    users: int,
    days: int,
    first_day: date,
    cutoff: datetime,
    worker: subprocess.Popen[bytes] | None,
) -> bool:
    """Send the directory and the events up to ``cutoff``, wait for the worker (``worker``: a
    process to watch, if it is ours) to fold and flag them; False if the topic held them already.
    """
    from stream.produce import produce_lines, topic_is_empty
    from stream.store import RedisStore

    if not await topic_is_empty(settings):
        return False
    record_history(settings, DemoHistory(users, days, first_day))
    roster = [jsonutil.dumps(r) for r in directory_records(users, first_day, days, SEED)]
    phase = Phase("directory", f"sending {len(roster):,} profiles and memberships")
    await produce_lines(settings, roster, validate=False, directory=True)
    phase.done("sent")
    # Up to the cutoff (now), not to the end of today: the event clock must not run ahead of
    # the live events that follow.
    phase = Phase("history", f"generating the events of {users:,} users over {days} days")
    history = [
        jsonutil.dumps(event)
        for event in generate_events(users, days, first_day, SEED)
        if datetime.fromisoformat(event["time"]) <= cutoff
    ]
    phase.done("generated", f"{len(history):,} events up to {cutoff:%Y-%m-%d %H:%M} UTC")
    progress = Progress("history", len(history), "events sent")
    summary = await produce_lines(settings, history, validate=False, on_line=line_counter(progress))
    progress.finish(f"sent {summary.sent:,} events in {summary.seconds:.0f} s")

    def alive() -> None:
        if worker is not None and worker.poll() is not None:
            raise CliError(
                f"the demo's worker exited with {worker.returncode}",
                "see worker.log in ESN_STATE_DIR for why",
            )

    store = RedisStore.from_settings(settings)
    try:
        await wait_for_worker(store, settings, summary.sent, alive)
    finally:
        await store.close()
    return True
