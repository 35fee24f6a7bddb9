"""The SDK's own logic: imports, strategy objects, retries, errors, stream parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ponder.clients import (
    PDR,
    SR,
    APIConnectionError,
    APIStatusError,
    AsyncPonder,
    BadRequestError,
    CoT,
    Custom,
    Finished,
    NotFoundError,
    PlanAndSolve,
    Ponder,
    RateLimitError,
    ReasoningChunk,
    SelfConsistency,
    ServiceUnavailableError,
    StreamError,
    Successive,
    TextChunk,
)
from ponder.clients.strategies import BUILT_IN
from ponder.strategies.registry import Registry


def test_importing_the_sdk_pulls_in_no_server_dependency() -> None:
    code = (
        "import sys, ponder.clients\n"
        "heavy = ['fastapi', 'uvicorn', 'redis', 'prometheus_client', 'starlette',"
        " 'ponder.server', 'ponder.strategies', 'sklearn', 'xllamacpp']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_sdk_strategies_mirror_the_servers_parameters() -> None:
    registry = Registry.default(load_entry_points=False)
    common = {"trace", "temperature", "max_tokens"}
    for sdk_class in BUILT_IN:
        server = registry.get(sdk_class.name).Params
        server_fields = {
            k: f
            for k, f in server.model_fields.items()
            if k not in common or k in sdk_class.model_fields
        }
        assert set(sdk_class.model_fields) == set(server_fields), sdk_class.name
        for name, field in sdk_class.model_fields.items():
            server_default = server_fields[name].get_default(call_default_factory=True)
            assert field.get_default(call_default_factory=True) == server_default, (
                sdk_class.name,
                name,
            )


def test_strategy_objects_are_checked_before_sending() -> None:
    with pytest.raises(ValidationError, match="last round"):
        PDR(schedule=[4, 2])
    with pytest.raises(ValidationError):
        SelfConsistency(n=0)
    with pytest.raises(ValidationError, match="needs pool"):
        CoT(mode="auto")
    with pytest.raises(ValidationError):
        SR(round=3)  # type: ignore[call-arg]
    assert PDR(schedule=[4, 2, 1]).to_ponder() == {"strategy": "pdr", "schedule": [4, 2, 1]}
    assert PlanAndSolve(variant="ps").to_ponder() == {"strategy": "plan_and_solve", "variant": "ps"}
    assert Successive().to_ponder() == {"strategy": "successive"}
    assert Custom(strategy_name="shout", drafts=4).to_ponder() == {"strategy": "shout", "drafts": 4}


def completion(text: str = "hi") -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "m",
        "created": 1,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "total_tokens": 4,
            "ponder": {
                "calls": 1,
                "rounds": 1,
                "drafts": 0,
                "sequential_tokens": 4,
                "all_tokens": 4,
            },
        },
        "ponder": {"strategy": "direct", "params": {}, "answers": ["7"]},
    }


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers=headers,
        json={"error": {"message": f"failed with {code}", "type": "x", "param": "p", "code": code}},
    )


class Recorder:
    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_for(recorder: Recorder, sleeps: list[float], **kwargs: Any) -> Ponder:
    return Ponder(
        "http://ponder/v1",
        model="m",
        api_key="sk-test",
        transport=httpx.MockTransport(recorder),
        sleep=sleeps.append,
        **kwargs,
    )


def test_a_request_carries_the_strategy_and_the_key() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    result = client_for(recorder, []).chat(
        "What is 3+4?", strategy=PDR(schedule=[2, 1]), trace=True, max_tokens=9
    )
    sent = json.loads(recorder.requests[0].content)
    assert recorder.requests[0].url == "http://ponder/v1/chat/completions"
    assert recorder.requests[0].headers["authorization"] == "Bearer sk-test"
    assert sent["messages"] == [{"role": "user", "content": "What is 3+4?"}]
    assert sent["ponder"] == {"strategy": "pdr", "schedule": [2, 1], "trace": True}
    assert sent["max_tokens"] == 9
    assert (result.text, result.answer) == ("hi", "7")
    assert (result.usage.sequential_tokens, result.usage.all_tokens) == (4, 4)


def test_a_request_carries_the_cache_mode_and_the_result_says_hit() -> None:
    answer = completion()
    answer["ponder"]["cache"] = "hit"
    recorder = Recorder(httpx.Response(200, json=answer))
    result = client_for(recorder, []).chat("What is 3+4?", cache="no-cache", temperature=0)
    sent = json.loads(recorder.requests[0].content)
    assert sent["ponder"] == {"cache": "no-cache"}
    assert result.ponder.cache == "hit"
    with pytest.raises(ValueError, match="cache"):
        client_for(Recorder(), []).chat("x", cache="sometimes")  # type: ignore[arg-type]


def test_a_request_carries_a_budget_and_the_result_says_what_it_bought() -> None:
    answer = completion()
    answer["ponder"]["details"] = {"budget": {"source": "ladder", "config": "cot"}}
    recorder = Recorder(httpx.Response(200, json=answer))
    result = client_for(recorder, []).chat("What is 3+4?", budget={"latency_s": 5})
    sent = json.loads(recorder.requests[0].content)
    assert sent["ponder"] == {"budget": {"latency_s": 5}}
    assert result.ponder.details == {"budget": {"source": "ladder", "config": "cot"}}


def test_429_is_retried_after_retry_after() -> None:
    recorder = Recorder(
        error(429, "too_many_requests", {"Retry-After": "3"}),
        httpx.Response(200, json=completion()),
    )
    sleeps: list[float] = []
    assert client_for(recorder, sleeps).chat("x").text == "hi"
    assert sleeps == [3.0]


def test_503_and_connection_errors_are_retried_then_typed() -> None:
    sleeps: list[float] = []
    recorder = Recorder(
        error(503, "engine_unavailable"),
        error(503, "engine_unavailable"),
        error(503, "engine_unavailable"),
    )
    with pytest.raises(ServiceUnavailableError) as raised:
        client_for(recorder, sleeps, max_retries=2).chat("x")
    assert raised.value.code == "engine_unavailable"
    assert len(recorder.requests) == 3
    assert len(sleeps) == 2
    assert all(0 < s <= 8 for s in sleeps)
    refused = Recorder(httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        client_for(refused, [], max_retries=1).models()


@pytest.mark.parametrize(
    ("status", "kind"), [(400, BadRequestError), (404, NotFoundError), (429, RateLimitError)]
)
def test_errors_are_typed_and_client_errors_not_retried(
    status: int, kind: type[APIStatusError]
) -> None:
    recorder = Recorder(error(status, "c"))
    with pytest.raises(kind) as raised:
        client_for(recorder, [], max_retries=0).chat("x")
    assert raised.value.status_code == status
    assert raised.value.param == "p"
    assert len(recorder.requests) == 1


def test_a_model_is_needed() -> None:
    client = Ponder(
        "http://ponder/v1", transport=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    with pytest.raises(ValueError, match="name a model"):
        client.chat("x")


def sse_body(*lines: str) -> bytes:
    return "".join(f"{line}\n\n" for line in lines).encode()


STREAM = sse_body(
    ": keep-alive",
    'data: {"choices": [{"index": 0, "delta": {"role": "assistant", '
    '"reasoning_content": "round 1 of 2: 3 drafts\\n\\n"}}]}',
    'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}',
    'data: {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}',
    'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, '
    '"total_tokens": 4, "ponder": {"calls": 2, "rounds": 2, "drafts": 4, '
    '"sequential_tokens": 9, "all_tokens": 12}}, "ponder": {"strategy": "pdr"}}',
    "data: [DONE]",
)


def test_a_stream_gives_reasoning_text_and_the_end() -> None:
    recorder = Recorder(httpx.Response(200, content=STREAM))
    events = list(client_for(recorder, []).chat_stream("x", strategy=PDR(schedule=[3, 1])))
    assert json.loads(recorder.requests[0].content)["stream_options"] == {"include_usage": True}
    assert events[0] == ReasoningChunk(index=0, text="round 1 of 2: 3 drafts\n\n")
    assert [e.text for e in events if isinstance(e, TextChunk)] == ["Hel", "lo"]
    end = events[-1]
    assert isinstance(end, Finished)
    assert end.finish_reasons == {0: "stop"}
    assert end.usage is not None
    assert end.usage.sequential_tokens == 9
    assert end.ponder is not None
    assert end.ponder.strategy == "pdr"


def test_an_error_inside_a_stream_is_raised_and_not_retried() -> None:
    body = sse_body(
        'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}',
        'data: {"error": {"message": "engine stalled", "code": "engine_timeout"}}',
        "data: [DONE]",
    )
    recorder = Recorder(httpx.Response(200, content=body), httpx.Response(200, content=body))
    with pytest.raises(StreamError) as raised:
        list(client_for(recorder, []).chat_stream("x"))
    assert raised.value.code == "engine_timeout"
    assert len(recorder.requests) == 1


async def test_the_async_client_shares_the_logic() -> None:
    recorder = Recorder(
        error(429, "too_many_requests", {"Retry-After": "0.5"}),
        httpx.Response(200, json=completion("async")),
        httpx.Response(200, content=STREAM),
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncPonder(
        "http://ponder/v1", model="m", sleep=sleep, transport=httpx.MockTransport(recorder)
    ) as client:
        assert (await client.chat("x")).text == "async"
        events = [event async for event in client.chat_stream("x")]
    assert sleeps == [0.5]
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "Hello"


def test_usage_reads_b_total_under_its_earlier_name_too() -> None:
    from ponder.clients.models import PonderUsage

    assert PonderUsage.model_validate({"all_tokens": 12}).all_tokens == 12
    assert PonderUsage.model_validate({"total_tokens": 12}).all_tokens == 12
