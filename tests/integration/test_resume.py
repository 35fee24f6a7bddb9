"""A reply that one replica began goes on, on each real engine, from where it stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ponder.server.engines.http_engine import EngineKind, HTTPEngine
from ponder.strategies.engine import Message, Sampling, StreamEnd, StreamEvent, TextDelta
from tests.integration.conftest import MODEL, Served

PROMPT = [Message("user", "Write a story about a dragon.")]
BEGUN = "Once upon a time, in a valley of green hills, there lived"


async def _read(events: AsyncIterator[StreamEvent]) -> tuple[str, StreamEnd]:
    text = ""
    async for event in events:
        if isinstance(event, TextDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("no end")


async def test_the_rest_of_a_begun_reply_continues_the_assistants_message(served: Served) -> None:
    engine = HTTPEngine(served.engine.url, model=MODEL, kind=EngineKind(served.kind))
    sampling = Sampling(max_tokens=12, temperature=0.0, extra={"ignore_eos": True})
    try:
        _, plain = await _read(engine.stream(PROMPT, sampling=sampling))
        begun_tokens = await engine.count_tokens(BEGUN)
        rest, end = await _read(engine.stream_rest(PROMPT, BEGUN, sampling=sampling))
    finally:
        await engine.aclose()
    # The engine read the begun text as the open start of its reply: the prompt grew by
    # its tokens alone (a closed assistant turn and a new one would add the template's
    # end-of-turn and start-of-turn tokens), and only new text came back.
    grown = end.prompt_tokens - plain.prompt_tokens
    assert begun_tokens - 1 <= grown <= begun_tokens + 1
    assert end.choice.completion_tokens == 12
    assert not rest.startswith(BEGUN)
