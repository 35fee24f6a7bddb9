"""The gateway's control flow over the scripted engine: selection, usage, errors, streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.direct import Direct
from ponder.strategies.engine import EngineRejected, EngineTimeout, EngineUnavailable
from ponder.strategies.registry import Registry
from ponder.strategies.testing import ScriptedEngine

CHAT = "/v1/chat/completions"


def chat_body(**overrides: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "two plus two"}], **overrides}


def assert_envelope(response: httpx.Response, status: int, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param


async def test_direct_answers_with_usage_summed_over_calls(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post(CHAT, json=chat_body(n=3, max_tokens=50))
    assert response.status_code == 200
    data = response.json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert len(engine.calls) == 1
    assert engine.calls[0].n == 3
    prompt = len(engine.calls[0].prompt.split())
    completions = [len(c["message"]["content"].split()) for c in data["choices"]]
    usage = data["usage"]
    assert usage["prompt_tokens"] == prompt
    assert usage["completion_tokens"] == sum(completions)
    assert usage["total_tokens"] == prompt + sum(completions)
    assert usage["ponder"] == {
        "calls": 1,
        "rounds": 1,
        "drafts": 0,
        "sequential_tokens": prompt + max(completions),
        "all_tokens": 3 * prompt + sum(completions),
    }
    assert data["ponder"]["strategy"] == "direct"


async def test_single_direct_call_has_equal_sequential_and_total(
    client: httpx.AsyncClient,
) -> None:
    usage = (await client.post(CHAT, json=chat_body())).json()["usage"]
    assert usage["ponder"]["sequential_tokens"] == usage["ponder"]["all_tokens"]
    assert usage["ponder"]["all_tokens"] == usage["total_tokens"]


async def test_trace_lists_every_call(client: httpx.AsyncClient) -> None:
    data = (await client.post(CHAT, json=chat_body(n=2, ponder={"trace": True}))).json()
    trace = data["ponder"]["trace"]
    assert [(t["role"], t["round"], t["index"]) for t in trace] == [
        ("answer", 1, 0),
        ("answer", 1, 1),
    ]
    total = sum(t["prompt_tokens"] + t["completion_tokens"] for t in trace)
    assert total == data["usage"]["ponder"]["all_tokens"]


async def test_model_prefix_and_extra_body_select_the_strategy(
    client: httpx.AsyncClient,
) -> None:
    prefixed = await client.post(CHAT, json=chat_body(model="direct:tiny"))
    assert prefixed.status_code == 200
    assert prefixed.json()["model"] == "direct:tiny"
    assert prefixed.json()["ponder"]["strategy"] == "direct"
    named = await client.post(CHAT, json=chat_body(ponder={"strategy": "direct"}))
    assert named.json()["ponder"]["strategy"] == "direct"
    clash = await client.post(CHAT, json=chat_body(model="direct:tiny", ponder={"strategy": "pdr"}))
    assert_envelope(clash, 400, "ponder.strategy")


async def test_sampling_and_unknown_fields_reach_the_engine(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post(
        CHAT,
        json=chat_body(
            temperature=0.3,
            max_completion_tokens=7,
            seed=5,
            stop="END",
            top_k=20,
            user="someone",
            metadata={"a": "b"},
        ),
    )
    assert response.status_code == 200
    sampling = engine.calls[0].sampling
    assert (sampling.temperature, sampling.max_tokens, sampling.seed) == (0.3, 7, 5)
    assert sampling.stop == ("END",)
    assert sampling.extra == {"top_k": 20}


async def test_default_max_tokens_applies_when_the_request_sets_none(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    await client.post(CHAT, json=chat_body())
    assert engine.calls[0].sampling.max_tokens == 512


async def test_reasoning_effort_maps_to_a_budget_the_ladder_spends(
    client: httpx.AsyncClient,
) -> None:
    high = (await client.post(CHAT, json=chat_body(reasoning_effort="high"))).json()
    assert high["ponder"]["strategy"] == "pdr"
    assert high["ponder"]["params"]["schedule"] == [8, 4, 1]
    chosen = high["ponder"]["details"]["budget"]
    assert chosen["source"] == "ladder"
    assert chosen["budget"] == {"sequential_tokens": 4096, "all_tokens": 16384}
    assert chosen["config"] == "pdr [8,4,1]"
    medium = (await client.post(CHAT, json=chat_body(reasoning_effort="medium"))).json()
    assert (medium["ponder"]["strategy"], medium["ponder"]["params"]["n"]) == (
        "self_consistency",
        8,
    )
    assert medium["usage"]["ponder"]["all_tokens"] <= 4096
    low = (await client.post(CHAT, json=chat_body(reasoning_effort="low"))).json()
    assert low["ponder"]["strategy"] == "cot"
    minimal = (await client.post(CHAT, json=chat_body(reasoning_effort="minimal"))).json()
    assert minimal["ponder"]["strategy"] == "direct"
    assert "budget" not in (minimal["ponder"].get("details") or {})
    bad = await client.post(CHAT, json=chat_body(reasoning_effort="extreme"))
    assert_envelope(bad, 400, "reasoning_effort")


async def test_a_preset_whose_strategy_is_missing_falls_back_to_the_default(
    engine: ScriptedEngine, settings: Settings
) -> None:
    app = create_app(settings, engines=StaticEngines({"tiny": engine}), registry=Registry([Direct]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        response = await client.post(CHAT, json=chat_body(reasoning_effort="high"))
    assert response.status_code == 200
    assert response.json()["ponder"]["strategy"] == "direct"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat_body(ponder={"strategy": "nope"}), "ponder.strategy"),
        (chat_body(n=0), "n"),
        (chat_body(n=9), "n"),  # over max_n
        (chat_body(max_tokens=1001), "max_tokens"),  # over max_tokens_per_call
        (chat_body(messages=[]), "messages"),
        (chat_body(messages="hello"), "messages"),
        (chat_body(temperature="hot"), "temperature"),
        (chat_body(temperature=3), "temperature"),
        (chat_body(ponder={"trace": "yes please"}), "ponder.trace"),
        (chat_body(ponder={"strategy": "self_consistency", "n": "3"}), "ponder.n"),
        (chat_body(ponder={"strategy": "self_consistency", "n": True}), "ponder.n"),
        (chat_body(ponder={"strategy": "self_consistency", "adaptive": 1}), "ponder.adaptive"),
        (chat_body(ponder={"rounds": 3}), "ponder.rounds"),  # direct has no rounds
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        (chat_body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), "messages"),
    ],
)
async def test_bad_parameters_get_400_and_no_engine_call(
    client: httpx.AsyncClient, engine: ScriptedEngine, body: dict[str, Any], param: str
) -> None:
    response = await client.post(CHAT, json=body)
    assert_envelope(response, 400, param)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert engine.calls == []


async def test_malformed_json_gets_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CHAT,
        content=b'{"model": "tiny", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 400)
    assert response.json()["error"]["code"] == "invalid_json"


async def test_unknown_model_gets_404(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT, json=chat_body(model="gpt-7"))
    assert_envelope(response, 404, "model")
    assert response.json()["error"]["code"] == "model_not_found"
    prefixed = await client.post(CHAT, json=chat_body(model="direct:gpt-7"))
    assert_envelope(prefixed, 404, "model")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (EngineUnavailable("all replicas down"), 503),
        (EngineTimeout("took too long"), 504),
        (EngineRejected("prompt too long"), 400),
    ],
)
async def test_engine_failures_map_to_statuses(
    client: httpx.AsyncClient, engine: ScriptedEngine, error: Exception, status: int
) -> None:
    engine.fail_with.append(error)  # type: ignore[arg-type]
    response = await client.post(CHAT, json=chat_body())
    assert_envelope(response, status)


async def test_models_lists_plain_and_prefixed_names(client: httpx.AsyncClient) -> None:
    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    strategies = [
        "best_of_n",
        "cot",
        "direct",
        "pdr",
        "plan_and_solve",
        "self_consistency",
        "sr",
        "successive",
    ]
    assert ids == ["tiny", *(f"{s}:tiny" for s in strategies)]


async def test_health_ready_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200
    await client.post(CHAT, json=chat_body())
    await client.post(CHAT, json=chat_body(model="gpt-7"))
    text = (await client.get("/metrics")).text
    assert 'ponder_requests_total{model="tiny",status="200",strategy="direct"} 1.0' in text


@pytest.mark.parametrize(
    ("prompt", "texts"),
    [
        ([5, 7], ["w5 w7"]),
        ([[5, 7], [9]], ["w5 w7", "w9"]),
    ],
)
async def test_token_id_prompts_are_read_as_the_engines_text(
    client: httpx.AsyncClient, engine: ScriptedEngine, prompt: Any, texts: list[str]
) -> None:
    response = await client.post(
        "/v1/completions",
        json={"model": "tiny", "prompt": prompt, "max_tokens": 5},
    )
    assert response.status_code == 200, response.text
    assert [c.prompt for c in engine.calls] == texts
    assert len(response.json()["choices"]) == len(texts)


@pytest.mark.parametrize("prompt", [[], [[]], [-1], [1, "a"], [[1], "a"], [1.5], [[1, [2]]]])
async def test_malformed_token_id_prompts_are_400s(
    client: httpx.AsyncClient, engine: ScriptedEngine, prompt: Any
) -> None:
    response = await client.post("/v1/completions", json={"model": "tiny", "prompt": prompt})
    assert_envelope(response, 400)
    assert engine.calls == []


async def test_token_ids_for_an_unknown_model_are_a_404(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post("/v1/completions", json={"model": "gpt-7", "prompt": [1, 2]})
    assert_envelope(response, 404)
    assert engine.calls == []


async def test_text_completions_with_a_list_of_prompts(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post(
        "/v1/completions",
        json={"model": "tiny", "prompt": ["first", "second"], "n": 2, "max_tokens": 5},
    )
    data = response.json()
    assert data["object"] == "text_completion"
    assert [c["index"] for c in data["choices"]] == [0, 1, 2, 3]
    assert [c.prompt for c in engine.calls] == ["first", "second"]
    assert data["usage"]["ponder"]["calls"] == 2


def sse_events(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    events, comments = [], []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: ") :]))
    return events, comments


async def test_stream_sends_chunks_usage_and_done(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CHAT, json=chat_body(stream=True, n=2, stream_options={"include_usage": True})
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    events, _ = sse_events(response.text)
    texts: dict[int, str] = {0: "", 1: ""}
    for event in events[:-1]:
        assert event["object"] == "chat.completion.chunk"
        for choice in event["choices"]:
            texts[choice["index"]] += choice["delta"].get("content", "")
    assert all(t.startswith("answer 0 to") for t in texts.values())
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["stop", "stop"]
    last = events[-1]
    assert last["choices"] == []
    completion = sum(len(t.split()) for t in texts.values())
    assert last["usage"]["completion_tokens"] == completion
    assert last["ponder"]["strategy"] == "direct"


async def test_stream_error_before_any_output_is_a_plain_error(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.fail_with.append(EngineUnavailable("down"))
    response = await client.post(CHAT, json=chat_body(stream=True))
    assert_envelope(response, 503)


async def test_stream_error_after_output_is_sent_in_stream_then_done(app: FastAPI) -> None:
    class FailsMidStream(ScriptedEngine):
        async def stream(self, prompt, *, sampling):  # type: ignore[no-untyped-def]
            async for event in super().stream(prompt, sampling=sampling):
                yield event
                raise EngineTimeout("engine stalled")

    app.state.gateway.serving.engines._engines["tiny"] = FailsMidStream(model="tiny")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.post(CHAT, json=chat_body(stream=True))
    assert response.status_code == 200
    events, _ = sse_events(response.text)
    assert events[-1]["error"]["code"] == "engine_timeout"
    assert response.text.endswith("data: [DONE]\n\n")


async def call_and_leave(app: FastAPI, body: dict[str, Any], leave_after: float) -> list[Any]:
    """Send a request as raw ASGI, then disconnect after ``leave_after`` seconds."""
    sent: list[Any] = []
    payload = json.dumps(body).encode()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await asyncio.sleep(leave_after)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": CHAT,
        "raw_path": CHAT.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "scheme": "http",
        "server": ("ponder", 80),
        "client": ("test", 1),
        "root_path": "",
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_cancels_its_engine_calls(
    app: FastAPI, engine: ScriptedEngine, stream: bool
) -> None:
    engine.delay = 0.5  # long enough that the client leaves mid-call
    await call_and_leave(app, chat_body(stream=stream, max_tokens=400), leave_after=0.2)
    assert engine.cancelled == 1
    assert engine.in_flight == 0
    metrics = app.state.gateway.metrics.render().decode()
    assert 'status="499"' in metrics


async def test_a_client_that_leaves_mid_stream_cancels_its_engine_call(
    app: FastAPI, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: "word " * 50
    engine.delay = 0.05  # before the call answers, and between its words
    sent = await call_and_leave(app, chat_body(stream=True, max_tokens=400), leave_after=0.5)
    parts = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    assert any(part.startswith(b"data: ") for part in parts)  # it had begun to stream
    assert b"[DONE]" not in b"".join(parts)
    assert engine.cancelled == 1
    assert engine.in_flight == 0
    metrics = app.state.gateway.metrics.render().decode()
    assert 'status="499"' in metrics


async def test_a_body_over_the_limit_is_413_and_reaches_no_engine(
    client: httpx.AsyncClient, engine: ScriptedEngine, settings: Any
) -> None:
    huge = "word " * (settings.max_body_bytes // 5 + 1)
    response = await client.post(CHAT, json=chat_body(messages=[{"role": "user", "content": huge}]))
    assert_envelope(response, 413)
    assert response.json()["error"]["code"] == "body_too_large"

    async def chunks() -> Any:
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024  # no content-length: counted as it arrives

    streamed = await client.post(
        CHAT, content=chunks(), headers={"content-type": "application/json"}
    )
    assert_envelope(streamed, 413)
    assert engine.calls == []


@pytest.mark.parametrize(
    "ponder",
    [{"strategy": "pdr", "schedule": [3, 1]}, {"strategy": "self_consistency", "n": 3}],
    ids=["pdr", "self_consistency"],
)
async def test_an_engine_failing_before_it_took_any_call_is_an_http_error_for_a_stream(
    client: httpx.AsyncClient, engine: ScriptedEngine, ponder: dict[str, Any]
) -> None:
    # The strategy says "round 1 of 2: 3 drafts" before its first call; that note waits
    # for an engine to take the call, so the failure keeps its own status.
    engine.fail_with.append(EngineUnavailable("http://10.0.3.7:8000: refused"))
    response = await client.post(CHAT, json=chat_body(stream=True, ponder=ponder))
    assert_envelope(response, 503)
    assert "text/event-stream" not in response.headers["content-type"]


async def test_notes_flow_once_an_engine_took_a_call(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    # The second round's call fails after the first round's notes went out: the stream is
    # already a 200, so the failure is its last event.
    engine.fail_with.extend([None, EngineUnavailable("down")])
    response = await client.post(
        CHAT, json=chat_body(stream=True, ponder={"strategy": "sr", "rounds": 1})
    )
    assert response.status_code == 200
    events, _ = sse_events(response.text)
    assert streamed_reasoning(events)
    assert events[-1]["error"]["code"]


def streamed_reasoning(events: list[dict[str, Any]]) -> str:
    return "".join(
        c["delta"].get("reasoning_content", "") for e in events for c in e.get("choices", [])
    )


async def test_a_multi_round_strategy_streams_its_work_then_its_last_round(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        CHAT,
        json=chat_body(
            stream=True,
            stream_options={"include_usage": True},
            ponder={"strategy": "pdr", "schedule": [3, 1], "trace": True},
        ),
    )
    assert response.status_code == 200
    events, _ = sse_events(response.text)
    reasoning = streamed_reasoning(events)
    trace = events[-1]["ponder"]["trace"]
    distilled = next(t["output"] for t in trace if t["role"] == "distill")
    assert reasoning.startswith("round 1 of 2: 3 drafts\n\n")
    assert f"[workspace after round 1]\n{distilled.strip()}" in reasoning
    assert reasoning.rstrip().endswith("round 2 of 2: 1 drafts")
    deltas = [c["delta"] for e in events for c in e.get("choices", [])]
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert not any("reasoning_content" in d for d in deltas[first_content:])
    assert deltas[0]["role"] == "assistant"
    assert sum(1 for d in deltas if "role" in d) == 1
    text = "".join(d.get("content", "") for d in deltas)
    assert text == trace[-1]["output"]  # the last round's draft, as streamed
    assert [t["role"] for t in trace] == ["draft"] * 3 + ["distill", "draft"]
    assert events[-1]["usage"]["ponder"]["drafts"] == 4


async def test_reasoning_levels_show_none_the_summary_or_every_draft(
    client: httpx.AsyncClient,
) -> None:
    async def ask(level: str | None, stream: bool = False) -> tuple[str | None, list[Any]]:
        ponder: dict[str, Any] = {"strategy": "pdr", "schedule": [2, 1], "trace": True}
        if level is not None:
            ponder["reasoning"] = level
        body = chat_body(stream=stream, stream_options={"include_usage": True}, ponder=ponder)
        if not stream:
            body.pop("stream_options")
        response = await client.post(CHAT, json=body)
        assert response.status_code == 200
        if stream:
            events, _ = sse_events(response.text)
            return streamed_reasoning(events) or None, events[-1]["ponder"]["trace"]
        data = response.json()
        return data["choices"][0]["message"].get("reasoning_content"), data["ponder"]["trace"]

    summary, trace = await ask(None)
    assert summary is not None
    assert summary.startswith("round 1 of 2: 2 drafts")
    assert "[workspace after round 1]" in summary
    assert "[draft" not in summary
    assert (await ask("summary"))[0] == summary
    assert (await ask("none"))[0] is None
    assert (await ask("none", stream=True))[0] is None
    full, trace = await ask("full")
    assert full is not None
    for call in trace[:-1]:  # every call but the answer's
        assert call["output"].strip() in full
    assert "[draft 1, round 1]" in full
    assert "[distill, round 1]" in full
    assert trace[-1]["output"].strip() not in full
    streamed, _ = await ask("full", stream=True)
    assert streamed is not None
    assert streamed.strip() == full


async def test_a_text_completion_streams_its_work_as_comments(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "model": "tiny",
        "prompt": "2+2=",
        "stream": True,
        "ponder": {"strategy": "pdr", "schedule": [2, 1]},
    }
    events, comments = sse_events((await client.post("/v1/completions", json=body)).text)
    assert "round 1 of 2: 2 drafts" in comments
    assert "[workspace after round 1]" in comments
    assert all("reasoning_content" not in json.dumps(e) for e in events)


async def test_an_unknown_reasoning_level_is_a_400(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    response = await client.post(CHAT, json=chat_body(ponder={"reasoning": "all"}))
    assert_envelope(response, 400)
    assert "reasoning" in response.json()["error"]["param"]
    assert engine.calls == []


async def test_n_runs_a_strategy_that_answers_once_n_times(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    data = (
        await client.post(CHAT, json=chat_body(n=2, ponder={"strategy": "sr", "rounds": 1}))
    ).json()
    assert len(data["choices"]) == 2
    assert len(engine.calls) == 4  # (draft + refine) twice
    usage = data["usage"]["ponder"]
    assert usage["calls"] == 4
    assert usage["rounds"] == 2
    assert usage["sequential_tokens"] < usage["all_tokens"]  # the runs overlap


async def test_strategy_caps_are_400s_that_name_the_cap(client: httpx.AsyncClient) -> None:
    over = await client.post(CHAT, json=chat_body(ponder={"strategy": "pdr", "schedule": [64, 1]}))
    assert_envelope(over, 400, "ponder")
    assert "max_drafts_per_round" in over.json()["error"]["message"]
    bad = await client.post(CHAT, json=chat_body(ponder={"strategy": "pdr", "schedule": [4, 2]}))
    assert_envelope(bad, 400, "ponder.schedule")


async def test_strategies_are_listed_with_their_parameter_schemas(
    client: httpx.AsyncClient,
) -> None:
    data = (await client.get("/v1/strategies")).json()["data"]
    by_id = {card["id"]: card for card in data}
    assert set(by_id) == {
        "best_of_n",
        "cot",
        "direct",
        "pdr",
        "plan_and_solve",
        "self_consistency",
        "sr",
        "successive",
    }
    pdr = by_id["pdr"]["parameters"]["properties"]
    assert pdr["schedule"]["default"] == [8, 4, 1]
    assert "workspace_tokens" in pdr
    assert by_id["pdr"]["description"]


async def test_over_max_in_flight_is_429_with_retry_after(
    engine: ScriptedEngine, settings: Settings
) -> None:
    engine.delay = 0.5
    app = create_app(
        settings.model_copy(update={"max_in_flight": 1}), engines=StaticEngines({"tiny": engine})
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        first = asyncio.create_task(client.post(CHAT, json=chat_body()))
        for _ in range(500):  # until the first request is at the engine
            if engine.in_flight:
                break
            await asyncio.sleep(0.01)
        refused = await client.post(CHAT, json=chat_body())
        assert_envelope(refused, 429)
        assert refused.headers["retry-after"] == "1"
        assert (await first).status_code == 200
        assert (await client.post(CHAT, json=chat_body())).status_code == 200
    assert len(engine.calls) == 2  # the refused request reached no engine


async def test_one_model_is_retrieved_by_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models/tiny")).json()["id"] == "tiny"
    assert (await client.get("/v1/models/pdr:tiny")).json()["id"] == "pdr:tiny"
    missing = await client.get("/v1/models/gpt-7")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", CHAT, {"model": "tiny", "messages": []}, 400),
        (
            "post",
            CHAT,
            {
                "model": "tiny",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x"}}],
                    }
                ],
            },
            400,
        ),
        (
            "post",
            CHAT,
            {
                "model": "tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "reasoning_effort": "extreme",
            },
            400,
        ),
        ("get", "/v1/nothing", None, 404),
        ("get", CHAT, None, 405),
    ],
)
async def test_no_error_envelope_has_a_null_code(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await client.request(method.upper(), path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"]


@pytest.mark.parametrize(
    "error",
    [
        EngineTimeout("http://10.0.3.7:8000 timed out on /v1/chat/completions"),
        EngineRejected("engine vllm-2.vllm.svc:8000 rejected the request: too long"),
        EngineUnavailable("http://10.0.3.7:8000/v1: ConnectError('refused')"),
    ],
)
async def test_engine_errors_never_show_internal_addresses(
    client: httpx.AsyncClient, engine: ScriptedEngine, error: Exception
) -> None:
    engine.fail_with.append(error)  # type: ignore[arg-type]
    response = await client.post(CHAT, json=chat_body())
    message = response.json()["error"]["message"]
    assert "10.0.3.7" not in message
    assert "vllm-2" not in message
    assert ":8000" not in message
    assert message.startswith("the engine")


async def test_a_silent_stream_gets_keep_alive_comments(engine: ScriptedEngine) -> None:
    settings = Settings(engine_urls=["http://unused"], stream_keepalive_seconds=0.05)
    app = create_app(settings, engines=StaticEngines({"tiny": engine}))
    engine.script = lambda prompt, index: "Short."
    engine.delay = 0.3  # the drafts take a while; the client hears nothing but comments
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
        client.stream(
            "POST", CHAT, json=chat_body(stream=True, ponder={"strategy": "sr", "rounds": 1})
        ) as response,
    ):
        lines = [line async for line in response.aiter_lines()]
    assert ": keep-alive" in lines
    assert "data: [DONE]" in lines


@pytest.mark.parametrize(
    ("ponder", "answer_calls"),
    [({"strategy": "direct"}, {"answer"}), ({"strategy": "sr", "rounds": 1}, {"refine"})],
)
async def test_reasoning_tokens_are_the_generated_tokens_that_are_not_the_answer(
    client: httpx.AsyncClient, ponder: dict[str, Any], answer_calls: set[str]
) -> None:
    response = await client.post(CHAT, json=chat_body(ponder={**ponder, "trace": True}))
    data = response.json()
    usage, trace = data["usage"], data["ponder"]["trace"]
    answer = sum(c["completion_tokens"] for c in trace if c["role"] in answer_calls)
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning == usage["completion_tokens"] - answer
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if ponder["strategy"] == "sr":
        assert reasoning == next(c["completion_tokens"] for c in trace if c["role"] == "draft")


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'"top_k": NaN', "top_k"),
        (b'"min_p": -Infinity', "min_p"),
        (b'"temperature": NaN', "temperature"),
        (b'"stop": "\\udfff"', "stop"),
        (b'"logit_bias": {"\\ud800": 1}', "logit_bias"),
        (b'"n": "3"', "n"),
        (b'"n": true', "n"),
        (b'"stream": 1', "stream"),
        (b'"max_tokens": 8.5', "max_tokens"),
        (b'"seed": 9223372036854775808', "seed"),
    ],
)
async def test_values_json_cannot_carry_or_of_the_wrong_type_are_400s(
    client: httpx.AsyncClient, engine: ScriptedEngine, raw: bytes, param: str
) -> None:
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], ' + raw + b"}"
    response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert_envelope(response, 400, param)
    assert response.json()["error"]["code"] in ("invalid_value", "invalid_parameter")
    assert engine.calls == []


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-32-be"])
async def test_a_lone_surrogate_in_a_message_is_a_400(
    client: httpx.AsyncClient, engine: ScriptedEngine, encoding: str
) -> None:
    # JSON in any of its encodings: the body's reader looks for escapes in UTF-8 only.
    text = '{"model": "tiny", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    body = text.encode(encoding)
    response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert_envelope(response, 400, "messages.0.content")
    assert "surrogate" in response.json()["error"]["message"]
    assert engine.calls == []


async def test_an_escaped_backslash_before_u_d800_is_text(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    # The characters \ud800 (a backslash, then "ud800"): it looks like a surrogate's escape.
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "a\\\\ud800b"}]}'
    response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert len(engine.calls) == 1
    assert "a\\ud800b" in engine.calls[0].prompt


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/chat/completions", "n_predict"),
        ("/v1/chat/completions", "best_of"),
        ("/v1/completions", "max_completion_tokens"),
        ("/v1/completions", "max_new_tokens"),
    ],
)
async def test_fields_that_pass_max_tokens_are_refused(
    client: httpx.AsyncClient, engine: ScriptedEngine, path: str, field: str
) -> None:
    body: dict[str, Any] = {"model": "tiny", "max_tokens": 8, field: 600}
    body.update(
        {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"}
    )
    response = await client.post(path, json=body)
    assert_envelope(response, 400, field)
    assert response.json()["error"]["code"] == "unsupported_parameter"
    assert engine.calls == []


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/chat/completions", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ("/v1/chat/completions", {"modalities": ["text", "audio"]}, "modalities"),
        ("/v1/chat/completions", {"web_search_options": {}}, "web_search_options"),
        ("/v1/chat/completions", {"prediction": {"type": "content", "content": "4"}}, "prediction"),
        ("/v1/chat/completions", {"verbosity": "low"}, "verbosity"),
        ("/v1/completions", {"suffix": "done."}, "suffix"),
        (
            "/v1/chat/completions",
            {"stream": True, "stream_options": {"include_obfuscation": True}},
            "stream_options.include_obfuscation",
        ),
    ],
)
async def test_openai_features_no_engine_provides_are_refused_not_dropped(
    client: httpx.AsyncClient,
    engine: ScriptedEngine,
    path: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    body: dict[str, Any] = {"model": "tiny", "max_tokens": 8, **fields}
    body.update(
        {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"}
    )
    assert_envelope(await client.post(path, json=body), 400, param)
    assert engine.calls == []


async def test_openai_fields_without_effect_are_accepted_and_not_forwarded(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    body = chat_body(
        modalities=["text"],
        prompt_cache_retention="24h",
        service_tier="flex",
        stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False},
    )
    response = await client.post(CHAT, json=body)
    assert response.status_code == 200
    assert response.text.rstrip().endswith("data: [DONE]")
    assert engine.calls[0].sampling.extra == {}


async def test_an_allow_list_of_forwarded_fields(engine: ScriptedEngine) -> None:
    settings = Settings(engine_urls=["http://unused"], forward_fields=["top_k"])
    app = create_app(settings, engines=StaticEngines({"tiny": engine}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        allowed = await client.post(CHAT, json=chat_body(top_k=5))
        assert allowed.status_code == 200
        assert engine.calls[0].sampling.extra == {"top_k": 5}
        refused = await client.post(CHAT, json=chat_body(min_p=0.1))
        assert_envelope(refused, 400, "min_p")
        assert "forward_fields: top_k" in refused.json()["error"]["message"]
    assert len(engine.calls) == 1


async def test_too_many_messages_or_prompt_tokens_are_refused_before_any_call(
    engine: ScriptedEngine,
) -> None:
    settings = Settings(engine_urls=["http://unused"], max_messages=3, max_prompt_tokens=40)
    app = create_app(settings, engines=StaticEngines({"tiny": engine}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        many = [{"role": "user", "content": "a"}] * 4
        assert_envelope(await client.post(CHAT, json=chat_body(messages=many)), 400, "messages")
        # 60 bytes but 6 words (the scripted engine's tokens): under the cap, served.
        long_words = " ".join(["abcdefghi"] * 6)
        fine = await client.post(
            CHAT, json=chat_body(messages=[{"role": "user", "content": long_words}])
        )
        assert fine.status_code == 200
        calls = len(engine.calls)
        wordy = " ".join(["a"] * 50)
        refused = await client.post(
            CHAT, json=chat_body(messages=[{"role": "user", "content": wordy}])
        )
        assert_envelope(refused, 400, "messages")
        assert "max_prompt_tokens" in refused.json()["error"]["message"]
        text = await client.post("/v1/completions", json={"model": "tiny", "prompt": ["ok", wordy]})
        assert_envelope(text, 400, "prompt")
        assert len(engine.calls) == calls


async def test_strategy_parameters_take_json_numbers_as_json_means_them(
    client: httpx.AsyncClient,
) -> None:
    # An integer where a float is asked is a float; a float where a count is asked is not.
    ok = await client.post(
        CHAT, json=chat_body(ponder={"strategy": "self_consistency", "n": 2, "temperature": 1})
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["ponder"]["params"]["temperature"] == 1.0
    fractional = await client.post(
        CHAT, json=chat_body(ponder={"strategy": "self_consistency", "n": 2.5})
    )
    assert_envelope(fractional, 400, "ponder.n")


async def test_a_body_counts_among_those_held_while_it_arrives(engine: ScriptedEngine) -> None:
    settings = Settings(engine_urls=["http://unused"], max_body_bytes_held=3000)
    app = create_app(settings, engines=StaticEngines({"tiny": engine}))
    rest = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x " * 1000
        await rest.wait()
        yield b'"}]}'

    large = chat_body(messages=[{"role": "user", "content": "y " * 1000}])  # about 2 KB
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        arriving = asyncio.create_task(
            client.post(CHAT, content=slow_body(), headers={"content-type": "application/json"})
        )
        await asyncio.sleep(0.1)
        # The first body's 2 KB so far are held: another 2 KB would pass 3,000 bytes.
        busy = await client.post(CHAT, json=large)
        assert_envelope(busy, 429)
        rest.set()
        assert (await arriving).status_code == 200
        assert (await client.post(CHAT, json=large)).status_code == 200  # all let go


async def test_request_bodies_held_at_once_are_bounded(engine: ScriptedEngine) -> None:
    settings = Settings(engine_urls=["http://unused"], max_body_bytes_held=3000)
    app = create_app(settings, engines=StaticEngines({"tiny": engine}))
    engine.delay = 0.5  # the first request is still being served when the second comes
    large = chat_body(messages=[{"role": "user", "content": "x " * 1000}])  # about 2 KB
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        first = asyncio.create_task(client.post(CHAT, json=large))
        await asyncio.sleep(0.1)
        second = await client.post(CHAT, json=large)
        assert_envelope(second, 429)
        assert second.headers["retry-after"] == "1"
        assert "max_body_bytes_held" in second.json()["error"]["message"]
        small = await client.post(CHAT, json=chat_body())  # a small body still fits beside it
        assert small.status_code == 200
        assert (await first).status_code == 200
        assert (await client.post(CHAT, json=large)).status_code == 200  # room again
