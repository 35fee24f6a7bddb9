"""``direct``: the request goes to the engine as it came, in one call."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from ponder.strategies.base import (
    Answer,
    Strategy,
    StrategyContext,
    StrategyParams,
    StrategyResult,
)
from ponder.strategies.engine import Choice


class DirectParams(StrategyParams):
    """``direct`` takes only the common parameters."""


class Direct(Strategy[DirectParams]):
    name: ClassVar[str] = "direct"
    Params: ClassVar[type[DirectParams]] = DirectParams
    description: ClassVar[str] = "One pass: the request goes to the engine unchanged."
    answers_n: ClassVar[bool] = True
    shapes_answer: ClassVar[bool] = True

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        sampling = ctx.sampling_for(self.params)
        if not ctx.streaming:
            generation = await ctx.generate(
                ctx.prompt, role="answer", round=1, n=ctx.n, sampling=ctx.shape.apply(sampling)
            )
            return StrategyResult(answers=[_answer(c) for c in generation.choices])
        # A stream carries one sample, so n streamed answers are n concurrent
        # calls; they share the prompt's prefix in the engine's cache.
        with ctx.budget.parallel():
            choices = await asyncio.gather(
                *(
                    ctx.final(
                        ctx.prompt,
                        role="answer",
                        round=1,
                        index=i,
                        sampling=sampling,
                        shaped=True,
                    )
                    for i in range(ctx.n)
                )
            )
        return StrategyResult(answers=[_answer(c) for c in choices])


def _answer(choice: Choice) -> Answer:
    return Answer(
        text=choice.text,
        finish_reason=choice.finish_reason,
        tool_calls=choice.tool_calls,
        logprobs=choice.logprobs,
        tokens=choice.completion_tokens,
    )
