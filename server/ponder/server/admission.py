"""Admission: at most ``max_in_flight`` completions at once; the rest get a 429."""

from __future__ import annotations

from prometheus_client import Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.server.errors import TooManyRequests, send_error

#: The paths that order engine work.
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")


class InFlightLimit:
    """ASGI middleware: a 429 with ``Retry-After`` when the gateway is full.

    A streamed completion counts until its last byte is sent.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        retry_after: int = 1,
        gauge: Gauge | None = None,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.in_flight = 0
        self._gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in COMPLETION_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(send)
            return
        self.in_flight += 1
        if self._gauge is not None:
            self._gauge.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1
                if self._gauge is not None:
                    self._gauge.dec()

        async def send_then_release(message: Message) -> None:
            await send(message)
            # The client has the whole answer: what the request still does (closing its
            # engine streams, its metrics) orders no engine work, and a client that asks
            # again at once must not find its own finished request still counted.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()

    async def _refuse(self, send: Send) -> None:
        error = TooManyRequests(
            f"the server is at its limit of {self.max_in_flight} requests in flight "
            f"(max_in_flight); retry after {self.retry_after} s"
        )
        await send_error(send, error, [(b"retry-after", str(self.retry_after).encode())])
