"""``Ponder`` and ``AsyncPonder``: the same calls, blocking and async.

Both are thin over httpx; what they send and how they read the answer is in
:mod:`ponder.clients.core`, shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Unpack

import httpx

from ponder.clients.core import (
    ChatOptions,
    Messages,
    RetryPolicy,
    StreamParser,
    chat_body,
    check,
    json_or_text,
    parse_completion,
)
from ponder.clients.errors import APIConnectionError, APIStatusError, APITimeoutError, PonderError
from ponder.clients.models import ChatCompletion, StrategyInfo, StreamEvent

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _client_error(error: Exception) -> PonderError:
    if isinstance(error, PonderError):
        return error
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"the server did not answer in time: {error!r}")
    return APIConnectionError(f"cannot reach the server: {error!r}")


class _Settings:
    """What both clients are configured with."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str | None,
        max_retries: int,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.model = model
        self.retry = RetryPolicy(max_retries=max_retries)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, messages: Messages, *, stream: bool, options: ChatOptions) -> dict[str, Any]:
        model = options.get("model") or self.model
        if not model:
            raise ValueError("name a model: Ponder(model=...) or chat(..., model=...)")
        return chat_body(messages, model=model, stream=stream, options=options)


class Ponder:
    """A blocking client of a Ponder server.

    ``max_retries`` more tries are made after a 429, a 503 or a connection
    error, waiting as ``Retry-After`` says, else with exponential backoff.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = _Settings(base_url, api_key=api_key, model=model, max_retries=max_retries)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep

    def __enter__(self) -> Ponder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def chat(
        self,
        messages: Messages,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion:
        """A chat completion, answered by ``strategy`` (the server's default if none)."""
        body = self._settings.body(messages, stream=False, options=options)
        return parse_completion(self._request("POST", "chat/completions", body))

    def chat_stream(
        self,
        messages: Messages,
        **options: Unpack[ChatOptions],
    ) -> Iterator[StreamEvent]:
        """The answer as it is generated: ``ReasoningChunk``s (the work behind it),
        ``TextChunk``s, then ``Finished``."""
        body = self._settings.body(messages, stream=True, options=options)
        attempt, started = 0, False
        while True:
            try:
                with self._http.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        check(response.status_code, json_or_text(response.read()), response.headers)
                    parser = StreamParser()
                    for line in response.iter_lines():
                        for event in parser.feed(line):
                            started = True
                            yield event
                        if parser.done:
                            return
                    return
            except (APIStatusError, httpx.TransportError) as error:
                # Only a stream that has yielded nothing is tried again.
                attempt += 1
                delay = None if started else self._settings.retry.delay(attempt, error)
                if delay is None:
                    raise _client_error(error) from error
                self._sleep(delay)

    def models(self) -> list[str]:
        """Every model and ``<strategy>:<model>`` name the server serves."""
        return [card["id"] for card in self._request("GET", "models")["data"]]

    def strategies(self) -> list[StrategyInfo]:
        """The server's strategies, with their parameters' JSON schemas."""
        return [
            StrategyInfo.model_validate(card) for card in self._request("GET", "strategies")["data"]
        ]

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=body)
                payload = json_or_text(response.content)
                check(response.status_code, payload, response.headers)
                return payload
            except (APIStatusError, httpx.TransportError) as error:
                attempt += 1
                delay = self._settings.retry.delay(attempt, error)
                if delay is None:
                    raise _client_error(error) from error
                self._sleep(delay)


class AsyncPonder:
    """The async twin of :class:`Ponder`: the same calls, awaited."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._settings = _Settings(base_url, api_key=api_key, model=model, max_retries=max_retries)
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep

    async def __aenter__(self) -> AsyncPonder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: Messages,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion:
        body = self._settings.body(messages, stream=False, options=options)
        return parse_completion(await self._request("POST", "chat/completions", body))

    async def chat_stream(
        self,
        messages: Messages,
        **options: Unpack[ChatOptions],
    ) -> AsyncIterator[StreamEvent]:
        body = self._settings.body(messages, stream=True, options=options)
        attempt, started = 0, False
        while True:
            try:
                async with self._http.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        check(
                            response.status_code,
                            json_or_text(await response.aread()),
                            response.headers,
                        )
                    parser = StreamParser()
                    async for line in response.aiter_lines():
                        for event in parser.feed(line):
                            started = True
                            yield event
                        if parser.done:
                            return
                    return
            except (APIStatusError, httpx.TransportError) as error:
                attempt += 1
                delay = None if started else self._settings.retry.delay(attempt, error)
                if delay is None:
                    raise _client_error(error) from error
                await self._sleep(delay)

    async def models(self) -> list[str]:
        return [card["id"] for card in (await self._request("GET", "models"))["data"]]

    async def strategies(self) -> list[StrategyInfo]:
        return [
            StrategyInfo.model_validate(card)
            for card in (await self._request("GET", "strategies"))["data"]
        ]

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, json=body)
                payload = json_or_text(response.content)
                check(response.status_code, payload, response.headers)
                return payload
            except (APIStatusError, httpx.TransportError) as error:
                attempt += 1
                delay = self._settings.retry.delay(attempt, error)
                if delay is None:
                    raise _client_error(error) from error
                await self._sleep(delay)
