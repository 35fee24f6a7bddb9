"""The completion routes' hot path: POSTs are served past the router, anything else is not."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ponder.server.completion_routes import CompletionRoutes
from ponder.strategies.testing import ScriptedEngine


class Router:
    """Stands for the app behind the middleware: answers 418 and remembers what reached it."""

    def __init__(self) -> None:
        self.reached: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_completion_posts_are_served_past_the_router(
    app: FastAPI, engine: ScriptedEngine
) -> None:
    router = Router()
    routes = CompletionRoutes(router, gateway=app.state.gateway)
    transport = httpx.ASGITransport(app=routes)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
        )
        text = await client.post("/v1/completions", json={"model": "tiny", "prompt": "hi"})
        refused = await client.post("/v1/completions", json={"model": "tiny"})
        other = await client.get("/v1/chat/completions")
        models = await client.get("/v1/models")
    assert chat.status_code == 200, chat.text
    assert chat.json()["object"] == "chat.completion"
    assert text.json()["object"] == "text_completion"
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "prompt"
    assert len(engine.calls) == 2
    assert (other.status_code, models.status_code) == (418, 418)
    assert router.reached == [("GET", "/v1/chat/completions"), ("GET", "/v1/models")]


async def test_other_methods_on_a_completion_path_get_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
