"""The strategy contract: a typed parameter model and one async method."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ponder.strategies.answers import stated, vote
from ponder.strategies.budget import Budget, BudgetExhausted
from ponder.strategies.demos import Resources
from ponder.strategies.details import Details
from ponder.strategies.engine import (
    ABORTED,
    AnswerShape,
    Choice,
    Engine,
    Generation,
    Message,
    Prompt,
    RewardModel,
    SampleCheck,
    SampleWatch,
    Sampling,
    StreamEnd,
    TextDelta,
    TokenLogprob,
    ToolCall,
    calling,
)
from ponder.strategies.limits import Limits
from ponder.strategies.pace import Pace
from ponder.strategies.prompts import AnswerFormat
from ponder.strategies.reasoning import Reasoning
from ponder.strategies.user_budget import (
    MIN_CALL_TOKENS,
    BudgetReached,
    BudgetStop,
    Deadline,
    UserBudget,
)


class StrategyInputError(ValueError):
    """The request asks for something the strategy cannot do (a 400, not a crash)."""


#: The share of the time left before a deadline that the next call may take.
DEADLINE_SHARE = 0.8
#: Seconds before a deadline at which samples still running are cut, so that the call can
#: count what they made and the run answer with its best so far before the deadline.
DEADLINE_WRAP_UP = 0.3

#: The temperature drafts are sampled at by strategies whose drafts must differ.
DRAFT_TEMPERATURE = 0.7


class StrategyParams(BaseModel):
    """Parameters every strategy accepts; strategies subclass this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: bool = Field(False, description="Return every engine call in `ponder.trace`.")
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature of the calls that write drafts or the answer "
        "(default: the request's).",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Output tokens per engine call (defaults to the request's)."
    )
    answer_format: AnswerFormat = Field(
        "numeric",
        description="what an answer is, for extraction, votes and rankings: numeric, choice "
        "(A-E), yes_no or free",
    )


class EarlyExitParams(StrategyParams):
    """Parameters of strategies with rounds that may end early (PDR, SR)."""

    early_exit: bool = Field(
        False,
        description="skip the remaining rounds once a round's drafts all state the same "
        "answer (for sr: once a refinement keeps its draft's answer)",
    )


class DraftingParams(StrategyParams):
    """Parameters of strategies that sample several drafts: they must differ to be useful,
    so drafts are sampled at a temperature even when the request is greedy."""

    temperature: float | None = Field(
        DRAFT_TEMPERATURE,
        ge=0.0,
        le=2.0,
        description="sampling temperature of the drafts, even when the request is greedy; "
        "calls that distill, verify or extract stay greedy unless the request sets a temperature",
    )


#: Sends a piece of a final answer to a streaming client: (choice index, text).
DeltaSink = Callable[[int, str], Awaitable[None]]
#: What a strategy notes of one sample, for its trace entry.
Annotate = Callable[[Choice], dict[str, Any]]


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
    #: What the run shows of its work (``ponder.reasoning``): notes, workspaces, drafts.
    reasoning: Reasoning = field(default_factory=Reasoning)
    #: A seed for the strategy's own random choices (the request's, when it has one).
    seed: int = 0
    #: Files the operator configured (demo sets, question pools), by name.
    resources: Resources = field(default_factory=Resources)
    #: The reward model the operator configured, for the ``reward`` scorer (None: none).
    reward: RewardModel | None = None
    #: The request's fields that shape the answer (applied by ``final``; see AnswerShape).
    shape: AnswerShape = field(default_factory=AnswerShape)
    #: What the user will spend (``ponder.budget``; None: only the server's caps hold).
    user_budget: UserBudget | None = None
    deadline: Deadline | None = None
    #: How fast the engines answer (turns the time left into tokens).
    pace: Pace = field(default_factory=Pace)
    #: The best answers so far (:meth:`offer`): what a run stopped by its budget returns.
    best: Sequence[Answer] | None = None

    @property
    def question(self) -> str:
        """The text to reason about: a raw prompt, or the last user message."""
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt[self._question_index].content

    @property
    def history(self) -> list[Message]:
        """The conversation before the question: system messages and earlier turns, in order."""
        if isinstance(self.prompt, str):
            return []
        return list(self.prompt[: self._question_index])

    @property
    def _question_index(self) -> int:
        assert not isinstance(self.prompt, str)
        users = [i for i, m in enumerate(self.prompt) if m.role == "user"]
        return users[-1] if users else len(self.prompt) - 1

    @property
    def after_question(self) -> list[Message]:
        """Messages after the question: an assistant's tool calls and the tools' results."""
        if isinstance(self.prompt, str):
            return []
        return list(self.prompt[self._question_index + 1 :])

    def chat(self, text: str) -> list[Message]:
        """A strategy prompt as chat: the conversation so far, then ``text`` in the question's
        place (a user who said "let x = 5" earlier is still heard), then any tool calls and
        results that followed the question."""
        return [*self.history, Message("user", text), *self.after_question]

    @property
    def streaming(self) -> bool:
        return self.on_delta is not None

    def sampling_for(self, params: StrategyParams, **overrides: Any) -> Sampling:
        """The request's sampling with the strategy's own overrides (temperature, max_tokens)
        applied: for the calls that write drafts or answers."""
        changes: dict[str, Any] = {}
        if params.temperature is not None:
            changes["temperature"] = params.temperature
        if params.max_tokens is not None:
            changes["max_tokens"] = params.max_tokens
        changes.update(overrides)
        return replace(self.sampling, **changes) if changes else self.sampling

    def request_sampling(self, params: StrategyParams | None = None, **overrides: Any) -> Sampling:
        """The request's own sampling (the strategy's ``max_tokens`` applied, not its
        temperature): for calls that follow the request, such as refinements."""
        sampling = self.sampling
        if params is not None and params.max_tokens is not None:
            sampling = replace(sampling, max_tokens=params.max_tokens)
        return replace(sampling, **overrides) if overrides else sampling

    def auxiliary_sampling(
        self, params: StrategyParams | None = None, **overrides: Any
    ) -> Sampling:
        """For calls that judge, distill, verify or extract: greedy unless the request set a
        temperature itself."""
        temperature = 0.0 if self.sampling.temperature is None else self.sampling.temperature
        return self.request_sampling(params, **{"temperature": temperature, **overrides})

    def candidates_sampling(self, sampling: Sampling) -> Sampling:
        """For calls whose samples are candidate answers (one is chosen): the request's stop
        sequences and logprobs apply, as the chosen one is the answer."""
        return self.shape.free_text(sampling)

    async def progress(self, note: str) -> None:
        """A note on the run's progress (``round 2 of 3: 2 drafts``), shown as reasoning."""
        await self.reasoning.note(note)

    def _check_budget(self) -> None:
        if self.budget.remaining() == 0:
            raise BudgetExhausted(
                f"the request has spent its {self.budget.max_all_tokens} tokens (max_all_tokens)"
            )

    def offer(self, *answers: Answer) -> None:
        """The run's best answers so far (one per answer it owes): returned as they are if its
        budget stops it before it finishes."""
        self.best = answers

    def _bounded(
        self,
        sampling: Sampling,
        n: int = 1,
        prompt: Prompt | None = None,
        *,
        deadline_caps: bool = True,
    ) -> Sampling:
        """``sampling`` whose output bound holds to the server's per-call cap, to what the
        request has left (shared by the call's ``n`` samples) and to the user's budget (its
        deadline too, unless ``deadline_caps`` is False)."""
        bound = min(
            sampling.max_tokens or self.limits.max_tokens_per_call, self.limits.max_tokens_per_call
        )
        left = self.budget.remaining()
        if left is not None:
            bound = min(bound, max(1, left // n))
        room = self._budget_room(prompt, n, deadline=deadline_caps)
        if room is not None:
            reason, tokens = room
            if tokens < MIN_CALL_TOKENS and self.best is not None:
                raise BudgetReached(reason)
            # With nothing to answer yet, the call still runs, as short as it must be.
            bound = min(bound, max(MIN_CALL_TOKENS, tokens))
        return sampling if bound == sampling.max_tokens else replace(sampling, max_tokens=bound)

    def room(self, prompt: Prompt | None = None) -> int | None:
        """Output tokens the user's budget leaves a next call reading ``prompt`` (None: no
        budget): for a strategy to decide whether to start another step."""
        found = self._budget_room(prompt, 1)
        return None if found is None else found[1]

    def _budget_room(
        self, prompt: Prompt | None, n: int, *, deadline: bool = True
    ) -> tuple[BudgetStop, int] | None:
        """The tightest of the user's bounds on the next call (the deadline's only if
        ``deadline``): output tokens per sample it leaves room for, and which bound that is
        (None: no bound)."""
        user = self.user_budget
        if user is None and (self.deadline is None or not deadline):
            return None
        reading = estimated_tokens(prompt)
        rooms: list[tuple[int, BudgetStop]] = []
        if user is not None and user.all_tokens is not None:
            allowance = self.budget.allowance
            spent = allowance.spent if allowance is not None else self.budget.all_tokens
            rooms.append(((user.all_tokens - spent) // n - reading, "all_tokens"))
        if user is not None and user.sequential_tokens is not None:
            left = user.sequential_tokens - self.budget.sequential_tokens
            rooms.append((left - reading, "sequential_tokens"))
        if self.deadline is not None and deadline:
            # A fifth of the time left stays in reserve: calls vary around the pace, and
            # other requests may start sharing the engine meanwhile.
            seconds = DEADLINE_SHARE * self.deadline.left()
            rooms.append((self.pace.tokens_within(seconds, n), "deadline"))
        if not rooms:
            return None
        tokens, reason = min(rooms)
        return reason, tokens

    def _paced(self, generation: Generation, started: float) -> None:
        """Let the pace learn from a call that reached an engine."""
        if not generation.cached and generation.choices:
            longest = max(choice.completion_tokens for choice in generation.choices)
            self.pace.record(time.monotonic() - started, longest, len(generation.choices))

    async def generate(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        n: int = 1,
        sampling: Sampling | None = None,
        index: int | None = None,
        annotate: Annotate | None = None,
    ) -> Generation:
        """One engine call of ``n`` samples, recorded in the budget as one parallel step.

        ``annotate`` adds what the strategy learns of each sample (its answer,
        say) to the sample's trace entry.
        """
        generation = await self._call(
            prompt, role=role, round=round, n=n, sampling=sampling, index=index, annotate=annotate
        )
        await self._show(generation, role=role, round=round, n=n, index=index)
        return generation

    async def _show(
        self, generation: Generation, *, role: str, round: int, n: int, index: int | None
    ) -> None:
        """Each sample as work shown at the ``full`` level."""
        if not self.reasoning.shows("full"):
            return
        for k, choice in enumerate(generation.choices):
            number = (index or 0) + k + 1 if n > 1 or index is not None else None
            title = f"{role}{f' {number}' if number else ''}, round {round}"
            await self.reasoning.section(title, choice.text, level="full")

    async def generate_until(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        n: int,
        done: SampleCheck,
        keep: SampleWatch | None = None,
        sampling: Sampling | None = None,
        annotate: Annotate | None = None,
        last: bool = False,
    ) -> Generation:
        """``n`` samples side by side, recorded as one parallel step; ``done`` sees each as it
        finishes and may end the call, the rest cancelled at the engine (finish reason
        ``abort``, their tokens so far counted); ``keep`` may cut a sample alone. A deadline
        that comes first cuts the call the same way, just before it, and stops the run
        (its best answer so far stands, the tokens the call made counted). ``last``: the
        run answers from these samples and calls nothing after them, so the deadline does
        not cap the samples' length (each would be cut short of its answer to leave time
        that nothing needs); it only cuts those still running."""
        self._check_budget()
        bounded = self._bounded(sampling or self.sampling, n, prompt, deadline_caps=not last)
        until = None if self.deadline is None else self.deadline.at - DEADLINE_WRAP_UP
        decided = False

        def deciding(index: int, choice: Choice) -> bool:
            nonlocal decided
            if done(index, choice):
                decided = True
            return decided

        started = time.monotonic()
        with calling(role):
            generation = await self.engine.generate_until(
                prompt, n=n, sampling=bounded, done=deciding, keep=keep, until=until
            )
        self._paced(generation, started)
        self._record(generation, prompt, role=role, round=round, index=None, annotate=annotate)
        await self._show(generation, role=role, round=round, n=n, index=None)
        cut = any(choice.finish_reason == ABORTED for choice in generation.choices)
        if until is not None and cut and not decided and time.monotonic() >= until:
            raise BudgetReached("deadline")
        return generation

    async def _call(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        n: int,
        sampling: Sampling | None,
        index: int | None,
        annotate: Annotate | None,
    ) -> Generation:
        self._check_budget()
        bounded = self._bounded(sampling or self.sampling, n, prompt)
        started = time.monotonic()
        with calling(role):
            generation = await self.engine.generate(prompt, n=n, sampling=bounded)
        self._paced(generation, started)
        self._record(generation, prompt, role=role, round=round, index=index, annotate=annotate)
        return generation

    async def final(
        self,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        index: int = 0,
        sampling: Sampling | None = None,
        prefix: str = "",
        annotate: Annotate | None = None,
        shaped: bool = False,
    ) -> Choice:
        """The call whose output is the answer: streamed to the client when it streams.

        The request's stop sequences and logprobs apply to it (and to no other
        call); ``shaped`` applies the whole :class:`AnswerShape` (a JSON schema,
        tools). ``prefix`` is sent before the engine's text (a streaming client
        sees the answer as the response will hold it).
        """
        sampling = sampling or self.sampling
        sampling = self.shape.apply(sampling) if shaped else self.shape.free_text(sampling)
        if self.on_delta is None:
            generation = await self._call(
                prompt,
                role=role,
                round=round,
                n=1,
                sampling=sampling,
                index=index,
                annotate=annotate,
            )
            return generation.choices[0]  # the answer: not shown as reasoning
        self._check_budget()
        sampling = self._bounded(sampling, 1, prompt)
        started = time.monotonic()
        if prefix:
            await self.on_delta(index, prefix)
        end: StreamEnd | None = None
        with calling(role):
            async for event in self.engine.stream(prompt, sampling=sampling):
                if isinstance(event, TextDelta):
                    if event.text:
                        await self.on_delta(index, event.text)
                else:
                    end = event
        if end is None:  # pragma: no cover - an Engine must end its stream
            raise RuntimeError("engine stream ended without a StreamEnd")
        generation = Generation(
            choices=(end.choice,),
            prompt_tokens=end.prompt_tokens,
            model=end.model,
            cached=end.cached,
        )
        self._paced(generation, started)
        self._record(generation, prompt, role=role, round=round, index=index, annotate=annotate)
        return end.choice

    def _record(
        self,
        generation: Generation,
        prompt: Prompt,
        *,
        role: str,
        round: int,
        index: int | None,
        annotate: Annotate | None,
    ) -> None:
        records = self.budget.record(
            generation, role=role, round=round, prompt=render_prompt(prompt), index=index
        )
        if annotate is not None:
            for record, choice in zip(records, generation.choices, strict=True):
                record.meta.update(annotate(choice))


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    finish_reason: str | None = "stop"
    #: The extracted, normalised final answer, when the strategy found one.
    answer: str | None = None
    #: Function calls the answer makes (a request with ``tools``).
    tool_calls: tuple[ToolCall, ...] = ()
    #: The answer call's token log-probabilities (a request with ``logprobs``).
    logprobs: tuple[TokenLogprob, ...] | None = None
    #: The work behind an answer that had to take a form of its own (JSON, a tool call).
    reasoning: str | None = None
    #: Completion tokens of the call(s) that wrote ``text``; every other generated token of
    #: the run is reasoning (``usage.completion_tokens_details.reasoning_tokens``).
    tokens: int = 0

    @classmethod
    def from_choice(cls, choice: Choice, fmt: AnswerFormat = "numeric") -> Answer:
        """A sample as the response, with the answer it reached."""
        return cls(
            choice.text,
            choice.finish_reason,
            stated(choice.text, fmt),
            tool_calls=choice.tool_calls,
            logprobs=choice.logprobs,
            tokens=choice.completion_tokens,
        )

    @classmethod
    def leader(cls, choices: Sequence[Choice], fmt: AnswerFormat = "numeric") -> Answer:
        """The first sample that reached the answer most samples state (the first sample when
        none states one): a run's best answer before it has chosen."""
        result = vote([stated(choice.text, fmt) for choice in choices])
        return cls.from_choice(choices[result.winner_index or 0], fmt)


@dataclass(frozen=True, slots=True)
class StrategyResult:
    answers: Sequence[Answer]
    #: What the run did, typed per strategy (rounds, workspaces, votes ...); ``None``: nothing.
    details: Details | None = None


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
    #: ``run`` applies the request's whole AnswerShape itself (JSON schema, tools); for
    #: other strategies a last ``format`` call writes their answer in that shape.
    shapes_answer: ClassVar[bool] = False

    def __init__(self, params: P) -> None:
        self.params = params

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        """Raise :class:`~ponder.strategies.limits.OverCap` when the parameters exceed a cap.

        ``max_tokens`` is the output bound of each engine call.
        """
        limits.check_calls(self.planned_samples(), max_tokens)

    def planned_samples(self) -> int:
        """The most samples one run may ask of engines (for the token cap)."""
        return 1

    @property
    def uses_reward_model(self) -> bool:
        """Whether a run needs the operator's reward model (a ``reward`` scorer)."""
        # Read from the fields' values: `getattr` with a default on parameters that have
        # no scorer raises and catches an AttributeError (once per request).
        return bool(self.params.__dict__.get("scorer") == "reward")

    @abstractmethod
    async def run(self, ctx: StrategyContext) -> StrategyResult: ...


def estimated_tokens(prompt: Prompt | None) -> int:
    """About how many tokens an engine reads in ``prompt``, before it is sent (about four
    characters a token, and a few for the chat template): what a budget sets aside for it."""
    if prompt is None:
        return 0
    return len(render_prompt(prompt)) // 4 + 8


def render_prompt(prompt: Prompt) -> str:
    """The prompt as text, for the trace."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(_render(message) for message in prompt)


def _render(message: Message) -> str:
    calls = "".join(f" [calls {c.name}({c.arguments}) as {c.id}]" for c in message.tool_calls)
    answering = f" [answers {message.tool_call_id}]" if message.tool_call_id else ""
    return f"{message.role}: {message.content}{calls}{answering}"
