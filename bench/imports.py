"""Import benchmark: records per second and peak memory of ``esn-pulse import --dry-run``.

The baseline is the least any JSON import can do: read the lines and ``json.loads`` each one.
The adapters add mapping and the worker's v1 gate; the figure of interest is their ratio to the
baseline, and that peak memory does not grow with the file (Stack Exchange XML at two sizes, and
the peak RSS of the real command on a single-line JSON document of ``--doc-mb`` MB: a collection
saved minified, read incrementally).

    python -m bench.imports [--events 200000] [--users 2000] [--doc-mb 44]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream.adapters.activitystreams import ActivityStreamsAdapter
from stream.adapters.runner import input_files, run_import
from stream.adapters.stackexchange import StackExchangeAdapter
from stream.sedump import write_dump


def write_as2(path: Path, events: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as handle:
        for number in range(events):
            note = f"https://esn.example/notes/{number % 997}"
            doc = {"id": f"https://esn.example/a/{number}", "type": "Like",
                   "actor": f"https://esn.example/users/u{number % 5000}",
                   "published": (start + timedelta(seconds=number)).isoformat(),
                   "object": {"type": "Note", "id": note}}  # fmt: skip
            handle.write(json.dumps(doc) + "\n")


def write_as2_document(path: Path, megabytes: float) -> int:
    """An OrderedCollection of likes on one line, of about ``megabytes`` MB; its item count."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    target, written, number = megabytes * 1e6, 0, 0
    with path.open("w") as handle:
        handle.write('{"type": "OrderedCollection", "orderedItems": [')
        while written < target:
            note = f"https://esn.example/notes/{number % 997}"
            doc = {"id": f"https://esn.example/a/{number}", "type": "Like",
                   "actor": f"https://esn.example/users/u{number % 5000}",
                   "published": (start + timedelta(seconds=number)).isoformat(),
                   "object": {"type": "Note", "id": note}}  # fmt: skip
            text = ("," if number else "") + json.dumps(doc)
            handle.write(text)
            written += len(text)
            number += 1
        handle.write("]}")
    return number


#: Runs a command and writes its peak RSS (KiB) on stderr. A child forked from a large process
#: inherits that process's RSS high-water mark across exec, so the command is started from this
#: small launcher, not from the caller (a benchmark or pytest of hundreds of MiB).
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "sys.stderr.write(f'{usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def peak_rss(command: list[str], **options: Any) -> tuple[int, bytes, float]:
    """(exit status, stdout, peak RSS in MiB) of ``command`` (options go to subprocess.run)."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], capture_output=True,
                          check=False, **options)  # fmt: skip
    return done.returncode, done.stdout, int(done.stderr.split()[-1]) / 1024  # KiB on Linux


def import_rss(path: Path, fmt: str = "activitystreams") -> tuple[float, int, float]:
    """(seconds, records read, peak RSS MiB) of ``esn-pulse import --dry-run`` in a subprocess."""
    command = [sys.executable, "-m", "stream.cli", "import", "--format", fmt, str(path),
               "--dry-run"]  # fmt: skip
    began = time.perf_counter()
    status, out, peak = peak_rss(command)
    seconds = time.perf_counter() - began
    records = json.loads(out)["records_read"] if status == 0 else -1
    return seconds, records, peak


def baseline(path: Path) -> int:
    count = 0
    with path.open() as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return count


def measured(run: Any) -> tuple[float, int, float]:
    """(seconds, records, peak MiB) of a run: timed untraced, then traced again for the peak
    (tracing allocations slows Python several times over)."""
    began = time.perf_counter()
    records = run()
    seconds = time.perf_counter() - began
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, records, peak


def dry_run(adapter: Any, source: Path) -> int:
    summary = asyncio.run(run_import(adapter, input_files(source), None))
    return summary.records_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--doc-mb", type=float, default=44.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        as2 = Path(tmp) / "as2.jsonl"
        write_as2(as2, args.events)
        base_s, base_n, base_peak = measured(lambda: baseline(as2))
        print(f"baseline (read + json.loads)   {base_n / base_s:>9,.0f} records/s  "
              f"peak {base_peak:5.1f} MiB")  # fmt: skip
        as2_s, as2_n, as2_peak = measured(lambda: dry_run(ActivityStreamsAdapter(), as2))
        ratio = base_s / as2_s
        print(f"activitystreams --dry-run      {as2_n / as2_s:>9,.0f} records/s  "
              f"peak {as2_peak:5.1f} MiB  ({ratio:.2f} of the baseline's rate)")  # fmt: skip
        end = datetime(2026, 6, 30)
        for users in (args.users // 4, args.users):
            dump = Path(tmp) / f"se-{users}"
            write_dump(dump, users=users, days=365, end=end)
            size = sum(p.stat().st_size for p in dump.iterdir()) / 2**20
            se_s, se_n, se_peak = measured(lambda d=dump: dry_run(StackExchangeAdapter(), d))
            print(f"stackexchange {users:>6,} users   {se_n / se_s:>9,.0f} records/s  "
                  f"peak {se_peak:5.1f} MiB  ({se_n:,} records, {size:.0f} MiB)")  # fmt: skip
        doc = Path(tmp) / "as2-collection.json"
        items = write_as2_document(doc, args.doc_mb)
        size = doc.stat().st_size / 1e6
        doc_s, doc_n, doc_rss = import_rss(doc)
        print(f"single-line JSON {size:5.1f} MB   {doc_n / doc_s:>9,.0f} records/s  "
              f"peak RSS {doc_rss:5.1f} MiB  ({doc_n:,} of {items:,} items, the whole "
              "process)")  # fmt: skip


if __name__ == "__main__":
    main()
