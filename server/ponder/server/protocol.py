"""OpenAI wire models: what clients send and what Ponder answers."""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ponder.server.cache.mode import CacheMode
from ponder.strategies.reasoning import ReasoningLevel
from ponder.strategies.user_budget import UserBudget


class _Lenient(BaseModel):
    # Unknown OpenAI fields are kept (and forwarded to the engine), never refused.
    model_config = ConfigDict(extra="allow")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    #: An assistant's earlier function calls, and a tool message's answer to one of them.
    tool_calls: list[ToolCallOut] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ValueError(f"content parts of type {part.type!r} are not supported")
            texts.append(part.text)
        return "".join(texts)


class PonderOptions(BaseModel):
    """The ``ponder`` object of a request (the openai SDK's ``extra_body``).

    Its own keys are about the request; every other key is a parameter of
    the chosen strategy, validated by that strategy's parameter model, which
    refuses keys it does not know.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy: str | None = Field(None, min_length=1, description="the strategy to run")
    cache: CacheMode = Field(
        CacheMode.DEFAULT,
        description="default: read and write; no-cache: skip the lookup; no-store: neither",
    )
    reasoning: ReasoningLevel = Field(
        "summary",
        description="the work behind the answer shown as reasoning_content: none; summary "
        "(progress notes and workspaces); full (every draft, summary and critique as well)",
    )
    budget: UserBudget | None = Field(
        None,
        description="what the answer may cost: latency_s, sequential_tokens, all_tokens; "
        "with no strategy named the server picks the configuration (ponder.details.budget)",
    )

    @property
    def strategy_params(self) -> dict[str, Any]:
        """The keys that belong to the strategy."""
        return dict(self.model_extra or {})


class StreamOptions(_Lenient):
    include_usage: bool = False
    #: OpenAI pads stream chunks against length side channels; this server does not, so it
    #: refuses to be asked rather than leave the padding out silently.
    include_obfuscation: bool = False

    @field_validator("include_obfuscation")
    @classmethod
    def _no_obfuscation(cls, value: bool) -> bool:
        if value:
            raise ValueError("stream obfuscation is not supported; send false or leave it out")
        return value


#: Numbers and flags as JSON writes them: "3" or true is not a count, "0.5" not a float.
Count = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
#: Engines take seeds as 64-bit integers.
SEED_RANGE = (-(2**63), 2**63 - 1)


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a UTF-16 surrogate code point, which UTF-8 cannot encode
    (found by the codec, in C: a loop over the characters cost every request a pass in
    Python over its whole prompt)."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


#: Validation context of a body whose reader has checked that nothing in it is unsendable
#: (:func:`ponder.server.request_body.parse_body`): the walk over every value is skipped.
SENDABLE = "ponder.sendable"


def unsendable(value: Any, path: str = "body") -> tuple[str, str] | None:
    """The first place in a request body that JSON cannot carry to an engine or a cache
    key — NaN or an infinity, a lone UTF-16 surrogate — with the problem, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, "must be a finite number"
    if isinstance(value, str):
        if _has_surrogate(value):
            return path, "contains a lone UTF-16 surrogate, which is not text"
        return None
    if isinstance(value, dict):
        pairs: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        pairs = list(enumerate(value))
    else:
        return None
    for key, item in pairs:
        where = str(key) if path == "body" else f"{path}.{key}"
        if isinstance(key, str) and _has_surrogate(key):
            return path, "has a key that is not text"
        found = unsendable(item, where)
        if found is not None:
            return found
    return None


class _SamplingFields(_Lenient):
    model: str = Field(min_length=1)
    n: Count = Field(1, ge=1)
    stream: Flag = False
    stream_options: StreamOptions | None = None
    max_tokens: Count | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0.0, le=2.0)
    top_p: Number | None = Field(None, gt=0.0, le=1.0)
    seed: Count | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = None
    presence_penalty: Number | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: Number | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = None
    ponder: PonderOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _sendable(cls, body: Any, info: ValidationInfo) -> Any:
        if info.context is not None and info.context.get(SENDABLE):
            return body
        found = unsendable(body)
        if found is not None:
            path, problem = found
            raise PydanticCustomError(
                "unsendable", "{path} {problem}", {"path": path, "problem": problem}
            )
        return body

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Count | None = Field(None, ge=1)
    reasoning_effort: str | None = None


#: A prompt of token ids in the model's own tokenizer (OpenAI's array of integers).
TokenIds = list[Annotated[int, Field(ge=0)]]


class CompletionRequest(_SamplingFields):
    #: A string, strings, token ids, or lists of token ids: OpenAI's four forms.
    prompt: str | list[str] | TokenIds | list[TokenIds]
    reasoning_effort: str | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(
        cls, value: str | list[str] | TokenIds | list[TokenIds]
    ) -> str | list[str] | TokenIds | list[TokenIds]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be an empty list")
        if isinstance(value, list) and any(isinstance(p, list) and not p for p in value):
            raise ValueError("a prompt of token ids must not be empty")
        return value

    def prompt_list(self) -> list[str | list[int]]:
        """The prompts, each a string or token ids."""
        prompt: Any = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if all(isinstance(p, int) for p in prompt):
            return [list(prompt)]  # one prompt of token ids
        return [p if isinstance(p, str) else list(p) for p in prompt]

    @property
    def has_token_ids(self) -> bool:
        return any(not isinstance(p, str) for p in self.prompt_list())


class PonderUsage(BaseModel):
    calls: int
    rounds: int
    drafts: int
    sequential_tokens: int
    #: B_total: every call's input and output, each sample reading its prompt.
    all_tokens: int


class CompletionTokensDetails(BaseModel):
    #: Generated tokens that are not the answer: drafts, distillations, verifications ...
    reasoning_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None
    ponder: PonderUsage


class TraceCall(BaseModel):
    role: str
    round: int
    index: int
    step: int
    prompt: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    meta: dict[str, Any] | None = None
    #: A reasoning model's thinking before ``output``.
    reasoning: str | None = None


class PonderInfo(BaseModel):
    strategy: str
    params: dict[str, Any]
    #: The extracted, normalised final answer of each choice (None: none found).
    answers: list[str | None] | None = None
    trace: list[TraceCall] | None = None
    details: dict[str, Any] | None = None
    #: Whether this answer came from the cache (None: the server caches nothing).
    cache: Literal["hit", "miss"] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None
    #: The work behind the answer, as much as ``ponder.reasoning`` asked to show.
    reasoning_content: str | None = None

    @model_serializer(mode="wrap")
    def _content_always(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # OpenAI sends "content": null beside tool calls; exclude_none must not drop it.
        data: dict[str, Any] = handler(self)
        data.setdefault("content", None)
        return data


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    ponder: PonderInfo


class CompletionLogprobs(BaseModel):
    """The completions API's form: parallel lists."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class Completion(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    ponder: PonderInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "ponder"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class StrategyCard(BaseModel):
    id: str
    object: Literal["strategy"] = "strategy"
    description: str
    parameters: dict[str, Any]


class StrategyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[StrategyCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
