"""HTTP routes: thin; the work is in :class:`~ponder.server.serving.CompletionServing`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ponder.server.completion_routes import serve_completion
from ponder.server.errors import ModelNotFound
from ponder.server.eval_results import EvalReport
from ponder.server.gateway import Gateway
from ponder.server.metrics import CONTENT_TYPE_LATEST
from ponder.server.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    StrategyCard,
    StrategyList,
)

router = APIRouter()


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its own (see :mod:`request_body`)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


@router.post("/v1/chat/completions", openapi_extra=_json_body(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await serve_completion(_gateway(request), ChatCompletionRequest, request)


@router.post("/v1/completions", openapi_extra=_json_body(CompletionRequest))
async def completions(request: Request) -> Response:
    return await serve_completion(_gateway(request), CompletionRequest, request)


def _model_cards(gateway: Gateway) -> list[ModelCard]:
    created = int(time.time())
    cards: list[ModelCard] = []
    for model in gateway.engines.models():
        cards.append(ModelCard(id=model, created=created))
        cards.extend(
            ModelCard(id=f"{strategy}:{model}", created=created) for strategy in gateway.registry
        )
    return cards


@router.get("/v1/models")
async def models(request: Request) -> ModelList:
    return ModelList(data=_model_cards(_gateway(request)))


@router.get("/v1/models/{model_id:path}")
async def model(model_id: str, request: Request) -> ModelCard:
    """One model (or ``<strategy>:<model>``), as OpenAI's retrieve-model answers."""
    for card in _model_cards(_gateway(request)):
        if card.id == model_id:
            return card
    raise ModelNotFound(
        f"model {model_id!r} does not exist; GET /v1/models lists the models", param="model"
    )


@router.get("/v1/strategies")
async def strategies(request: Request) -> StrategyList:
    """Every installed strategy, with the JSON schema of its parameters."""
    registry = _gateway(request).registry
    return StrategyList(
        data=[
            StrategyCard(
                id=name,
                description=registry.get(name).description,
                parameters=registry.get(name).Params.model_json_schema(),
            )
            for name in registry
        ]
    )


@router.post("/v1/eval/results")
async def eval_results(report: EvalReport, request: Request) -> dict[str, int | str]:
    """Publish an evaluation run's results as ``ponder_eval_*`` gauges on /metrics, and keep
    them in the frontier budget requests choose from."""
    gateway = _gateway(request)
    recorded = gateway.evals.record(report)
    if gateway.frontier is not None:
        gateway.evals.flag_frontier(await gateway.frontier.save(report))
    else:
        gateway.evals.flag_frontier(report)
    return {"object": "eval.results", "dataset": report.dataset, "recorded": recorded}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    gateway = _gateway(request)
    if gateway.engines.ready:
        return JSONResponse({"status": "ready", "models": gateway.engines.models()})
    return JSONResponse({"status": "waiting for an engine"}, status_code=503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
