"""The plan builder: selection, caps, the n-way split and the cache decision, before any call."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.server.cache import CacheMode
from ponder.server.endpoints import ChatEndpoint, TextEndpoint
from ponder.server.engines.provider import StaticEngines
from ponder.server.errors import InvalidRequest, ModelNotFound
from ponder.server.planning import PlanBuilder, ResponseCaching
from ponder.server.protocol import ChatCompletionRequest, CompletionRequest
from ponder.server.settings import Settings
from ponder.strategies.registry import InvalidParams, Registry
from ponder.strategies.testing import ScriptedEngine


def builder(*, caching: bool = True, **settings: Any) -> PlanBuilder:
    config = Settings(engine_urls=["http://unused"], max_n=8, max_tokens_per_call=1000, **settings)
    engines = StaticEngines({"tiny": ScriptedEngine(model="tiny")})
    return PlanBuilder(config, engines, Registry.default(load_entry_points=False), caching=caching)


def chat(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "2+2?"}], **fields}
    return ChatCompletionRequest.model_validate(body)


def test_a_strategy_that_does_not_answer_n_runs_once_per_answer() -> None:
    plan = builder().build(chat(n=3, ponder={"strategy": "cot"}))
    assert isinstance(plan.endpoint, ChatEndpoint)
    assert [(job.n, job.offset) for job in plan.jobs] == [(1, 0), (1, 1), (1, 2)]
    assert len({id(job.budget) for job in plan.jobs}) == 3  # a budget each


def test_direct_answers_n_itself_and_prompts_are_numbered_in_order() -> None:
    body = CompletionRequest.model_validate(
        {"model": "tiny", "prompt": ["a", "b"], "n": 2, "ponder": {"strategy": "direct"}}
    )
    plan = builder().build(body)
    assert isinstance(plan.endpoint, TextEndpoint)
    assert [(job.prompt, job.n, job.offset) for job in plan.jobs] == [("a", 2, 0), ("b", 2, 2)]


def test_strategy_parameters_are_validated_by_the_strategys_own_model() -> None:
    with pytest.raises(InvalidParams, match=r"ponder\.schedule"):
        builder().build(chat(ponder={"strategy": "pdr", "schedule": [2, 2]}))
    with pytest.raises(InvalidParams, match=r"ponder\.no_such_key"):
        builder().build(chat(ponder={"strategy": "cot", "no_such_key": 1}))


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 9}, "n"),
        ({"max_tokens": 1001}, "max_tokens"),
        ({"ponder": {"strategy": "cot", "max_tokens": 1001}}, "ponder.max_tokens"),
        ({"ponder": {"strategy": "pdr", "schedule": [17, 1]}}, "ponder"),
    ],
)
def test_caps_are_refused_before_any_call(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        builder().build(chat(**fields))
    assert (refused.value.code, refused.value.param) == ("over_cap", param)


def test_an_unknown_model_is_a_404() -> None:
    with pytest.raises(ModelNotFound):
        builder().build(chat(model="other"))


def test_only_greedy_or_seeded_requests_get_a_response_key() -> None:
    plans = builder()
    assert plans.build(chat(temperature=0)).caching.key is not None
    assert plans.build(chat(seed=3)).caching.key is not None
    assert plans.build(chat(temperature=0.7)).caching.key is None
    assert plans.build(chat(temperature=0, ponder={"cache": "no-store"})).caching.key is None
    assert builder(caching=False).build(chat(temperature=0)).caching.key is None
    # The same request is the same key; another prompt is another.
    assert plans.build(chat(seed=3)).caching.key == plans.build(chat(seed=3)).caching.key
    other = chat(seed=3, messages=[{"role": "user", "content": "3+3?"}])
    assert plans.build(other).caching.key != plans.build(chat(seed=3)).caching.key


def test_the_cache_decision_is_one_object() -> None:
    refresh = ResponseCaching(CacheMode.NO_CACHE, "k")
    assert refresh.lookup_key is None
    assert refresh.store_key(every_call_deterministic=True) == "k"
    assert refresh.store_key(every_call_deterministic=False) is None
    default = ResponseCaching(CacheMode.DEFAULT, "k")
    assert default.lookup_key == "k"
    assert ResponseCaching(CacheMode.DEFAULT).store_key(every_call_deterministic=True) is None


def test_caller_fields_are_not_forwarded_and_engine_fields_are() -> None:
    plan = builder().build(chat(metadata={"team": "x"}, top_k=5, user="u"))
    assert plan.sampling.extra == {"top_k": 5}
