"""Every secret setting reaches the compose services and the Kubernetes pods from a secret,
never from a ConfigMap, an environment literal or a committed file with a value in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from stream.config_file import read_config_file
from stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
#: Settings whose type is SecretStr: passwords, keys, tokens.
SECRET_SETTINGS = {
    f"ESN_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr
}
#: May carry a password: treated as a secret too (kept out of the settings' repr).
SECRET_LIKE = SECRET_SETTINGS | {"ESN_REDIS_URL"}
#: Settings that name a file: in a pod it must come from a mounted Secret.
FILE_SETTINGS = {
    f"ESN_{name.upper()}"
    for name in Settings.model_fields
    if name.endswith(("_cafile", "_certfile", "_keyfile"))
}
#: Who may read which secret: the api reads Redis only.
WORKER_ONLY = {"ESN_KAFKA_SASL_PASSWORD", "ESN_METRICS_PASSWORD"}


def k8s_documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def pods() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Deployment name -> (pod spec, its one container)."""
    out = {}
    for doc in k8s_documents():
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            out[doc["metadata"]["name"]] = (pod, container)
    return out


def config_maps() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["data"] for d in k8s_documents() if d["kind"] == "ConfigMap"}


def pod_environment(container: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(literal values from the ConfigMaps and env, name -> secretKeyRef)."""
    maps = config_maps()
    literal: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            literal |= maps[source["configMapRef"]["name"]]
    from_secrets = {}
    for entry in container.get("env", []):
        if "value" in entry:
            literal[entry["name"]] = entry["value"]
        else:
            from_secrets[entry["name"]] = entry["valueFrom"]["secretKeyRef"]
    return literal, from_secrets


def secret_mounts(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The mount paths of the container's volumes that are Secrets."""
    secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    return [
        m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes
    ]


class TestKubernetesSecrets:
    def test_no_secret_setting_is_a_literal_or_in_a_config_map(self) -> None:
        """No ConfigMap key and no env value sets a password, key, token or the Redis URL."""
        for name, data in config_maps().items():
            assert not SECRET_LIKE & set(data), name
        for name, (_, container) in pods().items():
            literal = {e["name"] for e in container.get("env", []) if "value" in e}
            assert not SECRET_LIKE & literal, name

    def test_every_secret_setting_comes_from_a_secret_that_is_not_shipped(self) -> None:
        """Each SecretStr setting reaches a pod by secretKeyRef (the api tokens as a file from a
        Secret volume), from a Secret the manifests reference but do not contain."""
        shipped = {d["metadata"]["name"] for d in k8s_documents() if d["kind"] == "Secret"}
        provided: set[str] = set()
        for name, (pod, container) in pods().items():
            literal, from_secrets = pod_environment(container)
            for variable, ref in from_secrets.items():
                assert ref["name"] not in shipped, (name, variable)
            provided |= set(from_secrets)
            if "ESN_API_TOKENS_FILE" in literal:
                mounts = secret_mounts(pod, container)
                assert any(literal["ESN_API_TOKENS_FILE"].startswith(m + "/") for m in mounts)
                provided.add("ESN_API_TOKENS")
        assert SECRET_LIKE <= provided, f"not from a Secret: {sorted(SECRET_LIKE - provided)}"

    def test_the_api_gets_no_kafka_or_metrics_secret(self) -> None:
        """Least privilege: the api reads Redis only; the workers hold the Kafka credentials."""
        _, api = pods()["esn-pulse-api"]
        literal, from_secrets = pod_environment(api)
        assert not WORKER_ONLY & set(from_secrets)
        assert not {k for k in literal if k.startswith("ESN_KAFKA_")}
        _, worker = pods()["esn-pulse-worker"]
        assert WORKER_ONLY <= set(pod_environment(worker)[1])

    def test_tls_files_are_mounted_from_secrets(self) -> None:
        """Every CA, certificate or key path a pod is given lies in a volume from a Secret."""
        for name, (pod, container) in pods().items():
            literal, _ = pod_environment(container)
            mounts = secret_mounts(pod, container)
            for variable in FILE_SETTINGS & set(literal):
                path = literal[variable]
                assert any(path.startswith(m + "/") for m in mounts), (name, variable, path)

    def test_each_pod_s_settings_are_accepted(self) -> None:
        """The ConfigMaps and env, with the secrets filled in, pass the settings' checks (a TLS
        file with a plaintext protocol, or SASL without its password, would exit 5)."""
        for _, container in pods().values():
            literal, from_secrets = pod_environment(container)
            values = {k[4:].lower(): v for k, v in literal.items() if k.startswith("ESN_")}
            for variable in from_secrets:
                values[variable[4:].lower()] = "placeholder"
            values["redis_url"] = "rediss://redis.example:6380/0"
            Settings(**values)  # raises on a refused combination


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return doc


def esn_services() -> dict[str, dict[str, Any]]:
    """The services that run esn-pulse."""
    return {n: s for n, s in compose()["services"].items() if s["image"].startswith("esn-pulse")}


def mounted(service: dict[str, Any]) -> dict[str, str]:
    """/run/secrets path -> secret name."""
    out = {}
    for entry in service.get("secrets", []):
        source, target = (
            (entry, entry)
            if isinstance(entry, str)
            else (entry["source"], entry.get("target", entry["source"]))
        )
        out[f"/run/secrets/{target}"] = source
    return out


class TestComposeSecrets:
    def test_no_secret_setting_is_in_an_environment(self) -> None:
        """No service sets a SecretStr setting inline (nor as an interpolation default), and the
        Redis URL carries no credentials."""
        for name, service in compose()["services"].items():
            env = service.get("environment", {})
            assert not SECRET_SETTINGS & set(env), name
            if "ESN_REDIS_URL" in env:
                assert "@" not in env["ESN_REDIS_URL"], name

    def test_secret_settings_come_from_the_mounted_config_file(self) -> None:
        """Every esn-pulse service reads ESN_CONFIG_FILE from a secret it mounts, and the
        shipped file sets nothing (comments only), so no secret is committed."""
        files = compose()["secrets"]
        for name, service in esn_services().items():
            path = service["environment"]["ESN_CONFIG_FILE"]
            secret = mounted(service)[path]
            shipped = REPO / files[secret]["file"]
            assert {} == read_config_file(Settings.model_fields, shipped).values, name
            text = shipped.read_text()
            assert all(line.startswith("#") for line in text.splitlines() if line.strip())
            for variable in SECRET_SETTINGS - {"ESN_API_TOKENS"}:
                assert variable in text, f"{shipped.name} does not say where {variable} goes"

    def test_tls_files_are_secrets_shipped_empty(self) -> None:
        """Each file setting is empty by default or names a mounted secret; the PEM and password
        files are shipped empty."""
        files = compose()["secrets"]
        for name, service in esn_services().items():
            targets = mounted(service)
            for variable in FILE_SETTINGS:
                value = re.sub(r"\$\{[A-Z_]+:-(.*)\}", r"\1", service["environment"][variable])
                assert not value or value in targets, (name, variable)
        for secret in files.values():
            path = REPO / secret["file"]
            if path.suffix in (".pem", ".key") or path.name == "metrics-password":
                assert 0 == path.stat().st_size, path

    def test_prometheus_reads_the_scrape_password_from_a_secret(self) -> None:
        """The password_file of the shipped scrape job is a secret mounted in Prometheus."""
        config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "esn-pulse")
        assert job["basic_auth"]["password_file"] in mounted(compose()["services"]["prometheus"])
