"""Budgets (``ponder.budget``): the configuration a budget buys, caps, deadlines, bad budgets.

Control flow against the scripted engine; the real engines' side (cancelled
calls, a frontier in Redis shared by two gateways) is in the integration tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.server.app import create_app
from ponder.server.budget_choice import ladder
from ponder.server.engines.provider import StaticEngines
from ponder.server.eval_results import EvalReport
from ponder.server.frontier import FileFrontier
from ponder.server.settings import Settings
from ponder.strategies.base import DEADLINE_WRAP_UP
from ponder.strategies.pace import Pace
from ponder.strategies.testing import ScriptedEngine

CHAT = "/v1/chat/completions"


def chat_body(**overrides: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "two plus two"}], **overrides}


def result(
    config: str, strategy: str, params: dict[str, Any], accuracy: float, tokens: float
) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "config": config,
        "params": params,
        "accuracy": accuracy,
        "mean_latency_seconds": tokens / 100,
        "mean_sequential_tokens": tokens,
        "mean_all_tokens": tokens,
        "items": 50,
    }


REPORT = {
    "dataset": "multiarith",
    "model": "tiny",
    "results": [
        result("cot", "cot", {}, 0.4, 100),
        result("sc4", "self_consistency", {"n": 4}, 0.6, 400),
        result("pdr41", "pdr", {"schedule": [4, 1]}, 0.7, 2000),
        # Not servable: no parameters, or a strategy this server lacks.
        result("mystery", "nope", {}, 0.99, 10),
    ],
}


async def read_stream(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any] | None]:
    """A streamed chat completion's answer text, finish reason and ``details.budget``."""
    text, finish, budget = "", None, None
    async with client.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[len("data: ") :])
            for choice in chunk.get("choices", []):
                text += choice["delta"].get("content") or ""
                finish = choice.get("finish_reason") or finish
            if chunk.get("ponder"):
                budget = (chunk["ponder"].get("details") or {}).get("budget")
    return text, finish, budget


def fast_settings(**overrides: Any) -> Settings:
    # A fast engine (1000 tokens/s) so that a one-second deadline holds several calls.
    return Settings(
        engine_urls=["http://unused"],
        max_n=8,
        max_tokens_per_call=1000,
        assumed_tokens_per_second=1000.0,
        assumed_call_overhead_seconds=0.05,
        **overrides,
    )


@pytest.fixture
async def fast(engine: ScriptedEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(fast_settings(), engines=StaticEngines({"tiny": engine}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def test_a_budget_alone_buys_the_most_accurate_measured_configuration_that_fits(
    client: httpx.AsyncClient,
) -> None:
    published = await client.post("/v1/eval/results", json=REPORT)
    assert published.status_code == 200, published.text

    async def chosen(budget: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(CHAT, json=chat_body(ponder={"budget": budget}))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["ponder"]
        return data

    mid = await chosen({"all_tokens": 500})
    assert (mid["strategy"], mid["params"]["n"]) == ("self_consistency", 4)
    info = mid["details"]["budget"]
    assert (info["source"], info["config"], info["budget"]) == (
        "frontier",
        "sc4",
        {"all_tokens": 500},
    )
    assert info["expected"]["accuracy"] == 0.6
    assert "most accurate" in info["why"]

    rich = await chosen({"all_tokens": 5000, "latency_s": 30})
    assert (rich["strategy"], rich["details"]["budget"]["config"]) == ("pdr", "pdr41")

    # Nothing fits: the cheapest is served and the budget caps it.
    poor = await chosen({"sequential_tokens": 60})
    assert poor["details"]["budget"]["config"] == "cot"
    assert "no frontier configuration fits" in poor["details"]["budget"]["why"]


async def test_a_server_slower_than_its_frontier_reads_the_measured_latencies_longer(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    # Measured on a fast machine: four samples at 4,000 tokens/s in 1 s, cot in 0.2 s.
    report = {
        **REPORT,
        "results": [
            {**result("cot", "cot", {}, 0.4, 100), "mean_latency_seconds": 0.2},
            {**result("sc4", "self_consistency", {"n": 4}, 0.6, 4000), "mean_latency_seconds": 1},
        ],
    }
    assert (await client.post("/v1/eval/results", json=report)).status_code == 200
    engine.delay = 0.1  # this server makes far fewer tokens a second

    async def chosen() -> dict[str, Any]:
        body = chat_body(ponder={"budget": {"latency_s": 2.0}})
        response = await client.post(CHAT, json=body)
        assert response.status_code == 200, response.text
        info: dict[str, Any] = response.json()["ponder"]["details"]["budget"]
        return info

    first = await chosen()
    # Nothing run yet: the frontier's latencies as measured.
    assert (first["config"], first["latency_scale"], first["expected"]["latency_s"]) == (
        "sc4",
        1.0,
        1.0,
    )
    second = await chosen()
    # sc4's run showed this server many times slower: 1 s measured is more than 2 s here.
    assert second["latency_scale"] > 2.0
    assert second["config"] == "cot"
    assert second["expected"]["latency_s"] == pytest.approx(0.2 * second["latency_scale"], 0.01)
    assert "sc4" not in second["why"]


async def test_without_results_the_default_ladder_is_sized_from_the_budget(
    client: httpx.AsyncClient,
) -> None:
    small = (await client.post(CHAT, json=chat_body(ponder={"budget": {"all_tokens": 300}}))).json()
    large = (
        await client.post(CHAT, json=chat_body(ponder={"budget": {"all_tokens": 20000}}))
    ).json()
    assert small["ponder"]["details"]["budget"]["source"] == "ladder"
    assert small["ponder"]["strategy"] == "cot"
    assert large["ponder"]["strategy"] == "pdr"
    assert large["ponder"]["params"]["schedule"] == [8, 4, 1]
    assert large["usage"]["ponder"]["all_tokens"] <= 20000


async def test_a_named_strategy_is_capped_and_answers_with_its_best_so_far(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: f"Working it out, the answer is {index % 2 + 4}."
    pdr = {"strategy": "pdr", "schedule": [4, 2, 1], "trace": True}
    whole = (await client.post(CHAT, json=chat_body(ponder=pdr))).json()
    first_round = sum(
        c["prompt_tokens"] + c["completion_tokens"]
        for c in whole["ponder"]["trace"]
        if c["round"] == 1
    )
    engine.calls.clear()

    budget = first_round + 20  # round 1 fits; the distillation after it cannot
    response = await client.post(
        CHAT, json=chat_body(ponder={**pdr, "budget": {"all_tokens": budget}})
    )
    assert response.status_code == 200, response.text
    data = response.json()
    info = data["ponder"]["details"]["budget"]
    assert (info["source"], info["stopped"]) == ("named", "all_tokens")
    assert data["usage"]["ponder"]["all_tokens"] <= budget
    assert {c["round"] for c in data["ponder"]["trace"]} == {1}
    # The vote leader of round 1 (two drafts say 4, two say 5: the first seen wins).
    assert data["choices"][0]["message"]["content"] == "Working it out, the answer is 4."
    assert data["ponder"]["answers"] == ["4"]
    assert len(engine.calls) < len(whole["ponder"]["trace"])
    shown = (await client.get("/metrics")).text
    assert 'ponder_budget_requests_total{source="named",stopped="all_tokens"} 1.0' in shown


async def test_a_deadline_returns_the_latest_refinement_before_it_passes(
    fast: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.delay = 0.3
    engine.script = lambda prompt, index: f"draft {prompt.count('refine')}: the answer is 4."
    started = time.monotonic()
    response = await fast.post(
        CHAT,
        json=chat_body(ponder={"strategy": "sr", "rounds": 6, "budget": {"latency_s": 1.0}}),
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["ponder"]["details"]["budget"]["stopped"] == "deadline"
    assert data["choices"][0]["message"]["content"].endswith("the answer is 4.")
    assert 1.0 <= elapsed < 1.0 + 0.5
    assert len(engine.calls) < 7
    assert engine.cancelled == 1  # the call in flight at the deadline was cut


@pytest.mark.parametrize("drawing", [{"adaptive": True}, {"confidence_filter": True}])
async def test_a_deadline_before_the_vote_is_decided_answers_with_the_leader_so_far(
    fast: httpx.AsyncClient, engine: ScriptedEngine, drawing: dict[str, bool]
) -> None:
    # Two samples agree quickly; two more would run for ten seconds: the vote is undecided
    # (two against two still possible) when the one-second deadline comes.
    engine.script = lambda prompt, index: (
        "so the answer is 4." if index < 2 else "step " * 200 + f"the answer is {index}."
    )
    engine.step_delay = 0.05
    sc = {"strategy": "self_consistency", "n": 4, **drawing, "budget": {"latency_s": 1.0}}
    started = time.monotonic()
    response = await fast.post(CHAT, json=chat_body(ponder=sc))
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["ponder"]["details"]["budget"]["stopped"] == "deadline"
    assert data["choices"][0]["message"]["content"] == "so the answer is 4."
    # Cut just before the deadline, the samples still running are counted: usage holds
    # more than the two that finished (five words each).
    assert data["usage"]["completion_tokens"] > 2 * 5 + 2
    assert data["usage"]["ponder"]["calls"] == 1
    assert 1.0 - DEADLINE_WRAP_UP <= elapsed < 1.0


async def test_a_streamed_deadline_answer_is_streamed(
    fast: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.delay = 0.3
    body = chat_body(
        stream=True,
        stream_options={"include_usage": True},
        ponder={"strategy": "sr", "rounds": 6, "budget": {"latency_s": 1.0}},
    )
    text, finish, budget = await read_stream(fast, body)
    assert text.startswith("answer 0 to:")
    assert finish == "stop"
    assert budget is not None
    assert budget["stopped"] == "deadline"


@pytest.mark.parametrize(
    ("budget", "param"),
    [
        ({"latency_s": -1}, "ponder.budget.latency_s"),
        ({"latency_s": 0}, "ponder.budget.latency_s"),
        ({"all_tokens": 0}, "ponder.budget.all_tokens"),
        ({"sequential_tokens": 2.5}, "ponder.budget.sequential_tokens"),
        ({"all_tokens": "100"}, "ponder.budget.all_tokens"),
        ({"speed": 3}, "ponder.budget.speed"),
        ({}, "ponder.budget"),
        ({"all_tokens": 12}, "ponder.budget.all_tokens"),  # not even one call
        ({"latency_s": 0.05}, "ponder.budget.latency_s"),  # under what one call needs
    ],
)
async def test_a_bad_budget_is_a_400_naming_the_field(
    client: httpx.AsyncClient, engine: ScriptedEngine, budget: dict[str, Any], param: str
) -> None:
    response = await client.post(CHAT, json=chat_body(ponder={"budget": budget}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert engine.calls == []


async def test_strategy_parameters_need_a_strategy_named_beside_a_budget(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post(
        CHAT, json=chat_body(ponder={"budget": {"all_tokens": 900}, "n": 4})
    )
    assert refused.status_code == 400
    assert "need a strategy named" in refused.json()["error"]["message"]
    traced = await client.post(
        CHAT, json=chat_body(ponder={"budget": {"all_tokens": 900}, "trace": True})
    )
    assert traced.status_code == 200
    assert traced.json()["ponder"]["trace"]


async def test_a_file_frontier_merges_reports_and_outlives_its_gateway(tmp_path: Path) -> None:
    path = tmp_path / "frontier.json"
    first = FileFrontier(path)
    await first.save(EvalReport.model_validate(REPORT))
    newer = {**REPORT, "results": [result("cot", "cot", {}, 0.5, 90)]}
    await first.save(EvalReport.model_validate(newer))
    other = {**REPORT, "dataset": "svamp"}
    await first.save(EvalReport.model_validate(other))

    again = FileFrontier(path)
    reports = {r.dataset: r for r in await again.reports("tiny")}
    assert set(reports) == {"multiarith", "svamp"}
    by_config = {r.config: r.accuracy for r in reports["multiarith"].results}
    assert by_config == {"cot": 0.5, "sc4": 0.6, "pdr41": 0.7, "mystery": 0.99}
    assert await again.reports("other-model") == []


def test_an_unreadable_frontier_file_is_kept_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "frontier.json"
    path.write_text("{not json")
    frontier = FileFrontier(path)
    assert not path.exists()
    assert (tmp_path / "frontier.unreadable.json").read_text() == "{not json"
    assert frontier.path == path


async def test_a_deadline_that_cuts_a_streaming_answer_ends_it_where_it_was(
    fast: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    whole = " ".join(f"word{i}" for i in range(20))
    engine.script = lambda prompt, index: whole
    engine.delay = 0.2  # a word each 0.2 s: the whole answer would take 4 s
    body = chat_body(
        stream=True,
        stream_options={"include_usage": True},
        ponder={"strategy": "direct", "budget": {"latency_s": 1.0}},
    )
    text, finish, budget = await read_stream(fast, body)
    assert text.startswith("word0 word1")
    assert whole.startswith(text)
    assert len(text) < len(whole)
    assert finish == "length"
    assert budget is not None
    assert budget["stopped"] == "deadline"
    assert engine.cancelled == 1


@pytest.mark.parametrize(
    ("drawing", "capped"),
    [
        ({"adaptive": False}, True),
        ({"adaptive": True}, False),
        ({"confidence_filter": True}, False),
    ],
)
async def test_a_deadline_caps_only_the_samples_it_could_not_cut_in_time(
    fast: httpx.AsyncClient, engine: ScriptedEngine, drawing: dict[str, bool], capped: bool
) -> None:
    # Samples drawn in one plain call come back only all together: the deadline's pace
    # must bound them. Watched as they finish, they are cut at the deadline instead, so
    # no sample is cut short of its answer to leave time nothing after them needs.
    engine.script = lambda prompt, index: "so the answer is 4."
    # At the assumed 1,000 tokens/s, 0.5 s leaves room for about 350 tokens a sample.
    sc = {"strategy": "self_consistency", "n": 4, **drawing, "budget": {"latency_s": 0.5}}
    response = await fast.post(CHAT, json=chat_body(max_tokens=500, ponder=sc))
    assert response.status_code == 200, response.text
    (call,) = engine.calls
    assert call.sampling.max_tokens is not None
    assert (call.sampling.max_tokens < 500) is capped


@pytest.mark.parametrize("strategy", ["direct", "cot"])
async def test_a_deadline_that_cuts_the_answer_of_a_client_not_streaming_keeps_its_text(
    fast: httpx.AsyncClient, engine: ScriptedEngine, strategy: str
) -> None:
    # The text a streaming client would have had (CoT's answer starts with its rationale).
    whole = " ".join(f"word{i}" for i in range(20))
    engine.script = lambda prompt, index: whole
    engine.delay = 0.2  # a word each 0.2 s: the whole answer would take 4 s
    body = chat_body(ponder={"strategy": strategy, "budget": {"latency_s": 1.0}})
    response = await fast.post(CHAT, json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    (choice,) = data["choices"]
    text = choice["message"]["content"]
    assert text.startswith("word0 word1")
    assert whole.startswith(text)
    assert len(text) < len(whole)
    assert choice["finish_reason"] == "length"
    assert data["ponder"]["details"]["budget"]["stopped"] == "deadline"
    assert engine.cancelled == 1


async def test_successive_prompting_goes_to_its_answer_when_the_budget_holds_no_sub_question(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: "Q1: what is two plus two?"
    asked = {"strategy": "successive", "step_max_tokens": 64, "trace": True}
    roomy = await client.post(
        CHAT, json=chat_body(ponder={**asked, "budget": {"all_tokens": 5000}})
    )
    assert "decompose" in {c["role"] for c in roomy.json()["ponder"]["trace"]}
    tight = await client.post(CHAT, json=chat_body(ponder={**asked, "budget": {"all_tokens": 150}}))
    assert tight.status_code == 200, tight.text
    data = tight.json()
    assert [c["role"] for c in data["ponder"]["trace"]] == ["answer"]  # the final answer only
    assert data["choices"][0]["message"]["content"]
    assert data["usage"]["ponder"]["all_tokens"] <= 150


def test_the_ladder_costs_a_wide_call_at_the_pace_of_that_many_samples() -> None:
    pace = Pace(tokens_per_second=50.0, overhead_seconds=0.0, batched_tokens_per_second=100.0)
    costs = {c.config: c for c in ladder(pace, call_tokens=100, prompt_tokens=50)}
    assert costs["direct"].latency_s == 2.0
    assert costs["self_consistency n=4"].latency_s == 4.0  # 25 tokens/s per sample
    assert costs["self_consistency n=8"].latency_s == 8.0
    assert costs["pdr [4,1]"].latency_s == 4.0 + 2 * 2.0  # four drafts, then two single calls
    assert costs["self_consistency n=8"].all_tokens == 8 * 150
    assert costs["pdr [8,4,1]"].sequential_tokens == 5 * 150 + 4 * 100
