"""A reward or classification model behind vLLM's pooling runner, for the ``reward`` scorer.

vLLM serves one with ``--runner pooling --convert classify`` (a classifier or
reward checkpoint, or a causal LM converted online, e.g. with
``--hf-overrides '{"method": "from_2_way_softmax", "classifier_from_token": ["No", "Yes"]}'``).
``/classify`` answers each input's class probabilities: a one-class model's
probability is the score; with several classes, the last class's. Servers
without ``/classify`` are asked ``/pooling``, whose output's last value is
the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from ponder.strategies.engine import EngineError, EngineUnavailable


class HTTPRewardModel:
    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        timeout: float = 120.0,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = url.rstrip("/").removesuffix("/v1")
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport
        )

    async def _model_name(self) -> str:
        if self._model is None:
            listed = await self._get("/v1/models")
            data = listed.get("data") or []
            if not data:
                raise EngineUnavailable("the reward model server lists no model")
            self._model = str(data[0]["id"])
        return self._model

    async def score(self, texts: Sequence[str]) -> tuple[list[float], int]:
        body = {"model": await self._model_name(), "input": list(texts)}
        try:
            payload = await self._post("/classify", body)
            scores = [_last(item.get("probs")) for item in _ordered(payload)]
        except _NotServed:
            payload = await self._post("/pooling", body)
            scores = [_last(item.get("data")) for item in _ordered(payload)]
        usage = payload.get("usage") or {}
        return scores, int(usage.get("prompt_tokens") or 0)

    async def _get(self, path: str) -> dict[str, Any]:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as error:
            raise EngineUnavailable(f"the reward model is unreachable: {error}") from None
        return _json(response)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as error:
            raise EngineUnavailable(f"the reward model is unreachable: {error}") from None
        if response.status_code in (404, 405):
            raise _NotServed
        return _json(response)

    async def aclose(self) -> None:
        await self._client.aclose()


class _NotServed(Exception):
    pass


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise EngineError(
            f"the reward model answered {response.status_code}", status=502, retryable=False
        )
    payload = response.json()
    if not isinstance(payload, dict):
        raise EngineError("the reward model answered with no JSON object")
    return payload


def _ordered(payload: dict[str, Any]) -> list[dict[str, Any]]:
    items = [item for item in payload.get("data") or [] if isinstance(item, dict)]
    return sorted(items, key=lambda item: int(item.get("index", 0)))


def _last(value: Any) -> float:
    while isinstance(value, list):
        if not value:
            raise EngineError("the reward model returned an empty output")
        value = value[-1]
    return float(value)
