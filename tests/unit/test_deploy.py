"""Grafana provisioning and dashboard, and the Kubernetes manifests, checked statically.

(The live test in tests/integration/test_prometheus.py runs every panel query for real.)
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream.metrics import PipelineMetrics
from stream.nudge.metrics import NudgeMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/esn-engagement.json"
K8S = REPO / "deploy/k8s"
K8S_VERSION = "1.30"


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def known_series() -> set[str]:
    """Every series name the workers expose, plus the recording rules and Prometheus' own."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    NudgeMetrics(registry)  # esn-pulse nudge's own /metrics
    names = {"up"}
    for family in registry.collect():
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    rules = yaml.safe_load((REPO / "deploy/prometheus/rules/esn-pulse.yml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names


class TestGrafana:
    def test_datasource_uid_is_the_one_the_dashboard_uses(self) -> None:
        """Provisioned datasource uid == every panel's and target's datasource uid."""
        provisioning = yaml.safe_load(
            (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
        )
        (source,) = provisioning["datasources"]
        assert source["type"] == "prometheus"
        for panel in panels():
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]

    def test_dashboard_provider_points_at_the_mounted_folder(self) -> None:
        """The provider path is where compose mounts deploy/grafana/dashboards."""
        provider = yaml.safe_load(
            (REPO / "deploy/grafana/provisioning/dashboards/esn-pulse.yml").read_text()
        )
        assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"

    def test_panels_have_ids_descriptions_and_a_layout_without_overlap(self) -> None:
        """Unique ids, a definition in every description, grid cells used once."""
        doc = dashboard()
        assert doc["uid"] == "esn-engagement" and doc["title"] == "ESN engagement"
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for panel in doc["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps"
                    cells.add((x, y))
        for panel in panels():
            assert len(panel["description"]) >= 60, panel["title"]
            assert panel["targets"] or panel["type"] == "alertlist", panel["title"]

    def test_the_issue_s_figures_each_have_a_panel(self) -> None:
        """DAU/WAU/MAU, stickiness, states, flags, tiers, content, communities, DLQ, lag, health."""
        exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
        wanted = (
            "esn_active_users", "esn_stickiness", "esn_users_inactive", "esn_users_never_active",
            "esn_users_at_risk", "esn_flags", "esn_reactivations_total", "esn_tier_users",
            "esn_events_total",
            "esn_events:rate5m", "esn_communities", "esn_events_invalid", "esn_consumer_lag", "up{",
        )  # fmt: skip
        for series in wanted:
            assert series in exprs, series

    def test_every_query_names_series_that_exist(self) -> None:
        """A renamed metric cannot leave a panel silently empty."""
        known = known_series()
        for panel in panels():
            for target in panel["targets"]:
                names = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*(?:\{|\[|\))", target["expr"]))
                functions = {"sum", "max", "min", "rate", "increase", "histogram_quantile", "by"}
                unknown = {n for n in names - functions if n.startswith(("esn", "env:", "up"))}
                assert unknown <= known, f"{panel['title']}: {unknown - known}"

    def test_templated_by_environment(self) -> None:
        """$env chooses the environment in every query."""
        (variable,) = dashboard()["templating"]["list"]
        assert variable["name"] == "env" and variable["includeAll"]
        for panel in panels():
            for target in panel["targets"]:
                assert 'env=~"$env"' in target["expr"], panel["title"]


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


class TestKubernetes:
    @pytest.mark.parametrize(
        ("name", "doc"), k8s_documents(), ids=lambda v: v if isinstance(v, str) else v["kind"]
    )
    def test_manifests_validate_against_the_kubernetes_schemas(
        self, name: str, doc: dict[str, Any]
    ) -> None:
        """Core objects against the Kubernetes OpenAPI schemas; the CRD against its shape."""
        if doc["kind"] == "PrometheusRule":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            for group in doc["spec"]["groups"]:
                assert group["name"] and group["rules"]
            return
        if doc["kind"] == "ServiceMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            (endpoint,) = doc["spec"]["endpoints"]
            assert ("http", "/metrics") == (endpoint["port"], endpoint["path"])
            return
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    def test_worker_has_probes_resources_and_config_references(self) -> None:
        """Liveness on /health, readiness on /ready, requests, envFrom the ConfigMap and Secret."""
        docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_documents()}
        deployment = docs[("Deployment", "esn-pulse-worker")]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        refs = {next(iter(ref)) for ref in container["envFrom"]}
        assert refs == {"configMapRef", "secretRef"}
        assert docs[("Service", "esn-pulse-worker")]["spec"]["ports"][0]["port"] == 6066

    def test_api_is_its_own_deployment_with_tokens_from_a_secret(self) -> None:
        """esn-pulse api: its own Deployment and Service, probes, the token file from a Secret
        that is referenced but not shipped (an empty one would overlay the real one)."""
        docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_documents()}
        pod = docs[("Deployment", "esn-pulse-api")]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert ["api"] == container["args"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        (volume,) = [v for v in pod["volumes"] if v["name"] == "api-tokens"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "api-tokens"]
        assert volume["name"] == mount["name"] and mount["readOnly"]
        assert env["ESN_API_TOKENS_FILE"].startswith(mount["mountPath"] + "/")
        secret = volume["secret"]["secretName"]
        assert ("Secret", secret) not in docs
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        service = docs[("Service", "esn-pulse-api")]
        assert env["ESN_API_PORT"] == str(service["spec"]["ports"][0]["port"])
        for _, doc in k8s_documents():
            if doc["kind"] in ("ConfigMap", "Secret"):
                assert not {"ESN_API_TOKENS", "ESN_API_HOST"} & set(
                    doc.get("data", {}) | doc.get("stringData", {})
                ), doc["metadata"]["name"]

    def test_network_policies_after_the_kustomization_patches(self) -> None:
        """Workers admit Prometheus on 6066 only; the api admits the kustomization's namespaces
        on 6067 only; every resource listed exists and every patch applies to one object."""
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_documents()}
        for patch in kustomization["patches"]:
            target = docs[(patch["target"]["kind"], patch["target"]["name"])]
            for op in yaml.safe_load(patch["patch"]):
                assert op["op"] == "replace"
                *parents, last = op["path"].strip("/").split("/")
                node: Any = target
                for part in parents:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                key: Any = int(last) if isinstance(node, list) else last
                assert key in node if isinstance(node, dict) else key < len(node), op["path"]
                node[key] = op["value"]
            kubernetes_validate.validate(target, K8S_VERSION, strict=True)
        worker = docs[("NetworkPolicy", "esn-pulse-worker")]["spec"]
        assert {"app.kubernetes.io/component": "worker"}.items() <= worker["podSelector"][
            "matchLabels"
        ].items()
        (rule,) = worker["ingress"]
        (source,) = rule["from"]
        assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
        assert [{"protocol": "TCP", "port": 6066}] == rule["ports"]
        api = docs[("NetworkPolicy", "esn-pulse-api")]["spec"]
        (rule,) = api["ingress"]
        (source,) = rule["from"]
        (expression,) = source["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert ["dashboards", "hr-tools"] == expression["values"]
        assert [{"protocol": "TCP", "port": 6067}] == rule["ports"]
        assert ["Ingress"] == api["policyTypes"] == worker["policyTypes"]

    def test_generated_manifests_are_current(self) -> None:
        """The PrometheusRule and dashboard ConfigMap are what render.py makes of their sources."""
        spec = importlib.util.spec_from_file_location("render", K8S / "render.py")
        assert spec and spec.loader
        render = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(render)
        for path, content in render.rendered().items():
            assert path.read_text() == content, f"{path.name} is stale: run make manifests"
        rule = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())
        rules = yaml.safe_load((REPO / "deploy/prometheus/rules/esn-pulse.yml").read_text())
        assert rule["spec"]["groups"] == rules["groups"]
        board = yaml.safe_load((K8S / "dashboards.yaml").read_text())
        assert json.loads(board["data"]["esn-engagement.json"]) == dashboard()
