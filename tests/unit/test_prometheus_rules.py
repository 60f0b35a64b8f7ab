"""Prometheus rules: promtool accepts them; every alert is tested firing and quiet, documented."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "esn-pulse.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool comes with Debian's prometheus package (make install installs it)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_and_config_pass_promtool_checks() -> None:
    """promtool check rules / check config."""
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_rule_unit_tests_pass() -> None:
    """promtool test rules over deploy/prometheus/tests/."""
    files = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*.yml"))
    ran = promtool("test", "rules", *files)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert appears in a test that expects it and in one that expects nothing."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names == firing, "alerts without a firing test"
    assert names <= quiet, f"alerts without a quiet test: {names - quiet}"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_has_severity_and_runbook_and_is_in_the_readme(rule: dict[str, Any]) -> None:
    """An alert that pages someone says what it means and what to do, here and in the README."""
    assert rule["labels"]["severity"] in ("warning", "critical")
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"].get(key), key
    assert f"`{rule['alert']}`" in (REPO / "docs" / "operations" / "monitoring.md").read_text()
