"""Bodies are read before admission, and a body that does not arrive is a 408."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine

BODY = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}).encode()


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"localhost")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, *, stall: bool) -> int:
    """The status an ASGI call answers; a stalled one sends part of its body, then nothing."""
    sent: list[bytes] = [BODY[:10]] if stall else [BODY]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if sent:
            return {"type": "http.request", "body": sent.pop(), "more_body": stall}
        await asyncio.sleep(3600)  # the client never sends the rest
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await asyncio.wait_for(app(scope(), receive, send), timeout=10)
    return statuses[0]


async def test_stalled_bodies_take_no_place_and_time_out() -> None:
    settings = Settings(engine_urls=["http://unused"], max_in_flight=1, body_timeout_seconds=0.5)
    app = create_app(settings, engines=StaticEngines({"tiny": ScriptedEngine(model="tiny")}))
    stalled = [asyncio.create_task(call(app, stall=True)) for _ in range(5)]
    await asyncio.sleep(0.1)
    assert await call(app, stall=False) == 200  # five stalled uploads shut nobody out
    assert await asyncio.gather(*stalled) == [408] * 5
