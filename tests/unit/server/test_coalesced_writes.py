"""A response's head and body leave in one socket write; streams still leave as they come."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from ponder.server.coalesced_writes import CoalescingHttpProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """What a transport was asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_writes_in_one_loop_turn_leave_as_one() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
    transport.write(head)
    transport.write(b"")
    transport.write(b"ok")
    assert inner.writes == []
    assert transport.get_write_buffer_size() == len(head) + 2
    await next_turn()
    assert inner.writes == [head + b"ok"]
    # With nothing pending, what is not a head (a stream's later events) leaves at once.
    transport.write(b"data: later\n\n")
    assert inner.writes[-1] == b"data: later\n\n"


async def test_close_writes_what_is_pending_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.close()
    assert (inner.writes, inner.closed) == ([b"HTTP/1.1 204 No Content\r\n\r\n"], True)

    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.abort()
    await next_turn()
    assert (inner.writes, inner.aborted) == ([], True)


async def test_nothing_is_written_to_a_connection_the_client_closed() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    inner.closed = True  # the client left before the loop turned
    await next_turn()
    assert inner.writes == []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/plain":
        body = b"x" * 100_000
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(3):
        await send({"type": "http.response.body", "body": b"%d\n" % i, "more_body": True})
        await asyncio.sleep(0.2)
    await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CoalescingHttpProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn says it started with a flag, not an event
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_uvicorn_over_it_answers_plain_kept_alive_and_closed() -> None:
    async with serving() as url, httpx.AsyncClient(base_url=url) as client:
        for _ in range(3):  # one kept-alive connection
            response = await client.get("/plain")
            assert (response.status_code, len(response.content)) == (200, 100_000)
        closing = await client.get("/plain", headers={"connection": "close"})
        assert (closing.status_code, len(closing.content)) == (200, 100_000)


async def test_uvicorn_over_it_streams_each_event_when_it_is_sent() -> None:
    async with serving() as url, httpx.AsyncClient(base_url=url) as client:
        arrivals: list[tuple[bytes, float]] = []
        async with client.stream("GET", "/stream") as response:
            async for line in response.aiter_lines():
                arrivals.append((line.encode(), time.monotonic()))
        assert [line for line, _ in arrivals] == [b"0", b"1", b"2"]
        # The first line arrived when it was sent, not with the last 0.4 s later.
        assert arrivals[-1][1] - arrivals[0][1] > 0.2
