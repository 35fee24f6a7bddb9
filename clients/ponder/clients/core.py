"""The logic the sync and async clients share: requests, responses, streams, retries.

No I/O here: the clients send what this builds and feed back what they receive.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypedDict

import httpx

from ponder.clients.errors import APIStatusError, StreamError, status_error
from ponder.clients.models import (
    ChatCompletion,
    Finished,
    PonderInfo,
    ReasoningChunk,
    StreamEvent,
    TextChunk,
    Usage,
)
from ponder.clients.strategies import Strategy

Messages = str | Sequence[Mapping[str, Any]]

#: Statuses worth another try: the server is full, or no engine is ready yet.
RETRY_STATUSES = frozenset({429, 503})


class ChatOptions(TypedDict, total=False):
    """The options of ``chat`` and ``chat_stream``, shared by both clients."""

    model: str
    strategy: Strategy
    n: int
    max_tokens: int
    temperature: float
    seed: int
    stop: str | Sequence[str]
    trace: bool
    #: What the server's cache may do for this request: "no-cache" asks for a fresh
    #: answer (and stores it), "no-store" neither reads nor writes.
    cache: Literal["default", "no-cache", "no-store"]
    reasoning_effort: str
    #: How much of the work behind the answer to show (``reasoning_content``): "none",
    #: "summary" (the server's default: progress notes and workspaces) or "full".
    reasoning: Literal["none", "summary", "full"]
    #: What the answer may cost: ``latency_s``, ``sequential_tokens``, ``all_tokens``. With no
    #: strategy the server picks the configuration (``ponder.details["budget"]`` says which).
    budget: Mapping[str, float]
    #: Any other body field, sent as is.
    extra: Mapping[str, Any]


def chat_body(
    messages: Messages, *, model: str, stream: bool, options: ChatOptions
) -> dict[str, Any]:
    """The JSON body of a chat completion request."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not messages:
        raise ValueError("messages must not be empty")
    n = options.get("n", 1)
    if n < 1:
        raise ValueError("n must be at least 1")
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], "n": n}
    stop = options.get("stop")
    optional = {
        "max_tokens": options.get("max_tokens"),
        "temperature": options.get("temperature"),
        "seed": options.get("seed"),
        "stop": stop if stop is None or isinstance(stop, str) else list(stop),
        "reasoning_effort": options.get("reasoning_effort"),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    strategy = options.get("strategy")
    ponder: dict[str, Any] = strategy.to_ponder() if strategy is not None else {}
    if options.get("trace"):
        ponder["trace"] = True
    cache = options.get("cache")
    if cache is not None:
        if cache not in ("default", "no-cache", "no-store"):
            raise ValueError("cache must be 'default', 'no-cache' or 'no-store'")
        ponder["cache"] = cache
    reasoning = options.get("reasoning")
    if reasoning is not None:
        if reasoning not in ("none", "summary", "full"):
            raise ValueError("reasoning must be 'none', 'summary' or 'full'")
        ponder["reasoning"] = reasoning
    budget = options.get("budget")
    if budget is not None:
        ponder["budget"] = dict(budget)
    if ponder:
        body["ponder"] = ponder
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(options.get("extra") or {})
    return body


def check(response_status: int, payload: Any, headers: Mapping[str, str]) -> None:
    """Raise the typed error of an error response."""
    if response_status >= 400:
        raise status_error(response_status, payload, retry_after(headers))


def json_or_text(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode(errors="replace")


def parse_completion(payload: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(payload)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (it may be a number or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0

    def delay(self, attempt: int, error: Exception) -> float | None:
        """Seconds before retry ``attempt`` (1-based) after ``error``, or ``None``: give up."""
        if attempt > self.max_retries or not retryable(error):
            return None
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            return min(error.retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def retryable(error: Exception) -> bool:
    if isinstance(error, APIStatusError):
        return error.status_code in RETRY_STATUSES
    return isinstance(
        error,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.RemoteProtocolError | httpx.PoolTimeout,
    )


class StreamParser:
    """Server-sent events in, stream events out."""

    def __init__(self) -> None:
        self.finish_reasons: dict[int, str | None] = {}
        self.usage: Usage | None = None
        self.ponder: PonderInfo | None = None
        self.done = False

    def feed(self, line: str) -> Iterator[StreamEvent]:
        if line.startswith(":"):
            note = line[1:].strip()
            if note.startswith("ponder {"):  # the summary, when usage was not asked for
                summary = json.loads(note[len("ponder ") :])
                self.usage = Usage.model_validate(summary["usage"])
                self.ponder = PonderInfo.model_validate(summary["ponder"])
            return
        if not line.startswith("data:"):
            return
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            self.done = True
            yield Finished(finish_reasons=self.finish_reasons, usage=self.usage, ponder=self.ponder)
            return
        chunk = json.loads(data)
        if "error" in chunk:
            error = status_error(502, chunk)
            raise StreamError(
                error.message, status_code=200, type=error.type, param=error.param, code=error.code
            )
        if chunk.get("usage"):
            self.usage = Usage.model_validate(chunk["usage"])
        if chunk.get("ponder"):
            self.ponder = PonderInfo.model_validate(chunk["ponder"])
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning:
                yield ReasoningChunk(index=index, text=reasoning)
            text = delta.get("content") or choice.get("text") or ""
            if text:
                yield TextChunk(index=index, text=text)
            if choice.get("finish_reason"):
                self.finish_reasons[index] = choice["finish_reason"]
