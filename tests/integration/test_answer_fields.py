"""Fields that shape the answer, through the openai package, against the real engines:
JSON that parses (cot and pdr) and logprobs on both; tool calls (plain and streamed) on
vLLM, started with --enable-auto-tool-choice --tool-call-parser hermes and a ChatML
template with Hermes-style tool calls (tests/data/chatml_tools.jinja).

llama.cpp (xllamacpp 2026.10) gets the same template and renders the tools into the
prompt, but neither constrains nor parses the output into tool_calls, whether with
tool_choice "required" or a named function (seen with SmolLM2 and with Qwen2.5-Coder's
own template: the call comes back as text), so tool calls are tested on vLLM only.

The tiny model's content is nonsense; what is checked is the form: a JSON schema the
engine enforced, a tool call it produced, log-probabilities it returned.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, Served

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Tom has 3 boxes of 4 pens. How many pens does he have?"}
]
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "multiply",
            "description": "Multiply two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
]


@pytest.fixture
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="-", max_retries=0, timeout=600)


@pytest.mark.parametrize(
    "ponder",
    [{"strategy": "cot"}, {"strategy": "pdr", "schedule": [2, 1], "workspace_tokens": 64}],
    ids=["cot", "pdr"],
)
def test_json_schema_output_parses(client: openai.OpenAI, ponder: dict[str, Any]) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=48,
        seed=2,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
        },
        extra_body={"ponder": {**ponder, "trace": True}},
    )
    message = completion.choices[0].message
    assert message.content is not None
    parsed = json.loads(message.content)
    assert isinstance(parsed["answer"], int)
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"]  # the strategy's own answer
    trace = completion.model_extra["ponder"]["trace"]  # type: ignore[index]
    assert trace[-1]["role"] == "format"
    with pytest.raises(json.JSONDecodeError):  # only the last call was held to the schema
        json.loads(trace[0]["output"])


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_logprobs_come_back(client: openai.OpenAI, strategy: str) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=16,
        logprobs=True,
        top_logprobs=2,
        extra_body={"ponder": {"strategy": strategy}},
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content
    assert all(t.logprob <= 0 for t in logprobs.content)
    assert all(len(t.top_logprobs) <= 2 for t in logprobs.content)
    assert any(t.top_logprobs for t in logprobs.content)


@pytest.fixture
def vllm_client(vllm_gateway: ManagedEngine) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_gateway.url + "/v1", api_key="-", max_retries=0, timeout=600)


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_tool_calls_come_back(vllm_client: openai.OpenAI, strategy: str) -> None:
    client = vllm_client
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=256,
        temperature=0,
        seed=1,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "multiply"}},
        extra_body={"ponder": {"strategy": strategy, "trace": True}},
    )
    assert completion.model_extra is not None
    format_call = completion.model_extra["ponder"]["trace"][-1]
    assert format_call["role"] == ("answer" if strategy == "direct" else "format")
    calls = completion.choices[0].message.tool_calls
    assert calls
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "multiply"
    json.loads(call.function.arguments)  # the engine's arguments, as JSON


def test_streamed_tool_calls(vllm_client: openai.OpenAI) -> None:
    stream = vllm_client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=128,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "multiply"}},
        stream=True,
        extra_body={"ponder": {"strategy": "cot"}},
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert names == ["multiply"]
    # Whatever arguments vLLM streamed, whole: its CPU build 0.32 does not hold a streamed
    # named call to the schema (a non-streamed one, above, is), so they need not parse.
    assert arguments.strip()
    # The same build sometimes pads such arguments until max_tokens: then the call is cut.
    assert finish in ("tool_calls", "stop", "length")
