"""The OpenAPI document as the server answers: OpenAI's error envelope and real statuses.

FastAPI documents a 422 for every body it validates; Ponder answers those with
a 400 in OpenAI's envelope. The statuses its middleware and handlers give
(401, 403, 404, 408, 413, 429, 502, 503, 504) are documented where they can
happen, and /metrics as the Prometheus text it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ponder.server.admission import COMPLETION_PATHS
from ponder.server.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse

_WHY = {
    "400": "an invalid request (OpenAI's error envelope names the param)",
    "401": "API keys are configured and none valid was sent",
    "403": "the key may not do this (publishing evaluation results needs an admin key)",
    "404": "no such model",
    "408": "the request body did not arrive in time",
    "413": "the request body is over max_body_bytes",
    "415": "the request body is not JSON",
    "429": "a limit: the server's requests in flight or the key's rate limits",
    "502": "an engine failed",
    "503": "no engine is ready",
    "504": "an engine timed out",
}
_EVERY_KEYED = ("400", "401", "408", "413")
_BY_PATH: dict[str, tuple[str, ...]] = {
    **{p: (*_EVERY_KEYED, "404", "415", "429", "502", "503", "504") for p in COMPLETION_PATHS},
    "/v1/models/{model_id}": ("401", "404"),
    "/v1/models": ("401",),
    "/v1/strategies": ("401",),
    "/v1/eval/results": (*_EVERY_KEYED, "403"),
    "/ready": ("503",),
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        # The completion routes read their own bodies, and no route returns an error model:
        # their schemas are added here.
        for model in (ChatCompletionRequest, CompletionRequest, ErrorResponse):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for path, operations in spec["paths"].items():
            for operation in operations.values():
                responses = operation["responses"]
                responses.pop("422", None)
                for status in _BY_PATH.get(path, ()):
                    responses[status] = {"description": _WHY[status], "content": error}
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        metrics = spec["paths"].get("/metrics", {}).get("get")
        if metrics is not None:
            metrics["responses"]["200"]["content"] = {
                "text/plain; version=0.0.4": {"schema": {"type": "string"}}
            }
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
