"""What a Ponder server answers, as typed objects."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # Newer servers may add fields; an older SDK keeps working.
    model_config = ConfigDict(extra="allow")


class PonderUsage(_Lenient):
    calls: int = 0
    rounds: int = 0
    drafts: int = 0
    sequential_tokens: int = 0
    #: B_total: every call's input and output, each sample reading its prompt (a server of
    #: an earlier 0.1 build named it total_tokens, which is read too).
    all_tokens: int = Field(0, validation_alias=AliasChoices("all_tokens", "total_tokens"))


class Usage(_Lenient):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    ponder: PonderUsage = Field(default_factory=PonderUsage)

    @property
    def sequential_tokens(self) -> int:
        """Tokens on the critical path (B_seq)."""
        return self.ponder.sequential_tokens

    @property
    def all_tokens(self) -> int:
        """Tokens of every call, each sample reading its prompt (B_total)."""
        return self.ponder.all_tokens


class TraceCall(_Lenient):
    role: str
    round: int
    index: int
    step: int = 0
    prompt: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    meta: dict[str, Any] | None = None


class PonderInfo(_Lenient):
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    answers: list[str | None] | None = None
    trace: list[TraceCall] | None = None
    details: dict[str, Any] | None = None
    #: "hit" when the answer came from the server's cache, "miss" when computed.
    cache: Literal["hit", "miss"] | None = None


class Message(_Lenient):
    role: str = "assistant"
    content: str | None = None
    #: The work behind the answer, as much as the request's ``reasoning`` asked to show.
    reasoning_content: str | None = None


class Choice(_Lenient):
    index: int
    message: Message
    finish_reason: str | None = None


class ChatCompletion(_Lenient):
    id: str
    model: str
    created: int = 0
    choices: list[Choice]
    usage: Usage
    ponder: PonderInfo

    @property
    def text(self) -> str:
        """The first choice's text."""
        return self.choices[0].message.content or "" if self.choices else ""

    @property
    def answer(self) -> str | None:
        """The first choice's extracted final answer, when the strategy found one."""
        answers = self.ponder.answers or []
        return answers[0] if answers else None


class StrategyInfo(_Lenient):
    id: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


# -- stream events ---------------------------------------------------------------


class TextChunk(BaseModel):
    """A piece of choice ``index``'s answer, as the engine generated it."""

    index: int
    text: str


class ReasoningChunk(BaseModel):
    """A piece of the work behind choice ``index``'s answer (``delta.reasoning_content``):
    progress notes (``round 1 of 3: 8 drafts``) and workspaces, or every draft as well,
    as the request's ``reasoning`` asked."""

    index: int
    text: str


class Finished(BaseModel):
    """The end of a stream: why each choice stopped, what it cost, what the strategy did."""

    finish_reasons: dict[int, str | None]
    usage: Usage | None = None
    ponder: PonderInfo | None = None


StreamEvent = TextChunk | ReasoningChunk | Finished
