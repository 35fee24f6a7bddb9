"""What differs between /v1/chat/completions and /v1/completions, and nothing else.

Planning, running, caching and streaming are the same for both; they ask the
request's :class:`Endpoint` for the prompts, the output bound, the response
object and the shape of a streamed choice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ponder.server.errors import InvalidRequest
from ponder.server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    PonderInfo,
    Usage,
)
from ponder.strategies.base import Answer
from ponder.strategies.engine import Message, Prompt

Kind = Literal["chat", "text"]
CompletionResponse = ChatCompletion | Completion
CompletionBody = ChatCompletionRequest | CompletionRequest


@dataclass(frozen=True, slots=True)
class Ending:
    """How one choice of a stream ends: its text not streamed yet, and its finish reason."""

    index: int
    text: str | None
    finish_reason: str


class Endpoint(ABC):
    kind: ClassVar[Kind]
    id_prefix: ClassVar[str]
    chunk_object: ClassVar[str]

    @abstractmethod
    def prompts(self, body: Any) -> list[Prompt]:
        """The prompts to answer (``n`` answers each)."""

    @abstractmethod
    def max_tokens(self, body: Any) -> int | None:
        """The output bound the client asked for, if any."""

    @abstractmethod
    def response(
        self,
        *,
        id: str,
        model: str,
        answers: Sequence[Answer],
        usage: Usage,
        info: PonderInfo,
        created: int | None = None,
    ) -> CompletionResponse:
        """The response object for ``answers``."""

    @abstractmethod
    def parse(self, stored: dict[str, Any]) -> CompletionResponse:
        """A response of this endpoint read back (from the cache)."""

    @abstractmethod
    def endings(self, response: CompletionResponse) -> list[Ending]:
        """Each choice of ``response`` as the end of a stream that streamed none of it."""

    @abstractmethod
    def chunk_choice(self, index: int, text: str | None, finish: str | None, first: bool) -> Any:
        """One choice of a streamed chunk; ``first`` is the choice's first chunk."""


class ChatEndpoint(Endpoint):
    kind: ClassVar[Kind] = "chat"
    id_prefix: ClassVar[str] = "chatcmpl-"
    chunk_object: ClassVar[str] = "chat.completion.chunk"

    def prompts(self, body: ChatCompletionRequest) -> list[Prompt]:
        try:
            return [[Message(m.role, m.text()) for m in body.messages]]
        except ValueError as error:
            raise InvalidRequest(str(error), param="messages") from None

    def max_tokens(self, body: ChatCompletionRequest) -> int | None:
        return body.max_completion_tokens or body.max_tokens

    def response(
        self,
        *,
        id: str,
        model: str,
        answers: Sequence[Answer],
        usage: Usage,
        info: PonderInfo,
        created: int | None = None,
    ) -> ChatCompletion:
        response = ChatCompletion(
            id=id,
            model=model,
            choices=[
                ChatChoice(
                    index=i,
                    message=AssistantMessage(content=a.text),
                    finish_reason=a.finish_reason,
                )
                for i, a in enumerate(answers)
            ],
            usage=usage,
            ponder=info,
        )
        return response if created is None else response.model_copy(update={"created": created})

    def parse(self, stored: dict[str, Any]) -> ChatCompletion:
        return ChatCompletion.model_validate(stored)

    def endings(self, response: CompletionResponse) -> list[Ending]:
        assert isinstance(response, ChatCompletion)
        return [
            Ending(c.index, c.message.content, c.finish_reason or "stop") for c in response.choices
        ]

    def chunk_choice(
        self, index: int, text: str | None, finish: str | None, first: bool
    ) -> dict[str, Any]:
        delta: dict[str, str] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": index, "delta": delta, "finish_reason": finish}


class TextEndpoint(Endpoint):
    kind: ClassVar[Kind] = "text"
    id_prefix: ClassVar[str] = "cmpl-"
    chunk_object: ClassVar[str] = "text_completion"

    def prompts(self, body: CompletionRequest) -> list[Prompt]:
        return [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)

    def max_tokens(self, body: CompletionRequest) -> int | None:
        return body.max_tokens

    def response(
        self,
        *,
        id: str,
        model: str,
        answers: Sequence[Answer],
        usage: Usage,
        info: PonderInfo,
        created: int | None = None,
    ) -> Completion:
        response = Completion(
            id=id,
            model=model,
            choices=[
                CompletionChoice(index=i, text=a.text, finish_reason=a.finish_reason)
                for i, a in enumerate(answers)
            ],
            usage=usage,
            ponder=info,
        )
        return response if created is None else response.model_copy(update={"created": created})

    def parse(self, stored: dict[str, Any]) -> Completion:
        return Completion.model_validate(stored)

    def endings(self, response: CompletionResponse) -> list[Ending]:
        assert isinstance(response, Completion)
        return [Ending(c.index, c.text, c.finish_reason or "stop") for c in response.choices]

    def chunk_choice(
        self, index: int, text: str | None, finish: str | None, first: bool
    ) -> dict[str, Any]:
        return {"index": index, "text": text or "", "finish_reason": finish}


def endpoint_for(body: CompletionBody) -> Endpoint:
    return ChatEndpoint() if isinstance(body, ChatCompletionRequest) else TextEndpoint()
