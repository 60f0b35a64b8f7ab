"""``esn-pulse backtest``: replay a history through the inactivity machine and score at-risk.

Reads what ``esn-pulse import`` reads (or the contract's JSON lines, or the generator directly),
replays it with the event clock (:mod:`stream.flags.backtest`) and prints precision, recall,
median lead time and false alarms for the at-risk rule: the configured one, or each of a small
grid (``--active-days 8,12,16 --gap-factor 2,3``). Exit codes as every command's: 1 for a bad
option, an unreadable or broken input, or a history with nothing to replay.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from stream import jsonutil
from stream.cli_errors import BadInput, CliError
from stream.cli_import import FORMATS, _adapter
from stream.cli_params import Duration, configured_definitions
from stream.cli_tables import plural, table
from stream.flags.backtest import Replay, Score, backtest, default_horizon_ms
from stream.flags.definitions import describe
from stream.flags.machine import DAY_MS, AtRiskRule, Change, Definitions, counting_types_from
from stream.settings import get_settings

#: The generated history's first day when none is given: fixed, so figures can be reproduced.
GENERATED_START = date(2026, 1, 5)


class GeneratedSpec(click.ParamType):
    """USERS:DAYS:SEED of a generated history."""

    name = "users:days:seed"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int, int]:
        """Three positive integers, or a usage error naming the option."""
        if isinstance(value, tuple):
            return value
        parts = str(value).split(":")
        try:
            users, days, seed = (int(part) for part in parts)
        except ValueError:
            self.fail(f"{value!r} is not USERS:DAYS:SEED (for example 5000:270:7)", param, ctx)
        if users < 1 or days < 1:
            self.fail(f"{value!r}: USERS and DAYS must be at least 1", param, ctx)
        return users, days, seed


def _numbers(kind: type[int] | type[float]) -> click.ParamType:
    class Numbers(click.ParamType):
        name = "list"

        def convert(
            self, value: Any, param: click.Parameter | None, ctx: click.Context | None
        ) -> Any:
            if isinstance(value, list):
                return value
            try:
                return [kind(part) for part in str(value).split(",") if part.strip()]
            except ValueError:
                self.fail(f"{value!r} is not a comma list of numbers", param, ctx)

    return Numbers()


class Durations(click.ParamType):
    """A comma list of durations (7d,10d), as milliseconds."""

    name = "durations"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Milliseconds each, or a usage error naming the option."""
        if isinstance(value, list):
            return value
        return [Duration().convert(part, param, ctx) for part in str(value).split(",")]


def register(main: click.Group) -> None:
    """Add ``backtest`` to the ``esn-pulse`` group."""

    @main.command("backtest")
    @click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(("contract", *FORMATS)), default="contract",
                  show_default=True, help="The files' format (contract: v1 JSON lines, activity "
                  "and directory records mixed or in separate files).")  # fmt: skip
    @click.option(
        "--map",
        "mapping",
        default=None,
        help="csv, directory-csv: field=column,... as for esn-pulse import.",
    )
    @click.option("--generated", type=GeneratedSpec(), default=None,
                  help="Replay the generator's organisation instead of files.")  # fmt: skip
    @click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help=f"--generated: the first day (default {GENERATED_START}).")  # fmt: skip
    @click.option("--horizon-days", type=click.IntRange(min=1), default=None,
                  help="Days after a warning within which inactivity confirms it (default: "
                  "the first threshold plus 14).")  # fmt: skip
    @click.option(
        "--active-days",
        type=_numbers(int),
        default=None,
        help="At-risk active days to try (comma list; default ESN_AT_RISK_ACTIVE_DAYS).",
    )
    @click.option(
        "--gap-factor",
        type=_numbers(float),
        default=None,
        help="At-risk gap factors to try (default ESN_AT_RISK_GAP_FACTOR).",
    )
    @click.option(
        "--min-silence",
        type=Durations(),
        default=None,
        help="At-risk minimum silences to try (default ESN_AT_RISK_MIN_SILENCE).",
    )
    @click.option(
        "--fade",
        type=_numbers(float),
        default=None,
        help="At-risk fade shares to try, 0 for none (default ESN_AT_RISK_FADE).",
    )
    @click.option(
        "--fade-silence",
        type=Durations(),
        default=None,
        help="At-risk silences after a fade to try (default ESN_AT_RISK_FADE_SILENCE).",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
    def backtest_command(
        sources: tuple[Path, ...],
        fmt: str,
        mapping: str | None,
        generated: tuple[int, int, int] | None,
        start: datetime | None,
        horizon_days: int | None,
        active_days: list[int] | None,
        gap_factor: list[float] | None,
        min_silence: list[int] | None,
        fade: list[float] | None,
        fade_silence: list[int] | None,
        as_json: bool,
    ) -> None:
        """Replay a history (FILE... or --generated) with the event clock and score at-risk
        flags: precision, recall, median lead time and false alarms per 1,000 people a week."""
        if bool(sources) == bool(generated):
            raise click.UsageError("give FILE... or --generated USERS:DAYS:SEED, one of the two")
        settings = get_settings()
        base = configured_definitions(settings)
        grid = _grid(base, active_days, gap_factor, min_silence, fade, fade_silence)
        counting = counting_types_from(settings)
        began = time.process_time()
        history = _history(sources, fmt, mapping, generated, start, counting, len(grid) > 1)
        rows: list[tuple[Definitions, Score, Replay]] = []
        for definitions in grid:
            horizon = horizon_days * DAY_MS if horizon_days else default_horizon_ms(definitions)
            outcome, result = backtest(history(), definitions, horizon)
            rows.append((definitions, outcome, result))
        if rows[0][2].changes == 0:
            raise BadInput("the history holds no activity or profile to replay",
                           "check the files and --format (esn-pulse import --dry-run shows what "
                           "maps)")  # fmt: skip
        cpu = time.process_time() - began
        if as_json:
            click.echo(jsonutil.dumps(_document(rows, cpu)).decode())
        else:
            for line in _text(rows, cpu):
                click.echo(line)


def _grid(
    base: Definitions,
    active_days: list[int] | None,
    gap_factor: list[float] | None,
    min_silence: list[int] | None,
    fade: list[float] | None = None,
    fade_silence: list[int] | None = None,
) -> list[Definitions]:
    """Every combination of the values given, the configured rule filling what is not."""
    rule = base.at_risk
    if rule is None and not active_days:
        raise CliError("the at-risk flag is off (ESN_AT_RISK_ACTIVE_DAYS=0): nothing to score",
                       "set ESN_AT_RISK_ACTIVE_DAYS or give --active-days")  # fmt: skip
    # Off in the settings but asked for: the settings' defaults fill the other two.
    default = rule or AtRiskRule(1, 3000, 7 * DAY_MS)
    out = []
    for days, factor, silence, fade_milli, after_fade in itertools.product(
        active_days or [default.min_active_days],
        [round(f * 1000) for f in gap_factor] if gap_factor else [default.gap_factor_milli],
        min_silence or [default.min_silence_ms],
        [round(f * 1000) for f in fade] if fade else [default.fade_milli],
        fade_silence or [default.fade_silence_ms],
    ):
        try:
            rule = AtRiskRule(days, factor, silence, fade_milli, after_fade)
            out.append(replace(base, at_risk=rule))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--active-days/--gap-factor/"
                                     "--min-silence") from None  # fmt: skip
    return out


def _history(
    sources: tuple[Path, ...],
    fmt: str,
    mapping: str | None,
    generated: tuple[int, int, int] | None,
    start: datetime | None,
    counting: frozenset[str] | None,
    many: bool,
) -> Any:
    """A function giving the history's changes each time it is called (read once)."""
    from stream import backtest_history

    if generated is not None:
        users, days, seed = generated
        first = start.date() if start else GENERATED_START

        def stream() -> Iterator[Change]:
            return backtest_history.generated(users, days, seed, first, counting)[0]

        if not many:
            return stream
        changes: list[Change] = list(stream())
    else:
        adapter = None if fmt == "contract" else _adapter(fmt, mapping, "userName", "email")
        changes, counts = backtest_history.from_files(sources, fmt, adapter, counting)
        if counts.broken:
            raise BadInput(f"{counts.broken[0]}", "fix or replace the file and run again")

    def listed() -> Iterable[Change]:
        return changes

    return listed


def _row(definitions: Definitions, outcome: Score) -> dict[str, Any]:
    rule = definitions.at_risk
    assert rule is not None
    return {
        "active_days": rule.min_active_days,
        "gap_factor": rule.gap_factor_milli / 1000,
        "min_silence_days": rule.min_silence_ms / DAY_MS,
        "fade": rule.fade_milli / 1000,
        "fade_silence_days": rule.fade_silence_ms / DAY_MS,
        **outcome.as_json(),
    }


def _document(rows: list[tuple[Definitions, Score, Replay]], cpu: float) -> dict[str, Any]:
    result = rows[0][2]
    return {
        "history": _span(result),
        "first_threshold_days": rows[0][0].thresholds_ms[0] / DAY_MS,
        "cpu_seconds": round(cpu, 2),
        "rules": [_row(definitions, outcome) for definitions, outcome, _ in rows],
    }


def _span(result: Replay) -> dict[str, Any]:
    def day(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()

    return {
        "people": result.people,
        "changes": result.changes,
        "first": day(result.start_ms),
        "last": day(result.end_ms),
        "days": round((result.end_ms - result.start_ms) / DAY_MS, 1),
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _text(rows: list[tuple[Definitions, Score, Replay]], cpu: float) -> list[str]:
    span = _span(rows[0][2])
    lines = [
        f"history: {plural(span['people'], 'person', 'people')}, "
        f"{plural(span['changes'], 'change')} (activity and profiles), {span['first']} to "
        f"{span['last']} ({span['days']:g} days); replayed in {cpu:.1f} s CPU"
    ]
    if len(rows) == 1:
        definitions, outcome, _ = rows[0]
        lead = outcome.median_lead_days
        rate = outcome.false_alarms_per_1000_weekly
        lines += [
            f"rule: {describe(definitions)}; horizon {outcome.horizon_days:g} days",
            f"precision {_percent(outcome.precision)}: {outcome.confirmed:,} of "
            f"{plural(outcome.warnings, 'warning')} followed by inactivity within the horizon "
            f"({outcome.unscored_warnings:,} too late to score)",
            f"recall {_percent(outcome.recall)}: {outcome.warned_first:,} of "
            f"{outcome.inactive:,} who became inactive were warned first",
            f"median lead time {'-' if lead is None else f'{lead:.1f} days'}",
            f"false alarms {outcome.false_alarms:,}: "
            f"{'-' if rate is None else f'{rate:.2f}'} per 1,000 people per week "
            f"({outcome.person_weeks:,.0f} person-weeks)",
        ]
        return lines
    header = ("active days", "factor", "min silence", "fade", "after fade", "precision",
              "recall", "lead days",
              "false/1000/wk", "warnings", "inactive")  # fmt: skip
    body = []
    for definitions, outcome, _ in rows:
        row = _row(definitions, outcome)
        body.append((
            row["active_days"], f"{row['gap_factor']:g}", f"{row['min_silence_days']:g}d",
            f"{row['fade']:g}", f"{row['fade_silence_days']:g}d",
            _percent(outcome.precision), _percent(outcome.recall),
            "-" if outcome.median_lead_days is None else f"{outcome.median_lead_days:.1f}",
            "-" if row["false_alarms_per_1000_people_per_week"] is None
            else f"{row['false_alarms_per_1000_people_per_week']:.2f}",
            outcome.warnings, outcome.inactive,
        ))  # fmt: skip
    return lines + table(header, body)
