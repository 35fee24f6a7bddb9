"""Every metric family after a few requests, the evaluation results endpoint, and the
labels staying free of anything a client typed."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ponder.server.metrics import Metrics
from ponder.strategies.details import WorkspaceInfo
from ponder.strategies.pdr import PDRDetails, PDRRound
from ponder.strategies.testing import ScriptedEngine
from ponder.workspace import Distill

CHAT = "/v1/chat/completions"

FAMILIES = {
    "ponder_requests": "counter",
    "ponder_request_duration_seconds": "histogram",
    "ponder_time_to_first_token_seconds": "histogram",
    "ponder_tokens": "counter",
    "ponder_rounds": "histogram",
    "ponder_drafts": "histogram",
    "ponder_workspace_tokens": "histogram",
    "ponder_cache_hits": "counter",
    "ponder_cache_misses": "counter",
    "ponder_in_flight_requests": "gauge",
    "ponder_eval_accuracy": "gauge",
    "ponder_eval_accuracy_ci_low": "gauge",
    "ponder_eval_accuracy_ci_high": "gauge",
    "ponder_eval_mean_latency_seconds": "gauge",
    "ponder_eval_mean_sequential_tokens": "gauge",
    "ponder_eval_mean_all_tokens": "gauge",
    "ponder_eval_items": "gauge",
    "ponder_eval_pareto": "gauge",
}


def chat_body(**overrides: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "two plus two"}], **overrides}


def report(**overrides: Any) -> dict[str, Any]:
    result = {
        "strategy": "pdr",
        "config": "pdr [4,2,1]",
        "accuracy": 0.25,
        "mean_latency_seconds": 3.5,
        "mean_sequential_tokens": 800,
        "mean_all_tokens": 2400,
        "items": 100,
    }
    return {
        "dataset": "multiarith",
        "model": "qwen2.5-coder-0.5b",
        "results": [{**result, **overrides}],
    }


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    text = (await client.get("/metrics")).text
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_every_family_has_samples_after_a_few_requests(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    pdr = {"strategy": "pdr", "schedule": [2, 1], "workspace_tokens": 64}
    await client.post(CHAT, json=chat_body(seed=1, ponder=pdr))
    await client.post(CHAT, json=chat_body(seed=1, ponder=pdr))  # a hit
    await client.post(CHAT, json=chat_body(stream=True))
    assert (await client.post("/v1/eval/results", json=report())).status_code == 200
    families = await scrape(client)
    for name, kind in FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].samples, name
    requests = {
        (s.labels["strategy"], s.labels["status"]): s.value
        for s in families["ponder_requests"].samples
        if s.name == "ponder_requests_total"
    }
    assert requests == {("pdr", "200"): 2, ("direct", "200"): 1}
    tokens = {
        (s.labels["strategy"], s.labels["kind"]): s.value
        for s in families["ponder_tokens"].samples
        if s.name == "ponder_tokens_total"
    }
    # Only the computed PDR answer counts: the hit cost no engine tokens.
    assert tokens[("pdr", "all")] > tokens[("pdr", "sequential")] > 0
    hits = {
        s.labels["level"]: s.value
        for s in families["ponder_cache_hits"].samples
        if s.name == "ponder_cache_hits_total"
    }
    assert hits == {"response": 1}
    ttft = [
        s
        for s in families["ponder_time_to_first_token_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert [(s.labels["strategy"], s.value) for s in ttft] == [("direct", 1)]
    workspaces = [
        s for s in families["ponder_workspace_tokens"].samples if s.name.endswith("_count")
    ]
    assert [s.value for s in workspaces] == [1]
    in_flight = families["ponder_in_flight_requests"].samples[0].value
    assert in_flight == 0


async def test_refused_requests_are_labelled_without_the_clients_strings(
    client: httpx.AsyncClient,
) -> None:
    await client.post(CHAT, json=chat_body(model="whatever-the-user-typed"))
    await client.post(CHAT, json=chat_body(ponder={"strategy": "made-up"}))
    text = (await client.get("/metrics")).text
    assert "whatever-the-user-typed" not in text
    assert "made-up" not in text
    assert 'ponder_requests_total{model="-",status="404",strategy="-"} 1.0' in text


async def test_evaluation_results_become_gauges(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/eval/results", json=report())
    assert response.status_code == 200
    assert response.json()["recorded"] == 1
    families = await scrape(client)
    (sample,) = families["ponder_eval_accuracy"].samples
    assert sample.labels == {
        "dataset": "multiarith",
        "model": "qwen2.5-coder-0.5b",
        "strategy": "pdr",
        "config": "pdr [4,2,1]",
    }
    assert sample.value == 0.25
    # No interval was sent: both ends are the accuracy itself.
    assert families["ponder_eval_accuracy_ci_low"].samples[0].value == 0.25
    await client.post("/v1/eval/results", json=report(accuracy_ci_low=0.17, accuracy_ci_high=0.35))
    families = await scrape(client)
    assert families["ponder_eval_accuracy_ci_low"].samples[0].value == 0.17
    assert families["ponder_eval_accuracy_ci_high"].samples[0].value == 0.35
    assert families["ponder_eval_mean_sequential_tokens"].samples[0].value == 800
    await client.post("/v1/eval/results", json=report(accuracy=0.5))  # the latest run wins
    families = await scrape(client)
    assert [s.value for s in families["ponder_eval_accuracy"].samples] == [0.5]


async def test_the_pareto_flags_follow_every_result_kept_for_the_dataset(
    client: httpx.AsyncClient,
) -> None:
    def result(config: str, accuracy: float, latency: float, tokens: float) -> dict[str, Any]:
        fields = {"config": config, "accuracy": accuracy, "mean_latency_seconds": latency}
        return {**report()["results"][0], **fields, "mean_all_tokens": tokens}

    async def flags(cost: str) -> dict[str, float]:
        families = await scrape(client)
        samples = families["ponder_eval_pareto"].samples
        return {s.labels["config"]: s.value for s in samples if s.labels["cost"] == cost}

    first = [result("direct", 0.4, 1.0, 300), result("cot", 0.3, 2.0, 200)]
    await client.post("/v1/eval/results", json={**report(), "results": first})
    assert await flags("latency_seconds") == {"direct": 1, "cot": 0}
    assert await flags("all_tokens") == {"direct": 1, "cot": 1}
    # A later report of another configuration is judged with the earlier ones kept.
    later = [result("sc", 0.6, 1.5, 250)]
    await client.post("/v1/eval/results", json={**report(), "results": later})
    assert await flags("latency_seconds") == {"direct": 1, "cot": 0, "sc": 1}
    assert await flags("all_tokens") == {"direct": 0, "cot": 1, "sc": 1}


async def test_bad_evaluation_reports_are_400s_that_change_nothing(
    client: httpx.AsyncClient,
) -> None:
    bad = [
        report(accuracy=1.5),
        report(config='x"} 1\nfake_metric{a="'),  # label injection
        report(strategy="x" * 200),
        {"dataset": "multiarith", "results": []},
        {"dataset": "multiarith", "results": report()["results"], "extra": 1},
    ]
    for body in bad:
        response = await client.post("/v1/eval/results", json=body)
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert "ponder_eval_accuracy{" not in (await client.get("/metrics")).text


async def test_evaluation_series_are_capped(client: httpx.AsyncClient) -> None:
    # The fixture's settings keep the default cap; a report over it is refused whole.
    results = [{**report()["results"][0], "config": f"c{i}"} for i in range(64)]
    for batch in range(8):
        body = {"dataset": f"d{batch}", "results": results}
        assert (await client.post("/v1/eval/results", json=body)).status_code == 200
    over = await client.post(
        "/v1/eval/results", json={"dataset": "one-more", "results": results[:1]}
    )
    assert over.status_code == 400
    assert over.json()["error"]["code"] == "over_cap"
    assert "one-more" not in (await client.get("/metrics")).text
    # Results for series it already has are still taken.
    again = await client.post("/v1/eval/results", json={"dataset": "d0", "results": results[:1]})
    assert again.status_code == 200


def test_workspace_sizes_are_read_from_typed_strategy_details() -> None:
    def round_(number: int, *sizes: int) -> PDRRound:
        spaces = [WorkspaceInfo(tokens=size) for size in sizes]
        return PDRRound(round=number, drafts=2, distill=Distill.SHARED_TOP_K, workspaces=spaces)

    details = PDRDetails(rounds=[round_(1, 40), round_(2, 12, 30)])
    assert [w.tokens for w in details.workspaces()] == [40, 12, 30]
    assert PDRDetails(rounds=[]).workspaces() == []


def test_metrics_of_two_gateways_do_not_mix() -> None:
    one, two = Metrics(), Metrics()
    one.requests.labels("cot", "m", "200").inc()
    assert (
        two.registry.get_sample_value(
            "ponder_requests_total", {"strategy": "cot", "model": "m", "status": "200"}
        )
        is None
    )
