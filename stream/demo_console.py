"""What ``esn-pulse demo`` tells its user while it works: one line per phase with its duration,
the history's replay and fold progress, and the exact ``export`` line a second shell needs.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import Callable, Mapping

import click
from pydantic import SecretStr

from stream.cli_errors import redact_url
from stream.config_file import chosen_path
from stream.settings import Settings
from stream.store import FlagReads, RedisStore
from stream.store.definitions_store import DefinitionsStore
from stream.timebounds import parse_duration_ms
from stream.topics import TopicNames

#: Seconds between two progress lines when the output is not a terminal (a log, a pipe).
_LINE_EVERY = 5.0


class Phase:
    """``label: starting...`` now, ``label: ready in 12 s`` when :meth:`done` is called."""

    def __init__(self, label: str, doing: str) -> None:
        self.label = label
        self.started = time.monotonic()
        click.echo(f"{label}: {doing}...")

    def elapsed(self) -> str:
        """Seconds since the phase began, as "12 s"."""
        return f"{time.monotonic() - self.started:.0f} s"

    def done(self, outcome: str, detail: str = "") -> None:
        """The phase's closing line: ``label: outcome in N s; detail``."""
        click.echo(
            f"{self.label}: {outcome} in {self.elapsed()}" + (f"; {detail}" if detail else "")
        )


class Progress:
    """``label: N/M what`` as work advances: rewritten in place on a terminal, a line every few
    seconds elsewhere (a log must not get one line per record)."""

    def __init__(self, label: str, total: int, what: str) -> None:
        self.label, self.total, self.what = label, total, what
        self.count = 0
        self.tty = sys.stdout.isatty()
        self.shown_at = time.monotonic()  # a first line once there is progress to show

    def advance(self, count: int) -> None:
        """Record that ``count`` of the total are done now (shown at most 10 times a second)."""
        self.count = count
        now = time.monotonic()
        if now - self.shown_at < (0.1 if self.tty else _LINE_EVERY):
            return
        self.shown_at = now
        self._show()

    def finish(self, outcome: str) -> None:
        """The closing line, replacing the progress on a terminal."""
        if self.tty:
            click.echo("\r\x1b[K", nl=False)
        click.echo(f"{self.label}: {outcome}")

    def _show(self) -> None:
        line = f"{self.label}: {self.count:,}/{self.total:,} {self.what}"
        if self.tty:
            click.echo(f"\r\x1b[K{line}", nl=False)
        else:
            click.echo(line)


def line_counter(progress: Progress) -> Callable[[int], None]:
    """An ``on_line`` callback for :func:`stream.produce.produce_lines` that counts lines."""

    def on_line(_: int) -> None:
        progress.advance(progress.count + 1)

    return on_line


async def applied_records(store: RedisStore, settings: Settings) -> int:
    """Records of the activity topic the workers have folded (or dead-lettered) so far."""
    topic = TopicNames.from_settings(settings).activity
    fences = await store.load_fences(topic, list(range(settings.activity_partitions)))
    return sum(fence + 1 for fence in fences.values())


async def flags_at_clock(store: RedisStore, settings: Settings) -> bool:
    """True when every partition's flags are released up to its clock (its events seen)."""
    lateness = parse_duration_ms(settings.allowed_lateness)
    definitions = DefinitionsStore(store)
    reads = FlagReads(store)
    for partition in range(settings.activity_partitions):
        if settings.clock == "event":
            watermark = await reads.event_watermark(partition)
            if watermark is None:
                continue
            due = watermark - lateness
        else:
            due = int(time.time() * 1000) - lateness - 1000 * int(settings.sweep_interval_seconds)
        released = (await definitions.partition(partition)).released_ms
        if released is None or released < due:
            return False
    return True


async def inactivity_counts(store: RedisStore, settings: Settings) -> dict[str, int]:
    """The engine's counters: enabled, never_active, inactive:<threshold>."""
    return await FlagReads(store).inactivity_counts()


async def wait_for_worker(
    store: RedisStore,
    settings: Settings,
    sent: int,
    alive: Callable[[], None],
    poll: float = 0.5,
) -> dict[str, int]:
    """Show the fold of ``sent`` records, wait for the flags to reach the clock; the counts."""
    progress = Progress("worker", sent, "events folded")
    started = time.monotonic()
    while (applied := await applied_records(store, settings)) < sent:
        alive()
        progress.advance(applied)
        await asyncio.sleep(poll)
    progress.finish(f"folded {sent:,} events in {time.monotonic() - started:.0f} s")
    phase = Phase("flags", "bringing the inactivity flags up to the clock")
    while not await flags_at_clock(store, settings):
        alive()
        await asyncio.sleep(poll)
    counts = await inactivity_counts(store, settings)
    inactive = ", ".join(f"{k.partition(':')[2]} {v:,}" for k, v in sorted(counts.items())
                         if k.startswith("inactive:"))  # fmt: skip
    phase.done(
        "up to the clock",
        f"inactive {inactive or 'none'}, never active {counts.get('never_active', 0):,}, "
        f"of {counts.get('enabled', 0):,} enabled",
    )
    return counts


def second_shell(settings: Settings, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The ``export ...`` line that points another shell's ``esn-pulse`` at this demo, and the
    secret variables it also needs (named, never printed).

    What this process was given in its environment, plus the clock the demo runs on and the
    config file by its absolute path (the other shell may run elsewhere).
    """
    exports: dict[str, str] = {"ESN_CLOCK": settings.clock}
    secrets: list[str] = []
    for name in sorted(Settings.model_fields):
        variable = f"ESN_{name.upper()}"
        if variable not in environ:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or redact_url(str(value)) != str(value):
            secrets.append(variable)
        else:
            exports[variable] = str(value)
    path = chosen_path(dict(environ))
    if path is not None:
        exports["ESN_CONFIG_FILE"] = str(path.resolve())
    line = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(exports.items()))
    return line, secrets
