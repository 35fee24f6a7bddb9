"""Response and engine-call caching through the gateway, over the scripted engine.

These test the control flow (what is looked up, stored and replayed); the
same behaviour against real engines and a real Redis is in
tests/integration/test_cache.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine

CHAT = "/v1/chat/completions"


def chat_body(**overrides: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "two plus two"}], **overrides}


def stream_events(response: httpx.Response) -> list[dict[str, Any]]:
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[len("data: ") :]))
    assert response.text.rstrip().endswith("data: [DONE]")
    return events


def streamed_text(response: httpx.Response) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in stream_events(response)
        for choice in event["choices"]
    )


async def test_a_greedy_request_repeated_is_a_hit_with_no_engine_call(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    body = chat_body(temperature=0, max_tokens=20)
    first = await client.post(CHAT, json=body)
    assert first.headers["x-ponder-cache"] == "miss"
    assert first.json()["ponder"]["cache"] == "miss"
    calls = len(engine.calls)
    assert calls == 1
    second = await client.post(CHAT, json=body)
    assert second.status_code == 200
    assert second.headers["x-ponder-cache"] == "hit"
    assert len(engine.calls) == calls
    one, two = first.json(), second.json()
    assert two["ponder"]["cache"] == "hit"
    assert two["choices"] == one["choices"]
    assert two["usage"] == one["usage"]  # what the answer cost when it was computed
    assert two["id"] != one["id"]


async def test_a_seeded_request_is_cached_and_an_unseeded_sampled_one_is_not(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    for _ in range(2):
        await client.post(CHAT, json=chat_body(seed=7))
    assert len(engine.calls) == 1
    for _ in range(2):
        response = await client.post(CHAT, json=chat_body(temperature=0.8))
        assert response.headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == 3
    await client.post(CHAT, json=chat_body(seed=8))  # another seed, another answer
    assert len(engine.calls) == 4


async def test_a_strategy_that_samples_above_zero_is_not_cached_for_a_greedy_request(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    body = chat_body(temperature=0, ponder={"strategy": "self_consistency", "n": 3})
    for _ in range(2):
        response = await client.post(CHAT, json=body)
        assert response.headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == 2


async def test_no_store_neither_reads_nor_writes_and_no_cache_refreshes(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    no_store = chat_body(temperature=0, ponder={"cache": "no-store"})
    await client.post(CHAT, json=no_store)
    await client.post(CHAT, json=no_store)
    assert len(engine.calls) == 2
    plain = chat_body(temperature=0)
    assert (await client.post(CHAT, json=plain)).headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == 3  # no-store left nothing behind
    refresh = chat_body(temperature=0, ponder={"cache": "no-cache"})
    assert (await client.post(CHAT, json=refresh)).headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == 4  # looked nothing up ...
    assert (await client.post(CHAT, json=plain)).headers["x-ponder-cache"] == "hit"
    assert len(engine.calls) == 4  # ... and stored what it got


async def test_an_unknown_cache_mode_is_a_400(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post(CHAT, json=chat_body(ponder={"cache": "sometimes"}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "ponder.cache"
    assert engine.calls == []


async def test_streams_are_served_from_the_cache_as_streams(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    body = chat_body(
        temperature=0, stream=True, stream_options={"include_usage": True}, max_tokens=30
    )
    first = await client.post(CHAT, json=body)
    assert first.headers["x-ponder-cache"] == "miss"
    calls = len(engine.calls)
    second = await client.post(CHAT, json=body)
    assert second.headers["x-ponder-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert len(engine.calls) == calls
    assert streamed_text(second) == streamed_text(first)
    events = stream_events(second)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["usage"] == stream_events(first)[-1]["usage"]
    assert events[-1]["ponder"]["cache"] == "hit"
    # The streamed answer is the non-streamed request's answer too.
    plain = await client.post(CHAT, json=chat_body(temperature=0, max_tokens=30))
    assert plain.headers["x-ponder-cache"] == "hit"
    assert plain.json()["choices"][0]["message"]["content"] == streamed_text(first)
    assert len(engine.calls) == calls


async def test_a_repeated_seeded_pdr_run_makes_no_engine_call_and_keeps_its_drafts_apart(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    ponder = {"strategy": "pdr", "schedule": [3, 1], "distill": "shared_top_k", "k": 3}
    first = await client.post(CHAT, json=chat_body(seed=3, ponder={**ponder, "trace": True}))
    calls = len(engine.calls)
    # A different response (no trace) made of the same engine calls: every call is a hit.
    second = await client.post(CHAT, json=chat_body(seed=3, ponder=ponder))
    assert second.headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == calls
    assert second.json()["usage"] == first.json()["usage"]
    traced = first.json()["ponder"]["trace"]
    drafts = [t["output"] for t in traced if t["role"] == "draft" and t["round"] == 1]
    assert len(set(drafts)) == 3  # three distinct drafts, never one cached thrice
    # Calls with other sampling are other entries.
    await client.post(CHAT, json=chat_body(seed=3, ponder={**ponder, "max_tokens": 40}))
    assert len(engine.calls) > calls


async def test_cached_engine_calls_are_marked_in_the_trace(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    ponder = {"strategy": "self_consistency", "n": 4}
    await client.post(CHAT, json=chat_body(seed=5, ponder=ponder))
    calls = len(engine.calls)
    again = await client.post(CHAT, json=chat_body(seed=5, ponder={**ponder, "trace": True}))
    assert len(engine.calls) == calls
    trace = again.json()["ponder"]["trace"]
    assert len(trace) == 4
    assert all(t["meta"]["cached"] for t in trace)
    assert len({t["output"] for t in trace}) == 4  # per-draft entries, in their order
    assert [t["index"] for t in trace] == [0, 1, 2, 3]


@pytest.fixture
def uncached_app(engine: ScriptedEngine, settings: Settings) -> FastAPI:
    return create_app(
        settings.model_copy(update={"cache": False}), engines=StaticEngines({"tiny": engine})
    )


async def test_with_the_cache_off_nothing_is_cached(
    uncached_app: FastAPI, engine: ScriptedEngine
) -> None:
    transport = httpx.ASGITransport(app=uncached_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        for _ in range(2):
            response = await client.post(CHAT, json=chat_body(temperature=0))
            assert response.headers["x-ponder-cache"] == "miss"
            assert "cache" not in response.json()["ponder"]
    assert len(engine.calls) == 2


@pytest.mark.parametrize("leader_streams", [False, True])
async def test_identical_misses_at_once_are_computed_once(
    client: httpx.AsyncClient, engine: ScriptedEngine, leader_streams: bool
) -> None:
    engine.delay = 0.2  # the first is still computing when the others arrive
    body = chat_body(temperature=0, max_tokens=20)
    leader = asyncio.create_task(client.post(CHAT, json={**body, "stream": leader_streams}))
    await asyncio.sleep(0.05)
    followers = await asyncio.gather(
        *(client.post(CHAT, json={**body, "stream": i % 2 == 1}) for i in range(19))
    )
    first = await leader
    assert len(engine.calls) == 1
    assert first.headers["x-ponder-cache"] == "miss"
    assert [f.headers["x-ponder-cache"] for f in followers] == ["hit"] * 19
    text = (
        streamed_text(first) if leader_streams else first.json()["choices"][0]["message"]["content"]
    )
    for i, follower in enumerate(followers):
        got = (
            streamed_text(follower)
            if i % 2
            else follower.json()["choices"][0]["message"]["content"]
        )
        assert got == text


async def test_followers_compute_for_themselves_when_the_first_stores_nothing(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.delay = 0.2
    # An adaptive vote depends on which samples finish first: never stored.
    ponder = {"strategy": "self_consistency", "n": 2, "adaptive": True}
    body = chat_body(seed=1, max_tokens=20, ponder=ponder)
    leader = asyncio.create_task(client.post(CHAT, json=body))
    await asyncio.sleep(0.05)
    follower = await client.post(CHAT, json=body)
    assert (await leader).headers["x-ponder-cache"] == "miss"
    assert follower.status_code == 200
    assert follower.headers["x-ponder-cache"] == "miss"
    assert len(engine.calls) == 2
