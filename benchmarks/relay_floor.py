"""The floor under the gateway's own cost: a bare ASGI app under uvicorn that relays a chat
request to the engine with aiohttp and answers its JSON, and nothing else (no validation,
strategy, metrics or middleware). ``benchmarks/gateway_cost.py --floor`` runs it.

    ENGINE=http://127.0.0.1:8001 uvicorn benchmarks.relay_floor:app --port 8100
"""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp

Scope = dict[str, Any]
Message = dict[str, Any]


class Relay:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["path"] != "/v1/chat/completions":
            await self.answer(send, b'{"status":"ok"}')
            return
        body = b""
        more = True
        while more:
            message: Message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self.session is not None
        async with self.session.post(
            self.engine + "/v1/chat/completions", json=json.loads(body)
        ) as response:
            answer = await response.json()
        await self.answer(send, json.dumps(answer).encode())

    async def answer(self, send: Any, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession()
                await send({"type": "lifespan.startup.complete"})
            else:
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = Relay(os.environ.get("ENGINE", "http://127.0.0.1:8001"))
