"""The strategy contract: a typed parameter model and one async method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ponder.strategies.budget import Budget
from ponder.strategies.engine import (
    Choice,
    Engine,
    Generation,
    Prompt,
    Sampling,
    StreamEnd,
    TextDelta,
)


class StrategyParams(BaseModel):
    """Parameters every strategy accepts; strategies subclass this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: bool = Field(False, description="Return every engine call in `ponder.trace`.")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature of the strategy's calls."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Output tokens per engine call (defaults to the request's)."
    )


#: Sends a piece of a final answer to a streaming client: (choice index, text).
DeltaSink = Callable[[int, str], Awaitable[None]]
#: Sends a progress note to a streaming client (an SSE comment).
ProgressSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Server-side caps a request must stay under."""

    max_n: int = 16
    max_drafts_per_round: int = 16
    max_rounds: int = 8
    max_total_tokens: int = 200_000


@dataclass
class StrategyContext:
    """Everything one run of a strategy may use; built per request."""

    engine: Engine
    prompt: Prompt
    sampling: Sampling
    budget: Budget
    n: int = 1
    limits: Limits = field(default_factory=Limits)
    on_delta: DeltaSink | None = None
    on_progress: ProgressSink | None = None

    @property
    def question(self) -> str:
        """The text to reason about: a raw prompt, or the last user message."""
        if isinstance(self.prompt, str):
            return self.prompt
        users = [m.content for m in self.prompt if m.role == "user"]
        return users[-1] if users else self.prompt[-1].content

    @property
    def streaming(self) -> bool:
        return self.on_delta is not None

    def sampling_for(self, params: StrategyParams) -> Sampling:
        """The request's sampling with the strategy's own overrides applied."""
        return replace(
            self.sampling,
            temperature=self.sampling.temperature
            if params.temperature is None
            else params.temperature,
            max_tokens=self.sampling.max_tokens if params.max_tokens is None else params.max_tokens,
        )

    async def progress(self, note: str) -> None:
        if self.on_progress is not None:
            await self.on_progress(note)

    async def generate(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        n: int = 1,
        sampling: Sampling | None = None,
    ) -> Generation:
        """One batched engine call, recorded in the budget as one parallel step."""
        generation = await self.engine.generate(prompt, n=n, sampling=sampling or self.sampling)
        self.budget.record(generation, role=role, round=round, prompt=render_prompt(prompt))
        return generation

    async def final(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        index: int = 0,
        sampling: Sampling | None = None,
    ) -> Choice:
        """The call whose output is the answer: streamed to the client when it streams."""
        if self.on_delta is None:
            generation = await self.generate(prompt, role=role, round=round, sampling=sampling)
            return generation.choices[0]
        end: StreamEnd | None = None
        async for event in self.engine.stream(prompt, sampling=sampling or self.sampling):
            if isinstance(event, TextDelta):
                await self.on_delta(index, event.text)
            else:
                end = event
        if end is None:  # pragma: no cover - an Engine must end its stream
            raise RuntimeError("engine stream ended without a StreamEnd")
        generation = Generation(
            choices=(end.choice,), prompt_tokens=end.prompt_tokens, model=end.model
        )
        self.budget.record(
            generation, role=role, round=round, prompt=render_prompt(prompt), index=index
        )
        return end.choice


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    finish_reason: str | None = "stop"


@dataclass(frozen=True, slots=True)
class StrategyResult:
    answers: Sequence[Answer]
    details: dict[str, Any] = field(default_factory=dict)


P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """A reasoning strategy. Subclasses set ``name``, ``Params`` and ``run``.

    ``answers_n`` says whether ``run`` returns the request's ``n`` answers
    itself; when it is false the server runs the strategy ``n`` times.
    """

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    description: ClassVar[str] = ""
    answers_n: ClassVar[bool] = False

    def __init__(self, params: P) -> None:
        self.params = params

    def check_limits(self, limits: Limits) -> None:
        """Raise ``ValueError`` naming the cap when the parameters exceed it."""

    @abstractmethod
    async def run(self, ctx: StrategyContext) -> StrategyResult: ...


def render_prompt(prompt: Prompt) -> str:
    """The prompt as text, for the trace."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{message.role}: {message.content}" for message in prompt)
