"""The SDK against a live ``ponder serve`` on its embedded engine: every method, streams,
typed errors and retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ponder.clients import (
    PDR,
    AsyncPonder,
    BadRequestError,
    Finished,
    NotFoundError,
    Ponder,
    RateLimitError,
    ReasoningChunk,
    SelfConsistency,
    ServiceUnavailableError,
    TextChunk,
)
from ponder.server.engines.managed import ManagedEngine, free_port
from tests.integration.conftest import MODEL, gateway_process

QUESTION = "A baker made 24 cakes and sold 18. How many cakes are left?"


@pytest.fixture
def client(embedded_gateway: ManagedEngine) -> Iterator[Ponder]:
    with Ponder(embedded_gateway.url + "/v1", model=MODEL, timeout=300) as client:
        yield client


def test_models_and_strategies(client: Ponder) -> None:
    models = client.models()
    assert MODEL in models
    assert f"pdr:{MODEL}" in models
    strategies = {info.id: info for info in client.strategies()}
    assert {
        "direct",
        "cot",
        "plan_and_solve",
        "successive",
        "self_consistency",
        "sr",
        "pdr",
    } <= set(strategies)
    assert "schedule" in strategies["pdr"].parameters["properties"]


def test_chat_with_n_and_usage(client: Ponder) -> None:
    result = client.chat(QUESTION, max_tokens=16, n=3, temperature=0.8)
    assert [choice.index for choice in result.choices] == [0, 1, 2]
    assert result.usage.ponder.calls == 1
    assert result.usage.completion_tokens >= 3
    assert result.usage.sequential_tokens <= result.usage.all_tokens


def test_a_typed_strategy_and_its_typed_trace(client: Ponder) -> None:
    result = client.chat(
        QUESTION,
        strategy=PDR(schedule=[3, 1], workspace_tokens=64),
        max_tokens=48,
        temperature=0.7,
        trace=True,
    )
    assert result.ponder.strategy == "pdr"
    assert result.ponder.params["schedule"] == [3, 1]
    trace = result.ponder.trace
    assert trace is not None
    assert [call.role for call in trace] == ["draft"] * 3 + ["distill", "draft"]
    assert sum(c.prompt_tokens + c.completion_tokens for c in trace) == result.usage.all_tokens
    assert result.usage.ponder.rounds == 2


def test_a_stream_gives_reasoning_text_and_usage(client: Ponder) -> None:
    events = list(client.chat_stream(QUESTION, strategy=SelfConsistency(n=3), max_tokens=48))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningChunk))
    assert reasoning.startswith("sampling 3 rationales")
    assert "votes:" in reasoning
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextChunk))
    assert all(not isinstance(e, ReasoningChunk) for e in events[first_text:])
    assert "".join(e.text for e in events if isinstance(e, TextChunk))
    end = events[-1]
    assert isinstance(end, Finished)
    assert end.usage is not None
    assert end.usage.ponder.drafts == 3
    assert end.ponder is not None
    assert end.ponder.strategy == "self_consistency"


async def test_the_async_client(embedded_gateway: ManagedEngine) -> None:
    async with AsyncPonder(embedded_gateway.url + "/v1", model=MODEL) as client:
        assert MODEL in await client.models()
        result = await client.chat(QUESTION, max_tokens=8)
        assert result.usage.ponder.calls == 1
        chunks = [
            e async for e in client.chat_stream(QUESTION, max_tokens=8) if isinstance(e, TextChunk)
        ]
        assert chunks


def test_400_and_404_are_typed(client: Ponder) -> None:
    with pytest.raises(BadRequestError) as bad:
        client.chat(QUESTION, max_tokens=8, extra={"ponder": {"strategy": "nope"}})
    assert bad.value.param == "ponder.strategy"
    with pytest.raises(NotFoundError):
        client.chat(QUESTION, model="no-such-model", max_tokens=8)


def _requests_with_status(gateway: ManagedEngine, status: str) -> float:
    text = httpx.get(gateway.url + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ponder_requests_total{") and f'status="{status}"' in line
    )


def test_503_is_retried_then_typed(logs: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway_process(logs, "--engine-url", dead, ready_path="/health") as gateway:
        sleeps: list[float] = []
        with (
            Ponder(gateway.url + "/v1", model=MODEL, max_retries=2, sleep=sleeps.append) as client,
            pytest.raises(ServiceUnavailableError),
        ):
            client.chat(QUESTION, max_tokens=4)
        assert len(sleeps) == 2
        assert _requests_with_status(gateway, "503") == 3  # the server saw every try


def test_429_honours_retry_after_and_the_retry_succeeds(
    llamacpp: ManagedEngine, logs: Path
) -> None:
    env = {"PONDER_MAX_IN_FLIGHT": "1"}
    with gateway_process(logs, "--engine-url", llamacpp.url, env=env) as gateway:
        holder = httpx.Client(timeout=60)
        body = {
            "model": MODEL,
            "stream": True,
            "max_tokens": 1500,
            "messages": [{"role": "user", "content": "Write a long story."}],
            "ignore_eos": True,
        }
        held = holder.send(
            holder.build_request("POST", gateway.url + "/v1/chat/completions", json=body),
            stream=True,
        )
        assert held.status_code == 200  # the gateway's one place is taken
        with Ponder(gateway.url + "/v1", model=MODEL, max_retries=0) as impatient:
            with pytest.raises(RateLimitError) as refused:
                impatient.chat(QUESTION, max_tokens=4)
            assert refused.value.retry_after == 1.0

        slept: list[float] = []

        def sleep(seconds: float) -> None:
            # While the client waits as told, the holder hangs up and frees the place.
            slept.append(seconds)
            held.close()
            holder.close()
            time.sleep(seconds)

        with Ponder(gateway.url + "/v1", model=MODEL, max_retries=1, sleep=sleep) as patient:
            assert patient.chat(QUESTION, max_tokens=4).choices
        assert slept == [1.0]
