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
    ChatMessage,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    FunctionCall,
    PonderInfo,
    TokenLogprobOut,
    ToolCallOut,
    TopLogprob,
    Usage,
)
from ponder.strategies.base import Answer
from ponder.strategies.engine import Message, Prompt, ToolCall

Kind = Literal["chat", "text"]
CompletionResponse = ChatCompletion | Completion
CompletionBody = ChatCompletionRequest | CompletionRequest


@dataclass(frozen=True, slots=True)
class Ending:
    """How one choice of a stream ends: its text not streamed yet, its finish reason, and
    what only the end can carry: its tool calls, its log-probabilities."""

    index: int
    text: str | None
    finish_reason: str
    tool_calls: list[ToolCallOut] | None = None
    logprobs: dict[str, Any] | None = None
    #: The work behind the answer, not streamed yet (an answer from the cache).
    reasoning: str | None = None


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
        logprobs: int | None = None,
    ) -> CompletionResponse:
        """The response object for ``answers`` (with ``logprobs`` top alternatives per
        token when the request asked for log-probabilities)."""

    @abstractmethod
    def ending(self, index: int, answer: Answer, streamed: bool, logprobs: int | None) -> Ending:
        """How the stream of ``answer`` ends (``streamed``: its text was sent already)."""

    @abstractmethod
    def parse(self, stored: dict[str, Any]) -> CompletionResponse:
        """A response of this endpoint read back (from the cache)."""

    @abstractmethod
    def endings(self, response: CompletionResponse) -> list[Ending]:
        """Each choice of ``response`` as the end of a stream that streamed none of it."""

    @abstractmethod
    def chunk_choice(
        self, index: int, text: str | None, finish: str | None, first: bool, end: Ending | None
    ) -> Any:
        """One choice of a streamed chunk; ``first`` is the choice's first chunk, ``end`` the
        choice's ending when this chunk carries it."""


class ChatEndpoint(Endpoint):
    kind: ClassVar[Kind] = "chat"
    id_prefix: ClassVar[str] = "chatcmpl-"
    chunk_object: ClassVar[str] = "chat.completion.chunk"

    def prompts(self, body: ChatCompletionRequest) -> list[Prompt]:
        try:
            return [[_message(m) for m in body.messages]]
        except ValueError as error:
            raise InvalidRequest(str(error), param="messages", code="unsupported_content") from None

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
        logprobs: int | None = None,
    ) -> ChatCompletion:
        return ChatCompletion(
            id=id,
            model=model,
            choices=[
                ChatChoice(
                    index=i,
                    message=AssistantMessage(
                        content=a.text if a.text or not a.tool_calls else None,
                        tool_calls=_tool_calls(a),
                        reasoning_content=a.reasoning,
                    ),
                    finish_reason=a.finish_reason,
                    logprobs=_chat_logprobs(a, logprobs),
                )
                for i, a in enumerate(answers)
            ],
            usage=usage,
            ponder=info,
        )

    def ending(self, index: int, answer: Answer, streamed: bool, logprobs: int | None) -> Ending:
        shown = _chat_logprobs(answer, logprobs)
        return Ending(
            index,
            None if streamed else answer.text,
            answer.finish_reason or "stop",
            tool_calls=_tool_calls(answer),
            logprobs=shown.model_dump(exclude_none=True) if shown is not None else None,
        )

    def parse(self, stored: dict[str, Any]) -> ChatCompletion:
        return ChatCompletion.model_validate(stored)

    def endings(self, response: CompletionResponse) -> list[Ending]:
        assert isinstance(response, ChatCompletion)
        return [
            Ending(
                c.index,
                c.message.content,
                c.finish_reason or "stop",
                tool_calls=c.message.tool_calls,
                logprobs=c.logprobs.model_dump(exclude_none=True) if c.logprobs else None,
                reasoning=c.message.reasoning_content,
            )
            for c in response.choices
        ]

    def chunk_choice(
        self, index: int, text: str | None, finish: str | None, first: bool, end: Ending | None
    ) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
        if end is not None and end.tool_calls:
            # The whole call in one delta: clients accumulate deltas by index.
            delta["tool_calls"] = [
                {"index": i, **call.model_dump()} for i, call in enumerate(end.tool_calls)
            ]
        if end is not None and end.logprobs is not None:
            choice["logprobs"] = end.logprobs
        return choice


class TextEndpoint(Endpoint):
    kind: ClassVar[Kind] = "text"
    id_prefix: ClassVar[str] = "cmpl-"
    chunk_object: ClassVar[str] = "text_completion"

    def prompts(self, body: CompletionRequest) -> list[Prompt]:
        prompts = body.prompt_list()
        # Token ids were made text before planning (PlanBuilder.with_text_prompts).
        assert all(isinstance(p, str) for p in prompts)
        return [str(p) for p in prompts]

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
        logprobs: int | None = None,
    ) -> Completion:
        return Completion(
            id=id,
            model=model,
            choices=[
                CompletionChoice(
                    index=i,
                    text=a.text,
                    finish_reason=a.finish_reason,
                    logprobs=_completion_logprobs(a, logprobs),
                )
                for i, a in enumerate(answers)
            ],
            usage=usage,
            ponder=info,
        )

    def ending(self, index: int, answer: Answer, streamed: bool, logprobs: int | None) -> Ending:
        shown = _completion_logprobs(answer, logprobs)
        return Ending(
            index,
            None if streamed else answer.text,
            answer.finish_reason or "stop",
            logprobs=shown.model_dump() if shown is not None else None,
        )

    def parse(self, stored: dict[str, Any]) -> Completion:
        return Completion.model_validate(stored)

    def endings(self, response: CompletionResponse) -> list[Ending]:
        assert isinstance(response, Completion)
        return [
            Ending(
                c.index,
                c.text,
                c.finish_reason or "stop",
                logprobs=c.logprobs.model_dump() if c.logprobs else None,
            )
            for c in response.choices
        ]

    def chunk_choice(
        self, index: int, text: str | None, finish: str | None, first: bool, end: Ending | None
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "text": text or "", "finish_reason": finish}
        if end is not None and end.logprobs is not None:
            choice["logprobs"] = end.logprobs
        return choice


def _message(message: ChatMessage) -> Message:
    """A chat message as the engine gets it: tool calls and tool results kept structured."""
    calls = tuple(
        ToolCall(call.id, call.function.name, call.function.arguments)
        for call in message.tool_calls or ()
    )
    return Message(
        message.role,
        message.text(),
        tool_calls=calls,
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def _tool_calls(answer: Answer) -> list[ToolCallOut] | None:
    if not answer.tool_calls:
        return None
    return [
        ToolCallOut(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))
        for call in answer.tool_calls
    ]


def _chat_logprobs(answer: Answer, top: int | None) -> ChoiceLogprobs | None:
    if top is None or answer.logprobs is None:
        return None
    return ChoiceLogprobs(
        content=[
            TokenLogprobOut(
                token=t.token,
                logprob=t.logprob,
                bytes=list(t.token.encode()),
                top_logprobs=[
                    TopLogprob(token=token, logprob=value, bytes=list(token.encode()))
                    for token, value in t.top[:top]
                ],
            )
            for t in answer.logprobs
        ]
    )


def _completion_logprobs(answer: Answer, top: int | None) -> CompletionLogprobs | None:
    if top is None or answer.logprobs is None:
        return None
    offsets, position = [], 0
    for t in answer.logprobs:
        offsets.append(position)
        position += len(t.token)
    return CompletionLogprobs(
        tokens=[t.token for t in answer.logprobs],
        token_logprobs=[t.logprob for t in answer.logprobs],
        top_logprobs=[dict(t.top[:top]) for t in answer.logprobs] if top else None,
        text_offset=offsets,
    )


def endpoint_for(body: CompletionBody) -> Endpoint:
    return ChatEndpoint() if isinstance(body, ChatCompletionRequest) else TextEndpoint()
