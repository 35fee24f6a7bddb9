"""Refuse request bodies over a size, or too slow to arrive, before anything else."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.server.errors import SlowBody, TooLarge, send_error


class BodyLimit:
    """ASGI middleware: 413 for a body longer than ``max_bytes``, declared or sent; 408 for
    one not all sent within ``timeout`` seconds. It reads the body before admission, so
    clients that send headers and then stall hold no place among the requests in flight."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

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
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send, TooLarge(f"the request body is over the server's limit of {self.max_bytes} bytes")
        )
