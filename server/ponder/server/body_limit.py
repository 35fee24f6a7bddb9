"""Refuse request bodies over a size, or too slow to arrive, before anything else."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.server.errors import SlowBody, TooLarge, TooManyRequests, send_error
from ponder.server.memory import LARGE_BODY_BYTES, hand_back_free_memory


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
        header = dict(scope["headers"]).get(b"content-length")
        declared = int(header) if header is not None and header.isdigit() else None
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        # Read the whole body here, counting, then hand it on: the app would read it all
        # anyway, and this way an oversized one is refused before anything parses it. Its
        # bytes count among those held before they arrive when their length is declared
        # (else as they arrive): 64 large bodies arriving together were all read before
        # any was counted, and counted only as they arrived, each would hold a part.
        chunks: list[bytes] = []
        received = counted = 0
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    if declared is not None:
                        if self._over_held(declared):
                            await self._drop_rest(receive, send, {"more_body": True}, 0)
                            return
                        self.held += declared
                        counted = declared
                    while True:
                        message = await receive()
                        if message["type"] != "http.request":
                            return  # the client left before it finished sending
                        chunk = message.get("body", b"")
                        received += len(chunk)
                        if received > self.max_bytes:
                            await self._refuse(send)
                            return
                        if declared is None:
                            if self._over_held(len(chunk)):
                                await self._drop_rest(receive, send, message, received)
                                return
                            self.held += len(chunk)
                            counted += len(chunk)
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
            chunks.clear()
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.held -= counted
            if counted >= LARGE_BODY_BYTES:
                hand_back_free_memory()

    async def _drop_rest(
        self, receive: Receive, send: Send, message: Message, received: int
    ) -> None:
        """Refuse a body there is no room to hold. Its rest is read and dropped, so that the
        client, still sending, gets the answer rather than a reset connection."""
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._refuse(send)
                return
        await self._busy(send, received)

    def _over_held(self, more: int) -> bool:
        return self.max_bytes_held is not None and self.held + more > self.max_bytes_held

    async def _busy(self, send: Send, size: int) -> None:
        busy = TooManyRequests(
            f"the server holds {self.held} bytes of request bodies; this one's {size} "
            f"would pass its limit of {self.max_bytes_held} (max_body_bytes_held); "
            "retry after 1 s"
        )
        await send_error(send, busy, [(b"retry-after", b"1")])

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send, TooLarge(f"the request body is over the server's limit of {self.max_bytes} bytes")
        )
