"""The worker's /metrics behind basic auth (ESN_METRICS_USERNAME/PASSWORD), probes left open,
and the local Prometheus scraping it with the credentials, against the real stack."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from stream.prometheus_local import PASSWORD_FILE, LocalPrometheus, local_config
from stream.settings import Settings
from tests.support import WorkerProcess, eventually, free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "metrics-pw-7Qe!x"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(worker: WorkerProcess, path: str, authorization: str | None = None) -> tuple[int, Any]:
    """Status, headers and body of a GET, with an optional Authorization header."""
    request = urllib.request.Request(worker.base_url + path)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, (response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, (exc.headers, exc.read())


class TestMetricsBasicAuth:
    async def test_metrics_need_the_credentials_and_probes_stay_open(
        self, settings: Settings, worker_factory: Any, tmp_path: Path
    ) -> None:
        """No, wrong or malformed credentials: 401 with a Basic challenge; the right ones: 200;
        /health and /ready answer without any; Prometheus scrapes with them (up == 1)."""
        guarded = settings.model_copy(
            update={"metrics_username": USER, "metrics_password": SecretStr(PASSWORD)}
        )
        worker = await worker_factory(guarded).started()  # waited on /ready, no credentials
        assert 200 == get(worker, "/health")[0]
        assert 200 == get(worker, "/ready")[0]

        refused = {
            "no header": None,
            "wrong password": basic(USER, PASSWORD + "x"),
            "wrong user": basic("root", PASSWORD),
            "empty password": basic(USER, ""),
            "not base64": "Basic !!!not-base64!!!",
            "bearer": "Bearer " + PASSWORD,
            "password only": "Basic " + base64.b64encode(PASSWORD.encode()).decode(),
        }
        for case, header in refused.items():
            status, (headers, body) = get(worker, "/metrics", header)
            assert 401 == status, case
            assert headers["WWW-Authenticate"].startswith("Basic "), case
            assert b"esn_events_total" not in body, case

        status, (headers, body) = get(worker, "/metrics", basic(USER, PASSWORD))
        assert 200 == status
        assert headers["Content-Type"].startswith("text/plain; version=")
        assert b"esn_redis_up" in body and b"faust_" in body

        home = tmp_path / "prometheus"
        prometheus = LocalPrometheus(home, free_port())
        target = f"127.0.0.1:{worker.settings.web_port}"
        config = local_config({"auth": [target]}, scrape_interval="1s", settings=worker.settings)
        prometheus.start(config)
        try:
            assert PASSWORD not in (home / "prometheus.yml").read_text()
            assert 0o600 == (home / PASSWORD_FILE).stat().st_mode & 0o777

            async def scraped() -> bool:
                result = await asyncio.to_thread(prometheus.query, 'up{env="auth"}')
                return bool(result) and result[0]["value"][1] == "1"

            await eventually(scraped, 60, "Prometheus scraping with basic auth", worker.check_alive)
        finally:
            prometheus.stop()
        assert PASSWORD not in worker.log_path.read_text()
