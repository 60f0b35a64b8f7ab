"""Import progress on stderr: a bar redrawn in place on a terminal, a line at times in logs."""

from __future__ import annotations

import time
from collections import Counter
from typing import IO

from stream.adapters.files import ByteMeter
from stream.adapters.runner import ImportSummary

#: A terminal is redrawn at most this often; a log (not a TTY) gets a line this often.
TTY_INTERVAL = 0.2
LOG_INTERVAL = 10.0
WIDTH = 30


class ProgressBar:
    """Bytes read of the total, records, rate and time left."""

    def __init__(self, meter: ByteMeter, stream: IO[str]) -> None:
        self.meter = meter
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        # A log gets its first line after an interval, not for the first record.
        self.shown_at = 0.0 if self.tty else self.started

    def update(self, records: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.shown_at < (TTY_INTERVAL if self.tty else LOG_INTERVAL):
            return
        self.shown_at = now
        if final:
            self.meter.done = self.meter.total  # files left unread (not used by the format) too
        line = render(self.meter, records, now - self.started)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def render(meter: ByteMeter, records: int, elapsed: float) -> str:
    """``[#####.....]  42% 1.2/2.9 MB  120,000 records  15,000/s  ETA 0:01:52``."""
    fraction = min(1.0, meter.done / meter.total) if meter.total else 1.0
    filled = round(fraction * WIDTH)
    rate = records / elapsed if elapsed > 0 else 0.0
    byte_rate = meter.done / elapsed if elapsed > 0 else 0.0
    left = (meter.total - meter.done) / byte_rate if byte_rate > 0 else 0.0
    eta = time.strftime("%H:%M:%S", time.gmtime(max(0.0, left))) if fraction < 1 else "done"
    return (
        f"[{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} "
        f"{_size(meter.done)}/{_size(meter.total)}  {plural(records, 'record')}  {rate:,.0f}/s  "
        f"ETA {eta}"
    )


def summary_text(summary: ImportSummary) -> str:
    """The summary in a sentence, for a person; the JSON on stdout is for scripts."""

    def by_reason(counts: Counter[str]) -> str:
        return ", ".join(f"{reason} {count:,}" for reason, count in counts.most_common())

    skipped, ignored = sum(summary.skipped.values()), sum(summary.ignored.values())
    text = (
        f"{plural(summary.records_read, 'record')} read: {summary.records_mapped:,} mapped "
        f"({summary.activity_events:,} activity events, {summary.directory_records:,} directory "
        f"records), {ignored:,} ignored, {skipped:,} skipped"
    )
    if ignored:
        text += f"\n  ignored: {by_reason(summary.ignored)}"
    if skipped:
        text += f"\n  skipped: {by_reason(summary.skipped)}"
        for location, reason, detail in summary.examples[:5]:
            text += f"\n    {location}  {reason}: {detail}"
    if summary.resumed_past:
        text += f"\n  resumed past {summary.resumed_past:,} records done before"
    return text


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2,048 records``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{count:.0f} B"
        count /= 1024
    return f"{count:.1f} GB"
