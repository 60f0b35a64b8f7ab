"""``esn-pulse api`` as a real subprocess against the session's Redis, with tokens made by
``esn-pulse api token`` itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.settings import Settings
from tests.support import REPO, free_port, settings_env


@dataclass(frozen=True)
class MadeToken:
    """A secret and the entry ``esn-pulse api token`` printed for it."""

    name: str
    secret: str
    entry: str


def make_token(name: str, *scopes: str) -> MadeToken:
    """Run ``esn-pulse api token NAME --scope ...`` and read its two lines."""
    args = [sys.executable, "-m", "stream.cli", "api", "token", name]
    for scope in scopes:
        args += ["--scope", scope]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    secret = next(v for k, v in lines.items() if k.startswith("secret"))
    entry = next(v for k, v in lines.items() if k.startswith("entry"))
    return MadeToken(name, secret, entry)


class ApiProcess:
    """``esn-pulse api`` on a free loopback port; ``get`` sends a bearer token when given one."""

    def __init__(self, settings: Settings, log_dir: Path, **overrides: Any) -> None:
        self.settings = settings.model_copy(update={"api_port": free_port(), **overrides})
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"api-{settings.app_id}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def start(self, timeout: float = 60) -> ApiProcess:
        """Start it and wait until it answers the OpenAPI document."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "api"],
            env=settings_env(self.settings),
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.get("/api/v1/openapi.json")[0] == 200:
                return self
            time.sleep(0.05)
        raise AssertionError(f"esn-pulse api did not answer in {timeout:.0f}s: {self.log()}")

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"api exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def get(self, path: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        status, body = self.get(path, token)
        return status, json.loads(body) if body else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def query(path: str, **params: str) -> str:
    """``path?urlencoded params``."""
    return path + ("?" + urllib.parse.urlencode(params) if params else "")
