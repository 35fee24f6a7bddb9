"""best_of_n with each scorer, against real engines: the judge and token confidence on
llama.cpp and vLLM, and a reward model served by vLLM's pooling runner.

The reward model is SmolLM2 converted online into a one-label classifier (the
probability of "Yes" over "No" at the last token): its scores mean little, the
mechanics are real. The vLLM flags that do it on the CPU build 0.32:
``--runner pooling --convert classify --hf-overrides
'{"method": "from_2_way_softmax", "classifier_from_token": ["No", "Yes"]}'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ponder.server.engines.managed import ManagedEngine
from ponder.server.settings import Settings
from tests.integration.conftest import MODEL, Served, gateway_process, vllm_on_cpu

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Tom has 3 boxes of 4 pens. How many pens does he have?"}
]
REWARD_FLAGS = [
    "--runner",
    "pooling",
    "--convert",
    "classify",
    "--hf-overrides",
    json.dumps({"method": "from_2_way_softmax", "classifier_from_token": ["No", "Yes"]}),
]


def ask(client: openai.OpenAI, **ponder: Any) -> Any:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=48,
        seed=1,
        extra_body={"ponder": {"trace": True, **ponder}},
    )
    assert completion.model_extra is not None
    assert completion.usage is not None
    assert completion.usage.model_extra is not None
    return completion.model_extra["ponder"], completion.usage.model_extra["ponder"]


@pytest.fixture
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="-", max_retries=0, timeout=600)


def test_best_of_n_with_the_judge(client: openai.OpenAI) -> None:
    info, usage = ask(client, strategy="best_of_n", n=3, scorer="judge")
    trace = info["trace"]
    assert [c["role"] for c in trace] == ["draft"] * 3 + ["judge"] * 3
    assert all(c["completion_tokens"] <= 8 for c in trace if c["role"] == "judge")
    scores = info["details"]["scores"]
    judged = sorted((c for c in trace if c["role"] == "judge"), key=lambda c: c["index"])
    grades = [c["meta"]["grade"] for c in judged]  # calls side by side finish in any order
    assert scores == [float(g) if g is not None else 0.0 for g in grades]
    assert scores[info["details"]["chosen"]] == max(scores)
    assert usage["calls"] == 4  # one batched call, then three judge calls in one step


def test_pairwise_judge_runs_a_knockout(client: openai.OpenAI) -> None:
    info, _ = ask(client, strategy="best_of_n", n=4, scorer="judge", judge_mode="pairwise")
    judged = [c for c in info["trace"] if c["role"] == "judge"]
    assert len(judged) == 3  # two semi-finals, one final
    assert sorted(info["details"]["scores"]) == [0.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("method", ["lowest_window", "mean"])
def test_best_of_n_with_token_confidence(client: openai.OpenAI, method: str) -> None:
    info, usage = ask(
        client, strategy="best_of_n", n=3, scorer="confidence", confidence_method=method
    )
    assert usage["calls"] == 1  # the samples' own log-probabilities: no call to score
    scores = info["details"]["scores"]
    assert len(scores) == 3
    assert all(score > 0 for score in scores)  # the engine returned log-probabilities
    if method == "mean":
        assert all(score <= 1 for score in scores)  # a geometric mean probability
    assert scores[info["details"]["chosen"]] == max(scores)


def test_self_consistency_weighted_by_confidence(client: openai.OpenAI) -> None:
    info, _ = ask(client, strategy="self_consistency", n=4, weighted=True)
    weights = [c["meta"]["weight"] for c in info["trace"]]
    assert len(weights) == 4
    assert all(weight > 0 for weight in weights)
    details = info["details"]
    if details["winner"] is not None:
        assert details["weights"][details["winner"]] == max(details["weights"].values())


@pytest.fixture(scope="module")
def reward_engine(gguf: Path, settings: Settings, logs: Path) -> Iterator[ManagedEngine]:
    with vllm_on_cpu(
        gguf, settings, logs, served_name="judge-rm", extra_args=REWARD_FLAGS
    ) as engine:
        yield engine


@pytest.fixture(scope="module")
def reward_gateway(
    llamacpp: ManagedEngine, reward_engine: ManagedEngine, logs: Path
) -> Iterator[ManagedEngine]:
    with gateway_process(
        logs, "--engine-url", llamacpp.url + "/v1", "--reward-url", reward_engine.url + "/v1"
    ) as gateway:
        yield gateway


def test_best_of_n_with_a_reward_model(reward_gateway: ManagedEngine) -> None:
    client = openai.OpenAI(base_url=reward_gateway.url + "/v1", api_key="-", max_retries=0)
    info, usage = ask(client, strategy="best_of_n", n=3, scorer="reward")
    rewards = [c for c in info["trace"] if c["role"] == "reward"]
    assert len(rewards) == 3
    assert all(c["prompt_tokens"] > 0 for c in rewards)
    scores = info["details"]["scores"]
    assert all(0.0 < score < 1.0 for score in scores)  # the "Yes" probability
    assert [float(c["output"]) for c in rewards] == pytest.approx(scores, rel=1e-5)
    assert scores[info["details"]["chosen"]] == max(scores)
    assert usage["all_tokens"] >= sum(c["prompt_tokens"] for c in rewards)
    # PDR's top-k ranks with the same model.
    info, _ = ask(
        client,
        strategy="pdr",
        schedule=[3, 1],
        distill="shared_top_k",
        k=1,
        scorer="reward",
        workspace_tokens=128,
    )
    assert sum(1 for c in info["trace"] if c["role"] == "reward") == 3


def test_a_reward_scorer_without_a_reward_model_is_a_400(served: Served) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="-", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, strategy="best_of_n", scorer="reward")
    assert "--reward-url" in refused.value.message
