"""The built wheel, installed into a fresh venv outside the checkout, works on its own.

What `pipx install` of the wheel gives a user: the package is built from the files the
Dockerfile copies (pyproject.toml, README.md, stream/) into a temporary folder, installed with
its declared dependencies only (no dev extras) into a venv of its own, and run from a working
directory with no checkout in sight. Then: ``--version``; ``stack up`` of a broker and Redis of
its own (a fresh state dir, so Maven runs the shipped pom and the broker logs through the shipped
Log4j config); ``worker`` until /ready; ``import`` of every format into it; ``report``;
``config`` reading ./esn-pulse.toml. Dependencies are cached as wheels in the test state dir,
so a second run installs offline.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import stream
from stream import jsonutil
from stream.cli_import import FORMATS
from stream.kafka_admin import ensure_topics
from stream.local.resources import packaged_text
from stream.queries import inactivity_state
from stream.settings import Settings
from stream.stack import LocalStack, port_open
from stream.store import RedisStore
from tests.e2e.test_import import CLOCK_TICK, EXPECTED, FIXTURES, IMPORTS, state_name
from tests.support import (
    REPO,
    delete_deployment_keys,
    eventually,
    free_port,
    isolated,
    produce_raw,
    settings_env,
)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Installed:
    """The wheel installed in a venv of its own, and a working directory outside the checkout."""

    wheel: Path
    venv: Path
    cwd: Path
    timings: dict[str, float]

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "esn-pulse"

    def run(
        self, settings: Settings, *args: str, timeout: float = 300, unset: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """``esn-pulse ARGS`` of the installed venv, from the outside working directory."""
        env = {k: v for k, v in outside_env(settings).items() if k not in unset}
        return subprocess.run(
            [str(self.command), *args],
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def outside_env(settings: Settings) -> dict[str, str]:
    """The settings as ESN_* variables, and nothing that could lead Python to the checkout."""
    env = settings_env(settings)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def dockerfile_build_inputs() -> list[str]:
    """The checkout paths the Dockerfile's build stage copies (COPY lines before the 2nd FROM)."""
    lines = (REPO / "deploy" / "docker" / "Dockerfile").read_text().splitlines()
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    copies = [
        line.split()[1:-1] for line in lines[stages[0] : stages[1]] if line.startswith("COPY ")
    ]
    inputs = [path.rstrip("/") for paths in copies for path in paths]
    assert {"pyproject.toml", "stream"} <= set(inputs), inputs
    return inputs


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    # The project venv's pip drives the new venv (--python): the new one needs no pip of its own.
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _checked(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert 0 == done.returncode, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    timings: dict[str, float] = {}

    # What deploy/docker/Dockerfile copies, and nothing else: the wheel must not need more.
    source = root / "source"
    source.mkdir()
    for name in dockerfile_build_inputs():
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    started = time.monotonic()
    dist = root / "dist"
    _checked(_pip("wheel", "--no-deps", "-q", "-w", str(dist), str(source)), "pip wheel")
    (wheel,) = dist.glob("esn_pulse-*.whl")
    timings["build"] = time.monotonic() - started

    started = time.monotonic()
    venv = root / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True
    )
    _checked(made, "python -m venv")
    python = str(venv / "bin" / "python")
    wheelhouse = stack_settings.state_dir / "wheelhouse"
    install = ("--python", python, "install", "-q", "--no-compile", "--no-index")
    offline = _pip(*install, "--find-links", str(wheelhouse), str(wheel))
    if offline.returncode != 0:
        # First run, or a dependency changed: fetch every dependency as a wheel, then again.
        _checked(
            _pip("wheel", "-q", "-w", str(wheelhouse), "--find-links", str(wheelhouse), str(wheel)),
            "pip wheel of the dependencies",
        )
        for own in wheelhouse.glob("esn_pulse-*.whl"):
            own.unlink()  # this run's build is the one installed, never a cached one
        _checked(_pip(*install, "--find-links", str(wheelhouse), str(wheel)), "pip install")
    timings["install"] = time.monotonic() - started

    cwd = root / "elsewhere"
    cwd.mkdir()
    print(f"\nwheel {wheel.name}: built in {timings['build']:.1f} s, installed in "
          f"{timings['install']:.1f} s")  # fmt: skip
    yield Installed(wheel, venv, cwd, timings)


class TestInstalledWheel:
    def test_version_and_the_package_is_the_venvs_own(
        self, installed: Installed, stack_settings: Settings
    ) -> None:
        """--version is the built version, and the code run is the venv's copy, not the checkout."""
        done = installed.run(stack_settings, "--version")
        _checked(done, "esn-pulse --version")
        assert f"esn-pulse, version {stream.__version__}\n" == done.stdout
        where = subprocess.run(
            [str(installed.venv / "bin" / "python"), "-c", "import stream; print(stream.__file__)"],
            env=outside_env(stack_settings),
            cwd=installed.cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(where).is_relative_to(installed.venv), where

    def test_stack_up_runs_the_shipped_pom_and_log4j_config(
        self, installed: Installed, stack_settings: Settings, tmp_path: Path
    ) -> None:
        """A fresh state dir: Maven fetches the broker with the packaged pom, which then logs
        through the packaged Log4j config; status and down work on what up started."""
        kafka_port = _free_pair()
        own = stack_settings.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{kafka_port}",
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "state_dir": tmp_path / "state",
            }
        )
        try:
            up = installed.run(own, "stack", "up", timeout=600)
            _checked(up, "esn-pulse stack up")
            assert "started: kafka, redis" in up.stdout
            kafka_home = own.state_dir / "kafka"
            assert packaged_text("kafka/pom.xml") == (kafka_home / "pom.xml").read_text()
            assert (kafka_home / f"libs-{own.kafka_version}").is_dir(), "Maven fetched the jars"
            assert "KafkaConfig values" in (kafka_home / "server.log").read_text(), (
                "the broker logged through the shipped log4j2.properties"
            )
            _checked(installed.run(own, "stack", "status"), "esn-pulse stack status")
            down = installed.run(own, "stack", "down", timeout=120)
            _checked(down, "esn-pulse stack down")
            assert "stopped: kafka, redis" in down.stdout
            assert not port_open("127.0.0.1", kafka_port)
        finally:
            LocalStack(own).down()  # whatever a failed step left running

    def test_worker_imports_every_format_and_reports(
        self, installed: Installed, local_stack: Any, stack_settings: Settings
    ) -> None:
        """The installed worker reaches /ready, folds an import of every format (each person
        ends in the state the fixtures call for), report writes its page, SIGTERM exits 0."""
        assert set(FORMATS) == {fmt for fmt, _, _ in IMPORTS}, "a format without a smoke import"
        settings = isolated(stack_settings, "whl", clock="event", activity_partitions=1,
                            inactivity_thresholds="30d", never_active_grace="14d",
                            allowed_lateness="1h", sweep_interval_seconds=0.3)  # fmt: skip
        asyncio.run(ensure_topics(settings))
        log = (installed.cwd / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(installed.command), "worker"],
            env=outside_env(settings),
            cwd=installed.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            asyncio.run(_wait_ready(settings, worker, installed.cwd / "worker.log"))
            for fmt, source, options in IMPORTS:
                done = installed.run(
                    settings, "import", "--format", fmt, str(FIXTURES / source), "--to-kafka",
                    *options,
                )  # fmt: skip
                _checked(done, f"esn-pulse import --format {fmt} {source}")
                assert json.loads(done.stdout)["records_mapped"] > 0, (fmt, done.stdout)
            asyncio.run(_wait_settled(settings))

            page = installed.cwd / "report.html"
            done = installed.run(settings, "report", "--out", str(page))
            _checked(done, "esn-pulse report")
            html = page.read_text()
            chart_js = (REPO / "stream/report/vendor/chart.umd.min.js").read_text()
            assert "<canvas" in html, "the shipped template"
            assert chart_js in html, "the shipped chart.js, inline so the page works offline"

            worker.send_signal(signal.SIGTERM)
            assert 0 == worker.wait(timeout=60), (installed.cwd / "worker.log").read_text()[-3000:]
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
            log.close()
            delete_deployment_keys(settings)

    def test_config_reads_the_working_directorys_toml(
        self, installed: Installed, stack_settings: Settings
    ) -> None:
        """esn-pulse config of the installed tool names ./esn-pulse.toml and what it set; the
        environment still wins where it sets a value."""
        (installed.cwd / "esn-pulse.toml").write_text('log_level = "warning"\nweb_port = 1\n')
        try:
            done = installed.run(stack_settings, "config", "--json", unset=("ESN_LOG_LEVEL",))
            _checked(done, "esn-pulse config")
        finally:
            (installed.cwd / "esn-pulse.toml").unlink()
        doc = json.loads(done.stdout)
        assert "esn-pulse.toml" == doc["config_file"]
        rows = {row["name"]: (row["value"], row["source"]) for row in doc["settings"]}
        assert ("warning", "file") == rows["ESN_LOG_LEVEL"]
        assert (str(stack_settings.web_port), "env") == rows["ESN_WEB_PORT"]


def _free_pair() -> int:
    """A port whose next one is free too (the local broker's controller listens there)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and not port_open("127.0.0.1", port + 1):
            return port
    raise AssertionError("no two consecutive free ports on loopback")


async def _wait_ready(settings: Settings, worker: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.error
    import urllib.request

    def alive() -> None:
        if worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode}:\n{log.read_text()}")

    async def ready() -> bool:
        def get() -> int:
            url = f"http://127.0.0.1:{settings.web_port}/ready"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return int(response.status)
            except (urllib.error.URLError, OSError):
                return 0

        return 200 == await asyncio.to_thread(get)

    await eventually(ready, 120, "installed worker /ready", alive)


async def _wait_settled(settings: Settings) -> None:
    """The clock moved past the fixtures; every fixture person ends in their state."""
    await produce_raw(settings, [(b"clock-tick", jsonutil.dumps(CLOCK_TICK))])
    expected = {user: state for people in EXPECTED.values() for user, state in people.items()}
    store = RedisStore.from_settings(settings)
    try:

        async def settled() -> bool:
            for user, state in expected.items():
                if state != state_name(await inactivity_state(store, settings, user)):
                    return False
            return True

        await eventually(settled, 120, "every fixture person in their state")
    finally:
        await store.close()
