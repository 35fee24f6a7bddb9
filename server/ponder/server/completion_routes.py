"""The completion routes, served straight from ASGI.

``POST /v1/chat/completions`` and ``POST /v1/completions`` are the gateway's
hot path. Through FastAPI's router each request also paid for route matching
over every route, the dependency solver, an exit stack and exception wrapping:
about a third of the gateway's own CPU per request against an instant engine
(docs/benchmarks.md). :class:`CompletionRoutes` sits inside admission and hands
those two to the serving layer directly; the routes FastAPI declares for them
(in :mod:`ponder.server.routes`) serve the same way through
:func:`serve_completion` and keep them in the OpenAPI document, and answer any
other method with a 405.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ponder.server.endpoints import CompletionBody
from ponder.server.errors import error_response, to_ponder_error
from ponder.server.gateway import Gateway
from ponder.server.protocol import ChatCompletionRequest, CompletionRequest
from ponder.server.request_body import parse_body

#: The wire model of each completion path's body.
BODIES: dict[str, type[CompletionBody]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
}


async def serve_completion(
    gateway: Gateway, model: type[CompletionBody], request: Request
) -> Response:
    """The response to a completion request: its body read as ``model`` and served; any
    failure is an error in OpenAI's envelope."""
    try:
        body = parse_body(model, await request.body(), request.headers.get("content-type"))
        return await gateway.serving.handle(body, request)
    except Exception as exc:
        return error_response(to_ponder_error(exc))


class CompletionRoutes:
    """ASGI middleware: a POST to a completion path is served here, past the router."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = BODIES.get(scope["path"]) if scope["type"] == "http" else None
        if model is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        response = await serve_completion(self.gateway, model, request)
        await response(scope, receive, send)
