"""The Debian ``redis-server`` for local use: finding (or installing) it and its command line.

The single-node stack and the local Redis Cluster start their nodes with the same persistence,
so a node of either keeps its state over a restart the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from stream.local.processes import StackError


def redis_binary() -> str:
    """Path of redis-server; installed with apt-get when missing and we are root."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)
        return "/usr/bin/redis-server"
    raise StackError("redis-server is missing: run  sudo apt-get install -y redis-server")


def redis_command(port: int, data: Path, extra: list[str] | None = None) -> list[str]:
    """redis-server on 127.0.0.1:``port`` keeping its files in ``data``, then ``extra`` options."""
    return [
        redis_binary(),
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
        # Append-only with an fsync a second: a restart keeps state, losing at most
        # a second, which the offset fences then replay from Kafka.
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--daemonize", "no", "--protected-mode", "yes",
        *(extra or []),
    ]  # fmt: skip
