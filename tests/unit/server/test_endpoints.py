"""What differs between chat and text completions: prompts, responses, stream chunks."""

from __future__ import annotations

import json

import pytest

from ponder.server.endpoints import ChatEndpoint, TextEndpoint
from ponder.server.errors import InvalidRequest
from ponder.server.protocol import ChatCompletionRequest, PonderInfo, PonderUsage, Usage
from ponder.server.streaming import ChunkWriter
from ponder.strategies.base import Answer
from ponder.strategies.engine import Message

USAGE = Usage(
    prompt_tokens=3,
    completion_tokens=4,
    total_tokens=7,
    ponder=PonderUsage(calls=1, rounds=0, drafts=0, sequential_tokens=7, all_tokens=7),
)
INFO = PonderInfo(strategy="direct", params={})


def test_chat_prompts_keep_every_message_and_refuse_images() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "max_tokens": 5,
            "max_completion_tokens": 7,
        }
    )
    endpoint = ChatEndpoint()
    assert endpoint.prompts(body) == [[Message("system", "Be brief."), Message("user", "hi")]]
    assert endpoint.max_tokens(body) == 7  # max_completion_tokens wins, as in OpenAI's API
    image = body.model_copy(
        update={
            "messages": [
                ChatCompletionRequest.model_validate(
                    {
                        "model": "m",
                        "messages": [
                            {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}
                        ],
                    }
                ).messages[0]
            ]
        }
    )
    with pytest.raises(InvalidRequest, match="image_url"):
        endpoint.prompts(image)


@pytest.mark.parametrize("endpoint", [ChatEndpoint(), TextEndpoint()])
def test_a_response_reads_back_as_the_same_endings(endpoint: ChatEndpoint | TextEndpoint) -> None:
    answers = [Answer("four", "stop", "4"), Answer("cut", "length")]
    response = endpoint.response(id="x", model="m", answers=answers, usage=USAGE, info=INFO)
    stored = json.loads(response.model_dump_json(exclude_none=True))
    again = endpoint.parse(stored)
    assert [(e.index, e.text, e.finish_reason) for e in endpoint.endings(again)] == [
        (0, "four", "stop"),
        (1, "cut", "length"),
    ]


def events(stream: bytes) -> list[dict[str, object]]:
    return [
        json.loads(line[len("data: ") :])
        for line in stream.decode().splitlines()
        if line.startswith("data: {")
    ]


def test_chat_chunks_name_the_role_once_per_choice_then_end_with_usage() -> None:
    writer = ChunkWriter(ChatEndpoint(), id="chatcmpl-1", model="m", include_usage=True)
    sent = writer.chunk(0, "fo") + writer.chunk(0, "ur")
    ending = b"".join(
        writer.ending(
            [
                *ChatEndpoint().endings(
                    ChatEndpoint().response(
                        id="chatcmpl-1",
                        model="m",
                        answers=[Answer("x")] * 2,
                        usage=USAGE,
                        info=INFO,
                    )
                )
            ][1:],
            USAGE,
            INFO,
        )
    )
    chunks = events(sent + ending)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]  # type: ignore[index]
    assert deltas[0] == {"role": "assistant", "content": "fo"}
    assert deltas[1] == {"content": "ur"}
    assert deltas[2] == {"role": "assistant", "content": "x"}  # choice 1's first chunk
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 7  # type: ignore[index]
    assert ending.endswith(b"data: [DONE]\n\n")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_without_include_usage_the_usage_is_a_comment() -> None:
    writer = ChunkWriter(TextEndpoint(), id="cmpl-1", model="m", include_usage=False)
    ending = b"".join(writer.ending([], USAGE, INFO))
    assert ending.startswith(b": ponder {")
    assert events(ending) == []
