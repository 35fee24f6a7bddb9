"""Streamed answers in OpenAI's SSE format, and clients that leave.

:class:`ChunkWriter` makes the events of one streamed response: answer text
as it is generated, then each choice's ending, the usage (as a chunk when the
client asked for ``stream_options.include_usage``, else as an SSE comment)
and ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ponder.server import sse
from ponder.server.endpoints import Ending, Endpoint
from ponder.server.protocol import PonderInfo, Usage

T = TypeVar("T")

#: Response header: whether the answer came from the cache ("hit") or not ("miss").
CACHE_HEADER = "X-Ponder-Cache"


class ClientGone(Exception):
    """The client closed the connection; its engine calls were cancelled."""


#: One encoder for every chunk: ``json.dumps`` with any option builds a new one each time.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _compact(value: Any) -> str:
    return _COMPACT.encode(value)


class ChunkWriter:
    """The SSE events of one streamed response."""

    def __init__(self, endpoint: Endpoint, *, id: str, model: str, include_usage: bool) -> None:
        self.endpoint = endpoint
        self.id = id
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self._opened: set[int] = set()
        self._text_sent: set[int] = set()
        # Every chunk starts with the same fields: encoded once, the rest per chunk.
        head = {"id": id, "object": endpoint.chunk_object, "created": self.created, "model": model}
        self._head = b"data: " + _compact(head)[:-1].encode() + b',"choices":'

    def _event(self, choices: list[Any], **more: Any) -> bytes:
        tail = "".join(f",{_compact(key)}:{_compact(value)}" for key, value in more.items())
        return self._head + f"{_compact(choices)}{tail}}}\n\n".encode()

    def _first(self, index: int) -> bool:
        first = index not in self._opened
        self._opened.add(index)
        return first

    def chunk(
        self, index: int, text: str | None, finish: str | None = None, end: Ending | None = None
    ) -> bytes:
        if text:
            self._text_sent.add(index)
        first = self._first(index)
        return self._event([self.endpoint.chunk_choice(index, text, finish, first, end)])

    def reasoning(self, index: int, text: str) -> bytes:
        """Work behind choice ``index``'s answer: ``delta.reasoning_content`` in a chat
        stream; a text completion's chunks have no such field, so there an SSE comment."""
        if self.endpoint.kind != "chat":
            return sse.comment(text)
        delta: dict[str, Any] = {"role": "assistant"} if self._first(index) else {}
        delta["reasoning_content"] = text
        return self._event([{"index": index, "delta": delta, "finish_reason": None}])

    def started(self, index: int) -> bool:
        """Whether any answer text of choice ``index`` has been sent."""
        return index in self._text_sent

    def ending(self, endings: Iterable[Ending], usage: Usage, info: PonderInfo) -> Iterator[bytes]:
        """Each choice's text not streamed yet and its finish, then usage, then ``[DONE]``."""
        for end in endings:
            if end.reasoning:
                yield self.reasoning(end.index, end.reasoning)
            if end.text:
                yield self.chunk(end.index, end.text)
            yield self.chunk(end.index, None, end.finish_reason, end)
        shown_usage = usage.model_dump(exclude_none=True)
        shown_info = info.model_dump(mode="json", exclude_none=True)
        if self.include_usage:
            yield self._event([], usage=shown_usage, ponder=shown_info)
        else:
            payload = _compact({"usage": shown_usage, "ponder": shown_info})
            yield sse.comment("ponder " + payload)
        yield sse.DONE


class EventStream(Response):
    """A streamed answer: each part of ``body`` written as it comes.

    Unlike Starlette's ``StreamingResponse``, it starts no task group and no second
    reader of the client's disconnect per stream: the serving layer already watches for
    the client leaving, cancels the work and ends ``body``, which is closed whatever
    way the response ends."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async with contextlib.aclosing(self.body_iterator) as parts:
            async for part in parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def event_stream(body: AsyncGenerator[bytes, None], *, cache: str) -> EventStream:
    return EventStream(
        body, {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", CACHE_HEADER: cache}
    )


async def wait_for_disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_client_leaves(work: Awaitable[T], request: Request) -> T:
    """``work``'s result, or ``ClientGone`` (with ``work`` cancelled) if the client leaves.

    ``work`` runs in the calling task, and a watcher cancels that task when the client
    leaves: one task per request fewer than running ``work`` in a task of its own. A
    cancellation from anywhere else stays a cancellation."""
    serving = asyncio.current_task()
    assert serving is not None, "unless_client_leaves runs in a task"
    gone = False

    async def watch() -> None:
        nonlocal gone
        await wait_for_disconnect(request)
        gone = True
        serving.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        serving.uncancel()
        raise ClientGone from None
    finally:
        watcher.cancel()


async def cancel(task: asyncio.Future[Any]) -> None:
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
