"""Local server processes: spawning them detached, their pid files, ports, and stopping them.

Shared by the single-node stack (stream/stack.py) and the local clusters (Redis Cluster, a
three-broker Kafka), so every local service is started and stopped the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Local services are only ever started on, and probed at, these hosts.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class StackError(RuntimeError):
    """A local service could not be provided; the message says what to do."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (a Ctrl-C of ours does not reach it), its output
    appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def read_pid(path: Path) -> int | None:
    """The pid in ``path`` when that process is alive, else None."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def stop_pid(path: Path, timeout: float) -> bool:
    """SIGTERM the process of ``path`` (SIGKILL after ``timeout``); False when none was alive."""
    pid = read_pid(path)
    path.unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
    return True


def kill_pid(path: Path, timeout: float = 30) -> int | None:
    """SIGKILL the process of ``path`` and wait until it is gone; its pid, or None if none."""
    pid = read_pid(path)
    if pid is None:
        return None
    os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    wait_gone(pid, timeout)
    return pid


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit (reaping it when it is our child); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                return True
        except ChildProcessError:
            pass  # not our child (started by an earlier command): poll it instead
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.2)
    return False
