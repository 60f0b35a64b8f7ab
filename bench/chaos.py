"""``make chaos``: every fault drill of tests/chaos on a stack of its own, then overload.

Prints, per drill: events lost and double-counted (against the oracle), duplicate and missing flag
records and esn.seq errors on esn.users.flagged.v1, recovery seconds (fault to caught up), worker
RSS and Redis used_memory; then the bounded-under-load figures. The drills SIGKILL and restart
the broker and redis-server, so they run on their own ports and state dir, never on `make run`'s.

    python -m bench.chaos [--only NAME ...] [--load-seconds 120] [--kafka HOST:PORT] [--redis URL]

Exit codes: 0 every drill exact, 1 some drill not exact, 2 the stack could not be had.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from stream.settings import Settings
from stream.stack import LocalStack, StackError
from tests.chaos.harness import SCENARIOS, Figures, run_scenario
from tests.chaos.load import bounded_under_load

REPO = Path(__file__).resolve().parent.parent


def _row(f: Figures) -> str:
    recovery = "-" if f.recovery_seconds is None else f"{f.recovery_seconds:.1f}"
    return (
        f"{f.scenario:26} {f.events:>7} {f.lost:>5} {f.double_counted:>7} {f.flags_expected:>6} "
        f"{f.duplicate_flags:>5} {f.missing_flags:>7} {f.seq_errors:>4} {recovery:>9} "
        f"{f.worker_rss_mib:>8.0f} {f.redis_used_mib:>9.1f}  {'exact' if f.exact else 'NOT EXACT'}"
    )


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    if len(lines) > 1:
        detail += f" ... {lines[-1]}"
    return f"{type(exc).__name__}: {detail}"[:400]


_HEADER = (
    f"{'scenario':26} {'events':>7} {'lost':>5} {'double':>7} {'flags':>6} {'dup':>5} "
    f"{'missing':>7} {'seq':>4} {'recovery':>9} {'RSS MiB':>8} {'Redis MiB':>9}"
)


async def main(args: argparse.Namespace) -> int:
    base = Settings(
        kafka_bootstrap=args.kafka, redis_url=args.redis, state_dir=Path(args.state_dir)
    )
    stack = LocalStack(base)
    foreign = [s.name for s in stack.status() if s.up and s.managed_pid is None]
    if foreign:
        print(
            f"chaos: {' and '.join(foreign)} already answer on the drill ports but were not "
            f"started from {stack.root}; stop them or pass --kafka/--redis free ports",
            file=sys.stderr,
        )
        return 2
    try:
        started = await asyncio.to_thread(stack.up, create_topics=False)
    except StackError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    log_dir = stack.root / "logs"
    print(f"# ESN Pulse chaos drills on {base.kafka_bootstrap} and {base.redis_url}")
    print(f"# worker logs in {log_dir}")
    exact = True
    try:
        print(_HEADER)
        for name in args.only or list(SCENARIOS):
            began = time.monotonic()
            try:
                figures = await run_scenario(base, stack, log_dir, name)
            except Exception as exc:  # a drill that breaks is reported, the others still run
                exact = False
                print(f"{name:26} failed: {_one_line(exc)}", flush=True)
                continue
            exact &= figures.exact
            print(_row(figures), f"({time.monotonic() - began:.0f}s)", flush=True)
            for note in figures.notes:
                print(f"    {note}")
        if args.load_seconds > 0:
            print(f"\n# bounded under load: {args.load_seconds:.0f}s at 2x the fold rate")
            try:
                load = await bounded_under_load(base, log_dir, seconds=args.load_seconds)
            except Exception as exc:
                print(f"bounded under load failed: {_one_line(exc)}")
                return 1
            for line in load.lines():
                print(line)
            exact &= load.counted == load.produced
    finally:
        # Restarted services have new pid files in the same dir: stop whatever this run started.
        await asyncio.to_thread(stack.down, tuple(started))
    return 0 if exact else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka", default="127.0.0.1:29092", help="drill broker (loopback)")
    parser.add_argument("--redis", default="redis://127.0.0.1:26379/0", help="drill Redis")
    parser.add_argument("--state-dir", default=str(REPO / ".esn-chaos"))
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), metavar="NAME")
    parser.add_argument("--load-seconds", type=float, default=120.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
