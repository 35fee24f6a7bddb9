"""Fields that shape the answer reach the answer's call only, and what engines return for
them comes back: JSON, tool calls, logprobs; malformed ones are a 400."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ponder.strategies.testing import ScriptedEngine

CHAT = "/v1/chat/completions"
SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "answer", "schema": {"type": "object"}},
}
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "2+2?"}], **fields}


async def test_a_json_schema_reaches_only_the_last_call_of_cot(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: (
        '{"answer": 4}' if "A worked answer to this" in prompt else "Two and two. The answer is 4."
    )
    response = await client.post(
        CHAT, json=body(response_format=SCHEMA, ponder={"strategy": "cot", "trace": True})
    )
    assert response.status_code == 200, response.text
    data = response.json()
    message = data["choices"][0]["message"]
    assert json.loads(message["content"]) == {"answer": 4}
    assert message["reasoning_content"] == "Two and two. The answer is 4."
    assert data["ponder"]["answers"] == ["4"]
    assert [c["role"] for c in data["ponder"]["trace"]] == ["draft", "format"]
    assert "response_format" not in engine.calls[0].sampling.extra
    assert engine.calls[1].sampling.extra["response_format"] == SCHEMA


async def test_stop_and_logprobs_reach_only_the_answer_call(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: "So the answer is 4."
    response = await client.post(
        CHAT,
        json=body(
            stop=["END"],
            logprobs=True,
            top_logprobs=2,
            ponder={"strategy": "sr", "rounds": 1, "error_analysis": True},
        ),
    )
    assert response.status_code == 200, response.text
    draft, critique, refine = engine.calls
    assert (draft.sampling.stop, draft.sampling.logprobs) == ((), None)
    assert (critique.sampling.stop, critique.sampling.logprobs) == ((), None)
    assert (refine.sampling.stop, refine.sampling.logprobs) == (("END",), 2)
    content = response.json()["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == ["So", "the", "answer", "is", "4."]
    assert all(len(t["top_logprobs"]) == 2 for t in content)


async def test_tool_calls_come_back_for_direct_and_for_a_strategy(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.calls_tools = True
    for ponder in ({"strategy": "direct"}, {"strategy": "cot"}):
        response = await client.post(CHAT, json=body(tools=TOOLS, ponder=ponder))
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function"
        assert call["function"]["name"] == "add"
        json.loads(call["function"]["arguments"])


async def test_streamed_tool_calls_arrive_as_a_delta(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.calls_tools = True
    async with client.stream(
        "POST", CHAT, json=body(tools=TOOLS, stream=True, ponder={"strategy": "cot"})
    ) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: {")]
    chunks = [json.loads(line[len("data: ") :]) for line in lines]
    calls = [
        d["tool_calls"] for c in chunks for d in [c["choices"][0]["delta"]] if "tool_calls" in d
    ]
    assert calls[0][0]["function"]["name"] == "add"
    assert calls[0][0]["index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_messages_reach_the_engine_structured(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    messages = [
        {"role": "user", "content": "Add 2 and 2."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
    ]
    response = await client.post(
        CHAT, json={"model": "tiny", "messages": messages, "ponder": {"strategy": "cot"}}
    )
    assert response.status_code == 200, response.text
    prompt = engine.calls[0].prompt
    assert "assistant:  [calls add({}) as c1]" in prompt
    assert prompt.rstrip().endswith("tool: 4 [answers c1]")  # after the strategy's prompt


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"tools": [{"type": "retrieval"}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": "yes"}, "logprobs"),
    ],
)
async def test_malformed_answer_fields_are_a_400(
    client: httpx.AsyncClient, engine: ScriptedEngine, fields: dict[str, Any], param: str
) -> None:
    response = await client.post(CHAT, json=body(**fields))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert engine.calls == []


async def test_echo_starts_the_answer_with_the_prompt_and_no_internal_call_echoes(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    engine.script = lambda prompt, index: "The answer is 4."
    body = {
        "model": "tiny",
        "prompt": "2+2?",
        "echo": True,
        "ponder": {"strategy": "sr", "rounds": 1},
    }
    response = await client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == "2+2?The answer is 4."
    assert all("echo" not in call.sampling.extra for call in engine.calls)
    direct = await client.post("/v1/completions", json={**body, "ponder": {"strategy": "direct"}})
    assert direct.status_code == 200
    assert engine.calls[-1].sampling.extra["echo"] is True  # the engine echoes for direct
    chat = await client.post(CHAT, json=body_with_echo())
    assert chat.status_code == 400
    assert chat.json()["error"]["param"] == "echo"


def body_with_echo() -> dict[str, Any]:
    return {**body(), "echo": True}
