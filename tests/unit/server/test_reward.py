"""The reward model client: /classify, else /pooling; the model named or discovered."""

from __future__ import annotations

import json

import httpx
import pytest

from ponder.server.engines.provider import StaticEngines
from ponder.server.engines.reward import HTTPRewardModel
from ponder.server.errors import InvalidRequest
from ponder.server.planning import PlanBuilder
from ponder.server.protocol import ChatCompletionRequest
from ponder.server.settings import Settings
from ponder.strategies.registry import Registry
from ponder.strategies.testing import ScriptedEngine


async def test_classify_probabilities_are_the_scores() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "rm"}]})
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        data = [{"index": i, "probs": [0.1 * (i + 1)]} for i in range(len(body["input"]))]
        return httpx.Response(200, json={"data": data[::-1], "usage": {"prompt_tokens": 12}})

    model = HTTPRewardModel("http://rm:8000/v1", transport=httpx.MockTransport(handler))
    scores, tokens = await model.score(["a", "b"])
    assert scores == pytest.approx([0.1, 0.2])  # in input order, whatever the answer's order
    assert tokens == 12
    assert seen == [("/classify", {"model": "rm", "input": ["a", "b"]})]


async def test_a_server_without_classify_is_asked_pooling() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/classify":
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json={"data": [{"index": 0, "data": [[0.3], [0.7]]}]})

    model = HTTPRewardModel("http://rm:8000", model="named", transport=httpx.MockTransport(handler))
    assert (await model.score(["a"]))[0] == [0.7]  # the last value: a reward at the last token


def test_a_reward_scorer_without_a_reward_model_is_refused_before_any_call() -> None:
    engine = ScriptedEngine(model="tiny")
    plans = PlanBuilder(
        Settings(engine_urls=["http://unused"]),
        StaticEngines({"tiny": engine}),
        Registry.default(load_entry_points=False),
        caching=False,
    )
    body = ChatCompletionRequest.model_validate(
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "ponder": {"strategy": "best_of_n", "scorer": "reward"},
        }
    )
    with pytest.raises(InvalidRequest, match="--reward-url") as refused:
        plans.build(body)
    assert refused.value.param == "ponder.scorer"
    assert engine.calls == []
