"""The OpenAPI document says what the server answers."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI


def refs(node: Any) -> set[str]:
    return set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(node)))


async def test_errors_are_documented_as_answered(app: FastAPI) -> None:
    spec = app.openapi()
    text = json.dumps(spec)
    assert '"422"' not in text  # validation errors are 400s in OpenAI's envelope
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "404", "408", "413", "429", "503"} <= set(chat)
    error_schema = chat["400"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "403" in spec["paths"]["/v1/eval/results"]["post"]["responses"]
    assert "503" in spec["paths"]["/ready"]["get"]["responses"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    assert refs(spec) <= set(spec["components"]["schemas"])  # every reference resolves


async def test_the_completion_routes_document_their_bodies(app: FastAPI) -> None:
    spec = app.openapi()
    for path, model in (
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/v1/completions", "CompletionRequest"),
    ):
        body = spec["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }
        assert "messages" in spec["components"]["schemas"][model]["properties"] or (
            "prompt" in spec["components"]["schemas"][model]["properties"]
        )
        assert "415" in spec["paths"][path]["post"]["responses"]
