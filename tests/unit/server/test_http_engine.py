"""Control flow of one HTTP replica: retries, token counting, fan-out, streaming.

httpx's MockTransport plays the engine's HTTP side; what real engines answer
is checked in tests/integration.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from ponder.server.engines.http_engine import EngineKind, HTTPEngine
from ponder.server.engines.retry import RetryPolicy
from ponder.strategies.engine import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Message,
    Sampling,
    StreamEnd,
    TextDelta,
)

Handler = Callable[[httpx.Request], httpx.Response]
FAST = RetryPolicy(attempts=3, backoff_base=0.0)
PROMPT = [Message("user", "hi")]


def engine(handler: Handler, kind: EngineKind = EngineKind.VLLM) -> HTTPEngine:
    # The whole-response form of calls; the streamed form has tests of its own.
    return HTTPEngine(
        "http://engine/v1",
        model="m",
        kind=kind,
        retry=FAST,
        transport=httpx.MockTransport(handler),
        stream_calls=False,
    )


def chat(*texts: str, completion_tokens: int = 3, token_ids: bool = False) -> httpx.Response:
    choices = []
    for i, text in enumerate(texts):
        choice = {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if token_ids:
            choice["token_ids"] = list(range(len(text.split())))
        choices.append(choice)
    return httpx.Response(
        200,
        json={
            "model": "m",
            "choices": choices,
            "usage": {"prompt_tokens": 7, "completion_tokens": completion_tokens},
        },
    )


async def test_base_url_with_or_without_v1() -> None:
    assert HTTPEngine("http://h:1/v1/").base_url == "http://h:1"
    assert HTTPEngine("http://h:1").base_url == "http://h:1"


async def test_retries_503_then_succeeds() -> None:
    answers = [httpx.Response(503, json={"error": {"message": "loading"}}), chat("ok")]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    generation = await engine(handler).generate(PROMPT, sampling=Sampling())
    assert generation.choices[0].text == "ok"
    assert len(seen) == 2


async def test_retries_a_dropped_keepalive_connection() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return chat("ok")

    generation = await engine(handler).generate(PROMPT, sampling=Sampling())
    assert generation.choices[0].text == "ok"
    assert calls == 2


async def test_gives_up_after_the_attempts_and_says_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused")

    with pytest.raises(EngineUnavailable):
        await engine(handler).generate(PROMPT, sampling=Sampling())
    assert calls == FAST.attempts


async def test_a_rejected_request_is_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"message": "max_tokens too large"}})

    with pytest.raises(EngineRejected, match="max_tokens too large"):
        await engine(handler).generate(PROMPT, sampling=Sampling())
    assert calls == 1


async def test_a_read_timeout_is_a_timeout_and_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow")

    with pytest.raises(EngineTimeout):
        await engine(handler).generate(PROMPT, sampling=Sampling())
    assert calls == 1


async def test_sampling_and_extra_fields_reach_the_engine() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return chat("a", "b", token_ids=True)

    sampling = Sampling(max_tokens=9, temperature=0.5, seed=3, stop=("x",), extra={"top_k": 4})
    await engine(handler).generate(PROMPT, n=2, sampling=sampling)
    body = bodies[0]
    assert body["n"] == 2
    assert body["max_tokens"] == 9
    assert body["temperature"] == 0.5
    assert body["seed"] == 3
    assert body["stop"] == ["x"]
    assert body["top_k"] == 4
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["return_token_ids"] is True


async def test_vllm_counts_each_choice_from_its_token_ids() -> None:
    generation = await engine(lambda r: chat("one two", "one two three", token_ids=True)).generate(
        PROMPT, n=2, sampling=Sampling()
    )
    assert [c.completion_tokens for c in generation.choices] == [2, 3]
    assert generation.prompt_tokens == 7


async def test_llamacpp_counts_each_choice_with_tokenize_when_n_is_above_one() -> None:
    tokenized: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            content = json.loads(request.content)["content"]
            tokenized.append(content)
            return httpx.Response(200, json={"tokens": list(range(len(content.split())))})
        # llama.cpp reports one choice's count for the whole call
        return chat("a b c d", "a b", completion_tokens=4)

    generation = await engine(handler, EngineKind.LLAMACPP).generate(
        PROMPT, n=2, sampling=Sampling()
    )
    assert [c.completion_tokens for c in generation.choices] == [4, 2]
    assert sorted(tokenized) == ["a b", "a b c d"]


async def test_single_choice_trusts_the_engines_usage() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path != "/tokenize"
        return chat("a b", completion_tokens=5)

    generation = await engine(handler, EngineKind.LLAMACPP).generate(PROMPT, sampling=Sampling())
    assert generation.choices[0].completion_tokens == 5


async def test_an_engine_that_ignores_n_is_fanned_out_with_distinct_seeds() -> None:
    seeds: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"count": 1})
        body = json.loads(request.content)
        seeds.append(body.get("seed"))
        return chat("only one", completion_tokens=2)

    replica = engine(handler, EngineKind.OPENAI)
    generation = await replica.generate(PROMPT, n=3, sampling=Sampling(seed=10))
    assert len(generation.choices) == 3
    assert generation.requests == 3
    assert seeds == [10, 11, 12]
    # Found out once: the next call fans out at once, without asking for n.
    seeds.clear()
    await replica.generate(PROMPT, n=2, sampling=Sampling(seed=1))
    assert seeds == [1, 2]


def sse(*chunks: dict[str, object]) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


async def test_stream_yields_text_then_the_end_with_counts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {"choices": [{"index": 0, "delta": {"content": "Hel"}, "token_ids": [1]}]},
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": "lo"},
                            "token_ids": [2],
                            "finish_reason": "stop",
                        }
                    ]
                },
                {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
            ),
        )

    events = [e async for e in engine(handler).stream(PROMPT, sampling=Sampling())]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.choice.text, end.choice.completion_tokens, end.prompt_tokens) == ("Hello", 2, 4)
    assert end.choice.finish_reason == "stop"


@pytest.mark.parametrize(
    ("kind", "connection"),
    [(EngineKind.LLAMACPP, "close"), (EngineKind.VLLM, None), (EngineKind.OPENAI, None)],
)
async def test_only_llamacpp_streams_ask_for_their_connection_to_close(
    kind: EngineKind, connection: str | None
) -> None:
    # llama.cpp closes a stream's connection after it whatever its headers say: pooled, the
    # next call (a /tokenize) would be written into a closing socket.
    asked: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        asked["/tokenize" if request.url.path == "/tokenize" else "stream"] = request.headers.get(
            "connection"
        )
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": [1, 2]})
        assert body["stream"] is True
        done = {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}
        return httpx.Response(200, content=sse({"choices": [done]}))

    replica = engine(handler, kind)
    events = [e async for e in replica.stream(PROMPT, sampling=Sampling())]
    assert isinstance(events[-1], StreamEnd)
    assert asked["stream"] == (connection or "keep-alive")
    await replica.count_tokens("a b")
    assert asked["/tokenize"] == "keep-alive"  # other calls keep their connections


async def test_stream_retries_only_before_its_first_token() -> None:
    calls = 0

    def refused_then_ok(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(
            200,
            content=sse(
                {
                    "choices": [{"index": 0, "delta": {"content": "x"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                }
            ),
        )

    events = [e async for e in engine(refused_then_ok).stream(PROMPT, sampling=Sampling())]
    assert calls == 2
    assert isinstance(events[-1], StreamEnd)

    class BreaksMidway(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
            raise httpx.RemoteProtocolError("peer closed connection")

    attempts = 0

    def breaks(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(200, stream=BreaksMidway())

    received: list[object] = []

    async def consume() -> None:
        async for event in engine(breaks).stream(PROMPT, sampling=Sampling()):
            received.append(event)

    with pytest.raises(EngineError):
        await consume()
    assert attempts == 1  # a token had been passed on, so no second try
    assert len(received) == 1


async def test_text_prompts_go_to_completions() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "text": "t"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )

    generation = await engine(handler).generate("raw text", sampling=Sampling())
    assert paths == ["/v1/completions"]
    assert generation.choices[0].text == "t"


@pytest.mark.parametrize(
    ("owner", "kind"),
    [("vllm", EngineKind.VLLM), ("llamacpp", EngineKind.LLAMACPP), ("someone", EngineKind.OPENAI)],
)
async def test_discovery_learns_model_and_kind(owner: str, kind: EngineKind) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": "served", "owned_by": owner}]})

    replica = HTTPEngine("http://e", transport=httpx.MockTransport(handler), stream_calls=False)
    await replica.discover()
    assert (replica.model, replica.kind) == ("served", kind)


async def test_embeddings_when_the_engine_serves_them_and_none_when_not() -> None:
    def serves(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        return httpx.Response(
            200,
            json={
                "data": [
                    {"index": i, "embedding": [float(i), 1.0]} for i in reversed(range(len(texts)))
                ]
            },
        )

    assert await engine(serves).embed(["a", "b"]) == [[0.0, 1.0], [1.0, 1.0]]

    def generative(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "not an embedding model"}})

    assert await engine(generative).embed(["a"]) is None

    def unsupported(request: httpx.Request) -> httpx.Response:
        return httpx.Response(501, json={"error": {"message": "start with --embeddings"}})

    assert await engine(unsupported, EngineKind.LLAMACPP).embed(["a"]) is None


async def test_thinking_is_kept_apart_from_the_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"content": "The answer is 4.", "reasoning_content": "2+2"},
                        "finish_reason": "stop",
                    },
                    {
                        "index": 1,
                        "message": {"content": "<think>two and two</think>\nThe answer is 4."},
                        "finish_reason": "stop",
                    },
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 9},
            },
        )

    generation = await engine(handler).generate(PROMPT, n=2, sampling=Sampling())
    assert [(c.reasoning, c.text) for c in generation.choices] == [
        ("2+2", "The answer is 4."),
        ("two and two", "The answer is 4."),
    ]


async def test_a_stream_passes_on_only_the_answer_and_ends_with_the_thinking() -> None:
    deltas = [
        {"reasoning_content": "Two "},
        {"reasoning_content": "and two."},
        {"content": "<thi"},
        {"content": "nk>more</think>"},
        {"content": " The answer"},
        {"content": " is 4."},
    ]
    lines = ["data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) for delta in deltas]
    lines.append(
        "data: "
        + json.dumps(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 8},
            }
        )
    )
    lines.append("data: [DONE]")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="\n\n".join(lines) + "\n\n")

    events = [event async for event in engine(handler).stream(PROMPT, sampling=Sampling())]
    streamed = "".join(event.text for event in events if isinstance(event, TextDelta))
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert streamed == "The answer is 4."
    assert end.choice.text == "The answer is 4."
    assert end.choice.reasoning == "Two and two.more"


def streamed(handler: Handler, kind: EngineKind = EngineKind.LLAMACPP) -> HTTPEngine:
    return HTTPEngine(
        "http://engine/v1", model="m", kind=kind, retry=FAST,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip


async def test_vllm_calls_are_plain_requests_which_it_aborts_when_closed() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return chat("plain", completion_tokens=1)

    generation = await streamed(handler, EngineKind.VLLM).generate(PROMPT, sampling=Sampling())
    assert generation.choices[0].text == "plain"
    assert bodies[0].get("stream") is None


async def test_free_text_calls_are_streams_read_to_their_end() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if not body.get("stream"):
            return chat("a tool call", completion_tokens=3)
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"index": 0, "delta": {"content": "Hel"}, "token_ids": [1]}]},
                {
                    "choices": [
                        {"index": 0, "delta": {"content": "lo"}, "token_ids": [2],
                         "finish_reason": "length"}
                    ]
                },
                {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
            ),
        )  # fmt: skip

    replica = streamed(handler)
    generation = await replica.generate(PROMPT, sampling=Sampling(max_tokens=2))
    assert bodies[0]["stream"] is True
    choice = generation.choices[0]
    assert (choice.text, choice.completion_tokens, choice.finish_reason) == ("Hello", 2, "length")
    assert generation.prompt_tokens == 4
    # Calls whose whole response Ponder reads (tools, JSON answers, logprobs) are not streamed.
    await replica.generate(PROMPT, sampling=Sampling(extra={"tools": [{"type": "function"}]}))
    await replica.generate(PROMPT, sampling=Sampling(logprobs=2))
    assert [b.get("stream") for b in bodies[1:]] == [None, None]


async def test_a_streamed_call_retries_a_dropped_connection() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.RemoteProtocolError("server disconnected")
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
            ),
        )

    generation = await streamed(handler).generate(PROMPT, sampling=Sampling())
    assert (generation.choices[0].text, attempts) == ("ok", 2)
