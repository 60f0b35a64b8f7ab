"""A local Prometheus (Debian's package) with ESN Pulse's rules, for `make run` and the tests.

The configuration is the shipped prometheus.yml (stream/local/resources/prometheus, the same
bytes as deploy/prometheus's) with loopback targets, the shipped rule files and shorter
intervals, so what runs locally is what ships. With ESN_METRICS_USERNAME
set, it scrapes with those basic auth credentials, the password in a file only it reads.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from stream.local.resources import install_dir, packaged_text
from stream.settings import Settings, get_settings
from stream.stack import StackError

#: Where LocalPrometheus.start copies the shipped rule files, relative to its home.
RULES_DIR = "rules"


#: Where LocalPrometheus.start writes the scrape password (0600), relative to its home.
PASSWORD_FILE = "metrics-password"


def local_config(
    targets: dict[str, list[str]],
    scrape_interval: str,
    rule_files: list[Path] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The shipped configuration with loopback targets (per env) and the shipped rules.

    The scrape credentials are those of ``settings`` (default: the environment's), as the
    workers it scrapes read them; the password stays in memory until :meth:`LocalPrometheus.start`
    writes it to a file of its own.
    """
    config: dict[str, Any] = yaml.safe_load(packaged_text("prometheus/prometheus.yml"))
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    # Relative paths are resolved from the config file's folder: the home, where start() copies
    # the shipped rules (a wheel's files are not meant to be pointed at by another program).
    config["rule_files"] = [str(path) for path in rule_files or [Path(RULES_DIR, "*.yml")]]
    # The workers' job only: the shipped nudge job names a Compose host.
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "esn-pulse")
    config["scrape_configs"] = [job]
    job["static_configs"] = [
        {"targets": hosts, "labels": {"env": env}} for env, hosts in targets.items()
    ]
    settings = settings or get_settings()
    job.pop("basic_auth", None)  # the shipped one reads a compose secret file
    if settings.metrics_username:
        job["basic_auth"] = {
            "username": settings.metrics_username,
            "password": settings.metrics_password.get_secret_value(),
        }
    return config


class LocalPrometheus:
    """Start, query and stop one Prometheus process under ``home``."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the web UI and HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any], timeout: float = 60) -> LocalPrometheus:
        """Write the config and start Prometheus; returns once it is ready."""
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise StackError("prometheus is missing: run  sudo apt-get install -y prometheus")
        self.home.mkdir(parents=True, exist_ok=True)
        install_dir("prometheus/rules", ".yml", self.home / RULES_DIR)
        config_path = self.home / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self._password_to_file(config), sort_keys=False))
        log = (self.home / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        (self.home / "prometheus.pid").write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise StackError(f"prometheus exited with {self.proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise StackError(f"prometheus not ready after {timeout:.0f}s; see {log.name}")
            time.sleep(0.2)
        return self

    def _password_to_file(self, config: dict[str, Any]) -> dict[str, Any]:
        # An inline scrape password would sit in prometheus.yml: move it to a 0600 file.
        out = copy.deepcopy(config)
        for job in out.get("scrape_configs", []):
            auth = job.get("basic_auth") or {}
            if "password" in auth:
                path = self.home / PASSWORD_FILE
                path.touch(mode=0o600)
                path.chmod(0o600)
                path.write_text(auth.pop("password"))
                auth["password_file"] = str(path)
        return out

    def ready(self) -> bool:
        """True when /-/ready answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def page_url(self, page: str) -> str:
        """The URL of a web UI page that answers: ``/alerts`` on a build with the React UI,
        ``/classic/alerts`` on Debian's (its package ships only the classic UI, and /alerts is
        a 404 there). A page that only redirects does not count: Debian's /graph goes round."""
        for candidate in (f"{self.url}/{page}", f"{self.url}/classic/{page}"):
            try:
                with urllib.request.urlopen(candidate, timeout=5) as response:
                    if response.status == 200 and response.geturl() == candidate:
                        return candidate
            except (urllib.error.URLError, OSError):
                continue
        raise StackError(f"prometheus at {self.url} serves no {page} page (nor classic/{page})")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns the "data" member, raises on an error status."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise StackError(f"{url}: {exc.code} {exc.read().decode()[:500]}") from None
        if body.get("status") != "success":
            raise StackError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
