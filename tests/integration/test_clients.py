"""The clients applications are built with, against ``ponder serve`` over real engines:
LangChain's ChatOpenAI and LiteLLM (the openai package has tests of its own).

Each plain test runs over llama.cpp and over vLLM; tool calls run on vLLM, whose
hermes tool-call parser fits the test template (llama.cpp returns no parsed tool
calls, see test_answer_fields.py). LangChain's ChatOpenAI does not read
``reasoning_content`` (by its own design: provider subclasses do); LiteLLM passes it
through as ``delta.reasoning_content`` and ``message.reasoning_content``. The model is
tiny: what is checked is the form, never the answer.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, Served
from tests.integration.test_answer_fields import TOOLS

QUESTION = "Tom has 3 boxes of 4 pens. How many pens does he have?"
PDR = {"strategy": "pdr", "schedule": [2, 1], "workspace_tokens": 64}


class Answer(BaseModel):
    answer: int


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def chat_model(base_url: str, ponder: dict[str, Any], **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=base_url,
        api_key="-",
        model=MODEL,
        max_retries=0,
        timeout=600,
        extra_body={"ponder": ponder},
        **kwargs,
    )


# -- LangChain ------------------------------------------------------------------------


def test_langchain_invoke_reports_usage(served: Served) -> None:
    reply = chat_model(served.base_url, {"strategy": "cot"}, max_tokens=48).invoke(QUESTION)
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str)
    assert reply.content
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_langchain_streams_with_usage(served: Served) -> None:
    model = chat_model(served.base_url, PDR, max_tokens=32, stream_usage=True)
    chunks = list(model.stream(QUESTION))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert isinstance(whole.content, str)
    assert whole.content
    usage = whole.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] > 0
    # Every call of the run is counted, not the last draft's alone.
    assert usage["output_tokens"] > len(whole.content.split()) // 4


def test_langchain_structured_output(served: Served) -> None:
    # cot here; pdr's JSON schema is tested with the openai package (test_answer_fields).
    model = chat_model(served.base_url, {"strategy": "cot"}, max_tokens=48, seed=2)
    result = model.with_structured_output(Answer, method="json_schema", strict=True).invoke(
        QUESTION
    )
    assert isinstance(result, Answer)


@pytest.fixture
def vllm_url(vllm_gateway: ManagedEngine) -> str:
    return vllm_gateway.url + "/v1"


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_langchain_bind_tools(vllm_url: str, strategy: str) -> None:
    model = chat_model(vllm_url, {"strategy": strategy}, max_tokens=256, temperature=0, seed=1)
    reply = model.bind_tools([multiply], tool_choice="multiply").invoke(QUESTION)
    assert isinstance(reply, AIMessage)
    if reply.response_metadata["finish_reason"] == "length":
        # vLLM's CPU build 0.32 does not hold a named call to its schema: with the tool
        # schema as LangChain writes it, SmolLM2 may pad the arguments until max_tokens,
        # and a cut call is returned as text (seen with direct). Ponder passed it on.
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["output_tokens"] >= 256
        return
    assert [call["name"] for call in reply.tool_calls] == ["multiply"]
    assert isinstance(reply.tool_calls[0]["args"], dict)


# -- LiteLLM --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    # LiteLLM fetches a price list from GitHub when imported unless told to use its own.
    before = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    try:
        yield importlib.import_module("litellm")
    finally:
        if before is None:
            os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
        else:
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = before


def litellm_args(base_url: str, ponder: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {
        "model": f"openai/{MODEL}",
        "api_base": base_url,
        "api_key": "-",
        "messages": [{"role": "user", "content": QUESTION}],
        "extra_body": {"ponder": ponder},
        "timeout": 600,
        "num_retries": 0,
        **kwargs,
    }


def test_litellm_completion_with_reasoning(
    litellm: ModuleType, llamacpp_gateway: ManagedEngine
) -> None:
    # One engine: the form is Ponder's; the streamed test below runs on both.
    base_url = llamacpp_gateway.url + "/v1"
    response = litellm.completion(
        **litellm_args(base_url, {**PDR, "reasoning": "summary"}, max_tokens=32)
    )
    message = response.choices[0].message
    assert message.content
    assert message.reasoning_content.startswith("round 1 of 2: 2 drafts")
    assert response.usage.completion_tokens > 0


def test_litellm_streams_reasoning_then_the_answer(litellm: ModuleType, served: Served) -> None:
    stream = litellm.completion(
        **litellm_args(
            served.base_url,
            PDR,
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reasoning, content, usage = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            piece = getattr(choice.delta, "reasoning_content", None)
            if piece:
                assert not content  # the work comes before the answer
                reasoning += piece
            content += choice.delta.content or ""
        usage = getattr(chunk, "usage", None) or usage
    assert reasoning.startswith("round 1 of 2: 2 drafts")
    assert "[workspace after round 1]" in reasoning
    assert content
    assert usage is not None
    assert usage.completion_tokens > 0


def test_litellm_tool_calls(litellm: ModuleType, vllm_url: str) -> None:
    response = litellm.completion(
        **litellm_args(
            vllm_url,
            {"strategy": "cot"},
            max_tokens=256,
            temperature=0,
            seed=1,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "multiply"}},
        )
    )
    calls = response.choices[0].message.tool_calls
    assert calls
    assert calls[0].function.name == "multiply"
    json.loads(calls[0].function.arguments)
