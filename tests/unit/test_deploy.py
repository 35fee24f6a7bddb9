"""The observability files in deploy/: valid, generated, and naming only real metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ponder.server.metrics import Metrics

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"


def build_dashboards() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", DEPLOY / "grafana" / "build_dashboards.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, Any]:
    folder = DEPLOY / "grafana" / "dashboards"
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_promtool_accepts_the_scrape_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_has_the_jobs_the_dashboards_select() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["ponder", "vllm"]


def test_the_dashboard_files_are_what_the_script_writes() -> None:
    written = build_dashboards().render()
    on_disk = {
        path.name: path.read_text() for path in (DEPLOY / "grafana" / "dashboards").glob("*.json")
    }
    assert written == on_disk, "run: python deploy/grafana/build_dashboards.py"


def test_dashboards_name_only_metrics_the_gateway_serves() -> None:
    families = {metric.name for metric in Metrics().registry.collect()}
    served = set()
    for family in families:
        served |= {
            family,
            f"{family}_total",
            f"{family}_bucket",
            f"{family}_count",
            f"{family}_sum",
        }
    used = set()
    for dashboard in dashboards().values():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                used |= set(re.findall(r"\bponder_[a-z_]+", target["expr"]))
    assert used
    assert used <= served, used - served


def test_dashboards_are_well_formed_and_use_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    uids = set()
    for name, dashboard in dashboards().items():
        uids.add(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == uid, name
        panels = dashboard["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), name
        for panel in panels:
            assert panel["targets"], (name, panel["title"])
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
    assert len(uids) == 3
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "ponder.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/ponder"
