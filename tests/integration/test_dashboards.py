"""Every PromQL expression of the Grafana dashboards, evaluated by a real Prometheus.

Prometheus (Debian's package) scrapes, with the shipped scrape configuration
(only the targets replaced), a real Ponder gateway in front of the real vLLM
engine after both have served real requests; each dashboard query must parse
and return at least one series.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, gateway_process
from tests.integration.services import PrometheusServer, RedisServer

ROOT = Path(__file__).parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))

#: What Grafana puts in place of the dashboards' variables.
VARIABLES = {"$__rate_interval": "30s", "$model": ".*", "$dataset": ".*"}


def expressions() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every query in every dashboard."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((path.stem, panel["title"], target["expr"]))
    return found


def substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    left = re.findall(r"\$\w+", expr)
    assert not left, f"unknown dashboard variables {left} in {expr}"
    return expr


@pytest.fixture(scope="module")
def scraped(
    vllm: ManagedEngine, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("observability")
    with RedisServer(folder / "redis") as redis_server:
        args = ("--engine-url", vllm.url, "--redis-url", redis_server.url)
        with gateway_process(logs, *args) as gateway:
            config: dict[str, Any] = yaml.safe_load(
                (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
            )
            config["global"]["scrape_interval"] = "1s"
            targets = {"ponder": gateway, "vllm": vllm}
            for job in config["scrape_configs"]:
                address = targets[job["job_name"]].url.removeprefix("http://")
                job["static_configs"] = [{"targets": [address]}]
            with PrometheusServer(folder / "prometheus", config) as prometheus:
                serve_some_requests(gateway, redis_server)
                wait_for_scrapes(prometheus)
                yield prometheus


def serve_some_requests(gateway: ManagedEngine, redis_server: RedisServer) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)

    def ask(**extra: Any) -> None:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is 6 times 7?"}],
            max_tokens=extra.pop("max_tokens", 24),
            **extra,
        )

    ask(temperature=0)
    ask(temperature=0)  # a cache hit
    pdr = {"strategy": "pdr", "schedule": [2, 1], "workspace_tokens": 64}
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 6 times 7?"}],
        max_tokens=24,
        stream=True,
        extra_body={"ponder": pdr},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    ask(extra_body={"ponder": {"strategy": "self_consistency", "n": 2}})
    ask(reasoning_effort="low")  # a budget request: the default ladder chooses
    with pytest.raises(openai.BadRequestError):
        ask(max_tokens=4000)  # over the engine's context: the engine refuses the call
    store = redis_server.client()
    store.config_set("maxmemory-policy", "noeviction")
    store.config_set("maxmemory", "1")  # the next cache writes fail: cache errors
    try:
        ask(seed=5)
    finally:
        store.config_set("maxmemory", "0")
    report = {
        "dataset": "multiarith",
        "results": [
            {
                "strategy": strategy,
                "config": config,
                "accuracy": accuracy,
                "mean_latency_seconds": latency,
                "mean_sequential_tokens": tokens,
                "mean_all_tokens": tokens * 3,
                "items": 10,
            }
            for strategy, config, accuracy, latency, tokens in [
                ("direct", "direct", 0.1, 0.5, 120),
                ("pdr", "pdr [2,1]", 0.2, 2.0, 400),
            ]
        ],
    }
    httpx.post(gateway.url + "/v1/eval/results", json=report, timeout=10).raise_for_status()


def wait_for_scrapes(prometheus: PrometheusServer) -> None:
    """Until both jobs are up and the last requests' counters were scraped twice since."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        up = prometheus.targets_up()
        if up == {"ponder": "up", "vllm": "up"} and prometheus.query(
            'count_over_time(ponder_eval_accuracy{dataset="multiarith"}[30s]) >= 3'
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape both jobs: {prometheus.targets_up()}")


def test_the_dashboards_have_queries() -> None:
    assert [path.stem for path in DASHBOARDS] == ["engines", "serving", "tradeoffs"]
    assert len(expressions()) >= 20


@pytest.mark.parametrize(
    ("dashboard", "title", "expr"),
    expressions(),
    ids=[f"{d}: {t} [{i}]" for i, (d, t, _) in enumerate(expressions())],
)
def test_every_dashboard_query_returns_data(
    scraped: PrometheusServer, dashboard: str, title: str, expr: str
) -> None:
    result = scraped.query(substituted(expr))
    assert result, f"{dashboard} / {title}: {expr} returned no series"
