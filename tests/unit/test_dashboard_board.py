"""The Grafana board reads at a glance: coloured thresholds on its stats, one unit per kind of
figure, a department panel and a list of the alerts (deploy/grafana/dashboards/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / "deploy/grafana/dashboards/esn-engagement.json"
#: Series counting people or communities now: shown as whole numbers.
COUNTED = ("esn_active_users:", "esn_users_", "esn_tier_users", "esn_department_users",
           "esn_communities")  # fmt: skip


def panels() -> list[dict[str, Any]]:
    board: dict[str, Any] = json.loads(BOARD.read_text())
    return [p for p in board["panels"] if p["type"] != "row"]


def exprs(panel: dict[str, Any]) -> str:
    return " ".join(t["expr"] for t in panel.get("targets", []))


class TestBoard:
    def test_every_stat_has_coloured_thresholds(self) -> None:
        """A stat colours its background by at least two threshold steps."""
        stats = [p for p in panels() if p["type"] == "stat"]
        assert len(stats) >= 6
        for panel in stats:
            defaults = panel["fieldConfig"]["defaults"]
            steps = defaults["thresholds"]["steps"]
            assert len(steps) >= 2 and steps[0]["value"] is None, panel["title"]
            assert len({s["color"] for s in steps}) == len(steps), panel["title"]
            assert "thresholds" == defaults["color"]["mode"], panel["title"]
            assert "background" == panel["options"]["colorMode"], panel["title"]

    def test_every_query_has_a_unit_and_alike_figures_share_it(self) -> None:
        """Counts are "short" without decimals; shares percentunit; durations seconds; rates per
        unit of time (a query's unit: its panel's, or the override naming its refId)."""
        for panel in panels():
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            for target in panel["targets"]:
                props = {"unit": defaults.get("unit"), "decimals": defaults.get("decimals", 0)}
                for override in panel["fieldConfig"]["overrides"]:
                    if override["matcher"] == {"id": "byFrameRefID", "options": target["refId"]}:
                        props |= {p["id"]: p["value"] for p in override["properties"]}
                unit, text, where = props["unit"], target["expr"], (panel["title"], target["refId"])
                assert unit, where
                if " / " in text and unit == "percentunit":
                    continue  # a share of enabled users
                if "stickiness" in text or "ratio" in text:
                    assert "percentunit" == unit, where
                elif "_seconds" in text:
                    assert "s" == unit, where
                elif "rate" in text:
                    assert unit in ("suffix:/s", "suffix:/h"), where
                elif any(name in text for name in COUNTED):
                    assert ("short", 0) == (unit, props["decimals"]), where

    def test_a_department_panel_and_an_alert_list(self) -> None:
        """Users by department and state; the ESN alert rules from the Prometheus data source."""
        (department,) = [p for p in panels() if "by (department, state)" in exprs(p)]
        assert "by (department, state)" in exprs(department)
        assert "ESN_MIN_GROUP_SIZE" in department["description"]
        (alerts,) = [p for p in panels() if p["type"] == "alertlist"]
        assert "esn-prometheus" == alerts["options"]["datasource"]
        assert (
            alerts["options"]["stateFilter"]["firing"]
            and alerts["options"]["stateFilter"]["pending"]
        )
