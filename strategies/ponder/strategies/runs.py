"""Running a strategy for a whole request: ``n`` answers for each of its prompts.

A strategy that answers ``n`` itself (``answers_n``: ``direct`` asks the
engine for ``n`` samples in one call) runs once per prompt; any other runs
``n`` times side by side. Each run has a budget of its own, and the runs'
usage adds up as parallel work: the critical path is the longest run's.
The gateway serves requests with this; tests and the evaluation harness can
call it with an engine and no gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ponder.strategies.base import (
    Answer,
    DeltaSink,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from ponder.strategies.budget import Allowance, Budget, CallRecord, Usage, combine_parallel
from ponder.strategies.demos import Resources
from ponder.strategies.details import Details
from ponder.strategies.engine import (
    AnswerShape,
    Engine,
    Message,
    Prompt,
    RewardModel,
    Sampling,
)
from ponder.strategies.limits import Limits
from ponder.strategies.pace import Pace
from ponder.strategies.reasoning import Reasoning, ReasoningLevel, ReasoningSink
from ponder.strategies.user_budget import BudgetReached, BudgetStop, Deadline, UserBudget


@dataclass
class Job:
    """One run of a strategy: ``n`` answers for one prompt, numbered from ``offset``."""

    prompt: Prompt
    n: int
    offset: int
    budget: Budget


@dataclass(frozen=True)
class Run:
    """What a request's runs produced, in answer order, and what they cost together."""

    answers: list[Answer]
    usage: Usage
    records: list[CallRecord]
    #: The details of each run that reported some.
    details: list[Details]
    #: Why runs stopped short of their plan, one entry per run that did (``ponder.budget``).
    stopped: list[BudgetStop] = field(default_factory=list)


def plan_jobs(
    strategy: Strategy[Any], prompts: Sequence[Prompt], n: int, *, max_all_tokens: int | None
) -> list[Job]:
    """The runs that give ``n`` answers to each prompt (answers numbered prompt by prompt)."""
    jobs: list[Job] = []
    allowance = Allowance(max_all_tokens) if max_all_tokens is not None else None
    for p, prompt in enumerate(prompts):
        runs = [(n, 0)] if strategy.answers_n else [(1, i) for i in range(n)]
        for answers, start in runs:
            budget = Budget(max_all_tokens=max_all_tokens, allowance=allowance)
            jobs.append(Job(prompt, answers, p * n + start, budget))
    return jobs


async def run_jobs(
    strategy: Strategy[Any],
    jobs: Sequence[Job],
    *,
    engine: Engine,
    sampling: Sampling,
    limits: Limits | None = None,
    resources: Resources | None = None,
    reward: RewardModel | None = None,
    shape: AnswerShape | None = None,
    reasoning: ReasoningLevel = "none",
    on_delta: DeltaSink | None = None,
    on_reasoning: ReasoningSink | None = None,
    user_budget: UserBudget | None = None,
    deadline: Deadline | None = None,
    pace: Pace | None = None,
) -> Run:
    """Every job side by side; ``on_delta`` gets answer text and ``on_reasoning`` the work
    shown at ``reasoning``'s level, both by the request's choice index. Each answer carries
    the work shown for it (``Answer.reasoning``). A run that reaches ``user_budget`` (or
    ``deadline``) answers with its best answer so far."""
    limits = limits or Limits()
    resources = resources or Resources()
    shape = shape or AnswerShape()
    pace = pace or Pace()
    stopped: list[BudgetStop] = []

    async def run_one(job: Job) -> StrategyResult:
        raw_sink = _numbered(on_delta, job.offset)
        streamed = _Streamed(raw_sink, keep_partial=deadline is not None)
        sink = streamed.sink
        shown = Reasoning(reasoning, _numbered(on_reasoning, job.offset))
        reshape = shape.structured and not strategy.shapes_answer
        # echo: the answer starts with the prompt (a strategy's calls must not echo it).
        echo = job.prompt if shape.echo and isinstance(job.prompt, str) else ""
        if echo and not strategy.shapes_answer and raw_sink is not None:
            for index in range(job.n):
                await raw_sink(index, echo)
        ctx = StrategyContext(
            engine=engine,
            prompt=job.prompt,
            sampling=sampling,
            budget=job.budget,
            n=job.n,
            limits=limits,
            seed=sampling.seed or 0,
            resources=resources,
            reward=reward,
            # An answer that must take a form is streamed by the call that gives it that
            # form; the strategy's own answer is then the work behind it.
            on_delta=_worked_answer(shown) if reshape else sink,
            reasoning=shown,
            shape=shape if strategy.shapes_answer or not shape.echo else replace(shape, echo=False),
            user_budget=user_budget,
            deadline=deadline,
            pace=pace,
        )
        reason: BudgetStop | None = None
        try:
            result = await _within_deadline(strategy.run(ctx), deadline)
        except BudgetReached as reached:
            reason = reached.reason
        except TimeoutError:
            if deadline is None:  # not the deadline's: some other wait that gave up
                raise
            reason = "deadline"
        if reason is not None:
            stopped.append(reason)
            await ctx.progress(f"stopped by the budget ({reason}): answering with the best so far")
            # An answer that must take a form is not streamed as it is: the last call
            # below writes it in that form, and runs however short it must be.
            best = await streamed.best_so_far(ctx, job.n, stream=not reshape)
            result, ctx.best = StrategyResult(answers=best), None
        if echo and not strategy.shapes_answer:
            result = replace(
                result, answers=[replace(a, text=echo + a.text) for a in result.answers]
            )
        if reshape:
            ctx.on_delta = sink
            result = await in_shape(ctx, strategy, result)
        return _with_reasoning(result, shown)

    if len(jobs) == 1:  # most requests: no task of its own to start and wait for
        results = [await run_one(jobs[0])]
    else:
        results = list(await asyncio.gather(*(run_one(job) for job in jobs)))
    return Run(
        answers=[answer for result in results for answer in result.answers],
        usage=combine_parallel([job.budget.usage() for job in jobs]),
        records=[record for job in jobs for record in job.budget.records],
        details=[result.details for result in results if result.details is not None],
        stopped=stopped,
    )


async def _within_deadline(
    work: Awaitable[StrategyResult], deadline: Deadline | None
) -> StrategyResult:
    """``work``, cancelled at ``deadline`` (TimeoutError): the calls it was making are cut
    at the engines, which the budget's own bounds mostly spare."""
    if deadline is None:
        return await work
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + deadline.left()):
        return await work


class _Streamed:
    """A run's answer sink that remembers what it sent: a run stopped by its budget answers
    with its best so far, unless a part of an answer was already streamed.

    ``keep_partial`` gives a client that does not stream a sink too, which keeps the text
    without sending it: the answer's call is then streamed from the engine, so a deadline
    that cuts it leaves the text written so far, as a streaming client would have had it
    (a plain call cut at the deadline leaves nothing)."""

    def __init__(self, sink: DeltaSink | None, *, keep_partial: bool = False) -> None:
        self._sink = sink
        self.sent: dict[int, str] = {}
        self.sink: DeltaSink | None = self._send if sink is not None or keep_partial else None

    async def _send(self, index: int, text: str) -> None:
        self.sent[index] = self.sent.get(index, "") + text
        if self._sink is not None:
            await self._sink(index, text)

    async def best_so_far(self, ctx: StrategyContext, n: int, *, stream: bool) -> list[Answer]:
        """The run's answers when its budget stopped it: what was streamed (or kept, for a
        client not streaming) stands, cut short; otherwise the best answers offered, streamed
        now; otherwise an empty answer."""
        best = list(ctx.best or ())
        answers = []
        for index in range(n):
            if index in self.sent:
                answers.append(Answer(self.sent[index], "length"))
                continue
            answer = best[index] if index < len(best) else Answer("", "length")
            if stream and self._sink is not None and answer.text:
                await self._send(index, answer.text)
            answers.append(answer)
        return answers


async def run_strategy(
    strategy: Strategy[Any],
    prompts: Sequence[Prompt],
    *,
    engine: Engine,
    sampling: Sampling,
    n: int = 1,
    limits: Limits | None = None,
    resources: Resources | None = None,
    reward: RewardModel | None = None,
    shape: AnswerShape | None = None,
    reasoning: ReasoningLevel = "none",
    on_delta: DeltaSink | None = None,
    on_reasoning: ReasoningSink | None = None,
) -> Run:
    """``n`` answers to each of ``prompts`` by ``strategy`` (its limits checked first)."""
    limits = limits or Limits()
    per_call = strategy.params.max_tokens or sampling.max_tokens or limits.max_tokens_per_call
    limits.check_n(n * len(prompts))
    limits.check_max_tokens(per_call)
    strategy.check_limits(limits, per_call)
    jobs = plan_jobs(strategy, prompts, n, max_all_tokens=limits.max_all_tokens)
    return await run_jobs(
        strategy,
        jobs,
        engine=engine,
        sampling=sampling,
        limits=limits,
        resources=resources,
        reward=reward,
        shape=shape,
        reasoning=reasoning,
        on_delta=on_delta,
        on_reasoning=on_reasoning,
    )


def format_prompt(ctx: StrategyContext, worked: str) -> list[Message]:
    """The last call of a strategy whose answer must take a form (a JSON schema, a tool
    call): the conversation, the question with the strategy's worked answer beside it."""
    text = (
        f"{ctx.question}\n\nA worked answer to this, for reference:\n{worked.strip()}\n\n"
        "Using it, reply to the request above."
    )
    return ctx.chat(text)


async def in_shape(
    ctx: StrategyContext, strategy: Strategy[Any], result: StrategyResult
) -> StrategyResult:
    """Each answer written again by one call with the request's whole AnswerShape (the
    strategy's text is shown as the work behind it)."""
    last_round = max((r.round for r in ctx.budget.records), default=0) + 1
    shaped = []
    for index, answer in enumerate(result.answers):
        await ctx.reasoning.worked_answer(answer.text, index=index)
        choice = await ctx.final(
            format_prompt(ctx, answer.text),
            role="format",
            round=last_round,
            index=index,
            sampling=ctx.request_sampling(strategy.params),
            shaped=True,
        )
        shaped.append(
            Answer(
                choice.text,
                choice.finish_reason,
                answer.answer,
                tool_calls=choice.tool_calls,
                logprobs=choice.logprobs,
                tokens=choice.completion_tokens,
            )
        )
    return StrategyResult(answers=shaped, details=result.details)


def _with_reasoning(result: StrategyResult, shown: Reasoning) -> StrategyResult:
    """``result`` with each answer's reasoning as shown (the same object when nothing was)."""
    texts = [shown.text(i) for i in range(len(result.answers))]
    if all(a.reasoning == t for a, t in zip(result.answers, texts, strict=True)):
        return result
    answers = [replace(a, reasoning=t) for a, t in zip(result.answers, texts, strict=True)]
    return replace(result, answers=answers)


def _numbered(sink: DeltaSink | None, offset: int) -> DeltaSink | None:
    """``sink`` for a run whose answers are the request's from ``offset`` on."""
    if sink is None:
        return None
    send = sink

    async def numbered(index: int, text: str) -> None:
        await send(offset + index, text)

    return numbered


def _worked_answer(shown: Reasoning) -> DeltaSink | None:
    """Where a strategy streams an answer that a last call then puts in the request's form:
    into the work shown (None when nothing is shown: the answer is not streamed)."""
    if not shown.shows("summary"):
        return None

    async def into_reasoning(index: int, text: str) -> None:
        await shown.stream(text, index=index)

    return into_reasoning
