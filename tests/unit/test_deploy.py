"""The observability files in deploy/: valid, generated, and naming only real metrics."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
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
    for folder in (DEPLOY / "grafana" / "dashboards", DEPLOY / "helm" / "ponder" / "dashboards"):
        on_disk = {path.name: path.read_text() for path in folder.glob("*.json")}
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


# -- the Helm chart -------------------------------------------------------------

CHART = DEPLOY / "helm" / "ponder"
K8S_VERSION = "1.30"


def render(*sets: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``--set`` values, as manifests."""
    helm = shutil.which("helm")
    assert helm, "helm comes with the test extra (helm-binary)"
    argv = [helm, "template", "t", str(CHART)]
    for value in sets:
        argv += ["--set", value]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    (found,) = [
        m
        for m in manifests
        if m["kind"] == kind
        and m["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return found


VARIANTS = {
    "defaults": (),
    "external redis, no autoscaling": (
        "redis.enabled=false",
        "redis.externalUrl=redis://cache.example:6379/0",
        "gateway.autoscaling.enabled=false",
    ),
    "tensor and pipeline parallel over Ray": (
        "engine.tensorParallelSize=8",
        "engine.pipelineParallelSize=2",
        "engine.gpusPerReplica=8",
        "engine.ray.enabled=true",
        "engine.ray.address=ray://ray-head:10001",
        "engine.maxModelLen=32768",
    ),
    "no monitoring": (
        "monitoring.serviceMonitor.enabled=false",
        "monitoring.grafanaDashboards.enabled=false",
    ),
    "api keys from a secret": ("gateway.apiKeysSecret=ponder-keys",),
}


def test_api_keys_reach_the_gateway_from_a_secret() -> None:
    gateway = by_kind(render("gateway.apiKeysSecret=ponder-keys"), "Deployment", "gateway")
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["PONDER_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "ponder-keys", "key": "api-keys"}
    assert env["PONDER_ADMIN_API_KEYS"]["valueFrom"]["secretKeyRef"]["optional"] is True
    unkeyed = by_kind(render(), "Deployment", "gateway")
    names = {e["name"] for e in unkeyed["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "PONDER_API_KEYS" not in names


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=list(VARIANTS))
def test_every_rendered_manifest_is_valid_kubernetes(sets: tuple[str, ...]) -> None:
    manifests = render(*sets)
    assert manifests
    for manifest in manifests:
        if manifest["kind"] == "ServiceMonitor":  # a CRD: checked below
            continue
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    deployment = by_kind(render(), "Deployment", "gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"][
        "pathh"
    ] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_chart_matches_what_the_gateway_serves() -> None:
    from ponder.server.app import create_app
    from ponder.server.settings import Settings

    app = create_app(Settings(engine_urls=["http://unused:8000"]))
    routes = set(app.openapi()["paths"])
    settings_env = {f"PONDER_{name.upper()}" for name in Settings.model_fields}
    manifests = render()
    gateway = by_kind(manifests, "Deployment", "gateway")["spec"]["template"]["spec"]
    (container,) = gateway["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) <= settings_env, set(env) - settings_env
    (port,) = container["ports"]
    assert str(port["containerPort"]) == env["PONDER_PORT"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"/ready", "/health", "/metrics"} <= routes
    assert gateway["securityContext"]["runAsNonRoot"] is True

    engine_service = by_kind(manifests, "Service", "engine")
    assert engine_service["spec"]["clusterIP"] == "None"  # headless: one address per pod
    engine_port = engine_service["spec"]["ports"][0]["port"]
    assert env["PONDER_ENGINE_DNS"] == (
        f"http://{engine_service['metadata']['name']}:{engine_port}/v1"
    )
    redis = by_kind(manifests, "Service", "redis")
    assert env["PONDER_REDIS_URL"] == f"redis://{redis['metadata']['name']}:6379/0"

    hpa = by_kind(manifests, "HorizontalPodAutoscaler", "gateway")
    pods_metric = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    families = {metric.name for metric in Metrics().registry.collect()}
    assert [m["pods"]["metric"]["name"] for m in pods_metric] == ["ponder_in_flight_requests"]
    assert "ponder_in_flight_requests" in families

    monitors = [m for m in manifests if m["kind"] == "ServiceMonitor"]
    assert {m["spec"]["endpoints"][0]["relabelings"][0]["replacement"] for m in monitors} == {
        "ponder",
        "vllm",
    }  # the job names the dashboards select
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        assert monitor["spec"]["endpoints"][0]["port"] == "http"

    dashboards = [m for m in manifests if m["kind"] == "ConfigMap"]
    assert sorted(next(iter(m["data"])) for m in dashboards) == sorted(
        p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")
    )
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in dashboards)


def test_engine_parallelism_values_reach_vllm() -> None:
    manifests = render(*VARIANTS["tensor and pipeline parallel over Ray"])
    (container,) = by_kind(manifests, "StatefulSet", "engine")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["command"][:2] == ["vllm", "serve"]
    for arg in (
        "--tensor-parallel-size=8",
        "--pipeline-parallel-size=2",
        "--distributed-executor-backend=ray",
        "--max-model-len=32768",
    ):
        assert arg in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert {"name": "RAY_ADDRESS", "value": "ray://ray-head:10001"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_ray_without_an_address_is_refused() -> None:
    helm = shutil.which("helm")
    assert helm
    result = subprocess.run(
        [helm, "template", "t", str(CHART), "--set", "engine.ray.enabled=true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "engine.ray.address" in result.stderr


# -- compose and the Dockerfile -----------------------------------------------------

COMPOSE = DEPLOY / "compose" / "compose.yaml"


def compose_schema() -> dict[str, Any]:
    from ponder.server.settings import Settings

    wheel = Settings().cache_dir / "schemas" / "docker_compose-1.29.2-py2.py3-none-any.whl"
    assert wheel.is_file(), "scripts/test.sh fetches it"
    with zipfile.ZipFile(wheel) as archive:
        schema: dict[str, Any] = json.loads(archive.read("compose/config/compose_spec.json"))
    return schema


def test_the_compose_file_follows_the_compose_specification() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    # The schema names draft 2019-09 by an old URL; say so rather than have it guessed.
    validator = jsonschema.Draft201909Validator(compose_schema())
    validator.validate(compose)
    broken = {**compose, "services": {**compose["services"], "x": {"imagee": "redis"}}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_compose_file_matches_what_ponder_serves() -> None:
    from ponder.server.cli import serve
    from ponder.server.settings import Settings

    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    flags = {f"--{name.replace('_', '-')}" for name in inspect.signature(serve).parameters}
    for name in ("gateway", "gateway-cpu"):
        service = services[name]
        for arg in service["command"]:
            assert arg.split("=", 1)[0] in flags, arg
        assert set(service.get("environment", {})) <= {
            f"PONDER_{field.upper()}" for field in Settings.model_fields
        }
        assert service["networks"]["default"]["aliases"] == ["ponder"]
    engine_urls = [a.split("=", 1)[1] for a in services["gateway"]["command"] if "engine-url" in a]
    engines = [name for name in services if name.startswith("vllm-")]
    assert engine_urls == [f"http://{name}:8000/v1" for name in engines]
    for name in engines:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }
    assert targets == {"ponder": ["ponder:8000"], "vllm": [f"{n}:8000" for n in engines]}
    grafana_mounts = services["grafana"]["volumes"]
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/ponder:ro" in grafana_mounts


def test_the_dockerfile_is_multi_stage_non_root_and_checks_health() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.MULTILINE)) == 2
    assert re.search(r"^USER ponder$", text, flags=re.MULTILINE)
    assert "EXPOSE 8000" in text
    assert "PONDER_PORT=8000" in text
    assert "HEALTHCHECK" in text
    assert "/health" in text
    assert 'ENTRYPOINT ["ponder", "serve"]' in text


def test_the_gateway_drains_within_its_termination_grace() -> None:
    pod = by_kind(render("gateway.shutdownGraceSeconds=40"), "Deployment", "gateway")["spec"][
        "template"
    ]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PONDER_SHUTDOWN_GRACE_SECONDS"] == "40"
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 40 + 5
