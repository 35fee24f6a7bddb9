"""aiohttp's transport over real sockets on 127.0.0.1: what it sends, and how the library's
failures become engine errors (a refused connection is retried, a silent engine is a
timeout, a body cut short is an unavailable engine). Small asyncio servers play the
engine's socket; what real engines answer is checked in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ponder.server.engines.managed import free_port
from ponder.server.engines.transport import AiohttpTransport, where
from ponder.strategies.engine import EngineTimeout, EngineUnavailable

#: What the engine does once it has read a request: given its head and body.
Reply = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def engine_socket(reply: Reply) -> AsyncIterator[str]:
    """A server on a free port that reads one request's head and body, then ``reply``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        with contextlib.suppress(ConnectionError):
            await reply(head, body, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def transport(url: str, *, timeout: float = 5.0) -> AiohttpTransport:
    return AiohttpTransport(
        url,
        headers={"Authorization": "Bearer k"},
        timeout=timeout,
        connect_timeout=1.0,
        max_connections=4,
        keepalive=2.0,
    )


def response(body: bytes, *, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_a_call_sends_json_with_the_key_and_reads_the_answer() -> None:
    seen: dict[str, bytes] = {}

    async def reply(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        seen["head"], seen["body"] = head, body
        writer.write(response(b'{"ok": true}'))
        await writer.drain()

    async with engine_socket(reply) as url:
        client = transport(url)
        answer = await client.post("/v1/chat/completions", {"a": 1, "t": "é"}, close=True)
        assert answer.status == 200
        assert json.loads(await answer.read()) == {"ok": True}
        await answer.aclose()
        await client.aclose()
    head = seen["head"].decode().lower()
    assert head.startswith("post /v1/chat/completions http/1.1")
    assert "authorization: bearer k" in head
    assert "connection: close" in head
    assert seen["body"] == '{"a":1,"t":"é"}'.encode()  # compact, UTF-8, as httpx sends it


async def test_the_lines_of_a_stream_come_without_their_ends() -> None:
    async def reply(_: bytes, __: bytes, writer: asyncio.StreamWriter) -> None:
        body = b'data: {"x": 1}\r\n\r\ndata: [DONE]\n\n'
        writer.write(response(body).replace(b"application/json", b"text/event-stream"))
        await writer.drain()

    async with engine_socket(reply) as url:
        client = transport(url)
        answer = await client.post("/v1/chat/completions", {}, close=False)
        lines = [line async for line in answer.lines()]
        await answer.aclose()
        await client.aclose()
    assert lines == ['data: {"x": 1}', "", "data: [DONE]", ""]


async def test_a_refused_connection_is_an_unavailable_engine() -> None:
    client = transport(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable):
        await client.post("/v1/chat/completions", {}, close=False)
    await client.aclose()


async def test_an_engine_that_sends_nothing_in_time_is_a_timeout() -> None:
    async def reply(_: bytes, __: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with engine_socket(reply) as url:
        client = transport(url, timeout=0.2)
        with pytest.raises(EngineTimeout):
            await client.post("/v1/chat/completions", {}, close=False)
        await client.aclose()


async def test_a_body_cut_short_is_an_unavailable_engine() -> None:
    async def reply(_: bytes, __: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(response(b'{"long": "answer"}')[:-5])
        await writer.drain()
        writer.close()

    async with engine_socket(reply) as url:
        client = transport(url)
        answer = await client.post("/v1/chat/completions", {}, close=False)
        with pytest.raises(EngineUnavailable):
            await answer.read()
        await answer.aclose()
        await client.aclose()


async def test_a_get_reads_status_and_body() -> None:
    async def reply(_: bytes, __: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(response(b"{}", status="503 Service Unavailable"))
        await writer.drain()

    async with engine_socket(reply) as url:
        client = transport(url)
        assert await client.get("/health") == (503, b"{}")
        await client.aclose()


def test_errors_name_the_replica_by_host_and_port() -> None:
    assert where("http://10.0.0.7:8000") == "engine 10.0.0.7:8000"
    assert where("https://engines.example") == "engine engines.example:443"
