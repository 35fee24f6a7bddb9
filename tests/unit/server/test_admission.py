"""The in-flight limit counts a request until its client has the last byte."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from ponder.server.admission import InFlightLimit

SCOPE: Scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST"}


async def receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def test_a_request_stops_counting_once_its_last_byte_is_sent() -> None:
    answered = asyncio.Event()
    cleaned_up = asyncio.Event()
    counts: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        counts.append(limit.in_flight)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        answered.set()
        await cleaned_up.wait()  # closing engine streams, metrics: after the answer

    limit = InFlightLimit(app, max_in_flight=1)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    request = asyncio.create_task(limit(SCOPE, receive, send))
    await answered.wait()
    assert counts == [1]  # counted while the answer streams
    assert limit.in_flight == 0  # released with the last byte, cleanup still running
    second: list[Message] = []

    async def send_second(message: Message) -> None:
        second.append(message)

    async def quick(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    limit.app = quick
    await limit(SCOPE, receive, send_second)
    assert second[0]["status"] == 200  # the same client asking again is not refused
    cleaned_up.set()
    await request
    assert limit.in_flight == 0  # released once, not twice


async def test_a_request_that_fails_before_answering_is_released() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    limit = InFlightLimit(app, max_in_flight=1)

    async def send(message: Message) -> None:
        pass

    with pytest.raises(RuntimeError):
        await limit(SCOPE, receive, send)
    assert limit.in_flight == 0


async def test_over_the_limit_is_refused_while_one_is_answering() -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b"{}"})

    limit = InFlightLimit(app, max_in_flight=1)

    async def ignore(message: Message) -> None:
        pass

    first = asyncio.create_task(limit(SCOPE, receive, ignore))
    await asyncio.sleep(0)
    refused: list[Message] = []

    async def keep(message: Message) -> None:
        refused.append(message)

    await limit(SCOPE, receive, keep)
    assert refused[0]["status"] == 429
    release.set()
    await first
    assert limit.in_flight == 0
