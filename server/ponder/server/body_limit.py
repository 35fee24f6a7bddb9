"""Refuse request bodies over a size, or too slow to arrive, before anything else."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.server.errors import SlowBody, TooLarge, TooManyRequests, send_error


class BodyLimit:
    """ASGI middleware: 413 for a body longer than ``max_bytes``, declared or sent; 408 for
    one not all sent within ``timeout`` seconds. It reads the body before admission, so
    clients that send headers and then stall hold no place among the requests in flight.
    The bodies of requests being served may hold ``max_bytes_held`` bytes together; one
    that would pass it gets a 429 (many large requests at once would otherwise hold
    gigabytes: each body is parsed into objects several times its size)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout: float = 30.0,
        max_bytes_held: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_bytes_held = max_bytes_held
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        # Read the whole body here, counting, then hand it on: the app
        # would read it all anyway, and this way an oversized one is
        # refused before anything parses it.
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client left before it finished sending
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_bytes:
                        await self._refuse(send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await send_error(
                send,
                SlowBody(f"the request body did not arrive within {self.timeout:g} s"),
                headers=[(b"connection", b"close")],
            )
            return
        body = b"".join(chunks)
        if self.max_bytes_held is not None and self.held + len(body) > self.max_bytes_held:
            busy = TooManyRequests(
                f"the server holds {self.held} bytes of request bodies; this one's "
                f"{len(body)} would pass its limit of {self.max_bytes_held} "
                "(max_body_bytes_held); retry after 1 s"
            )
            await send_error(send, busy, [(b"retry-after", b"1")])
            return
        self.held += len(body)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            self.held -= len(body)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send, TooLarge(f"the request body is over the server's limit of {self.max_bytes} bytes")
        )
