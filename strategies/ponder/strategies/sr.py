"""``sr``: Sequential Refinement — the PDR paper's degree-1 case.

One draft; then ``rounds`` refinements, each seeing only the question and
the previous solution and writing an improved, complete one. With
``error_analysis``, a call between rounds lists the previous solution's
errors (role ``verify``) and the refinement reads that list too. The last
refinement is streamed to a streaming client.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ponder.strategies import prompts
from ponder.strategies.answers import noting, stated
from ponder.strategies.base import (
    Answer,
    DraftingParams,
    EarlyExitParams,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from ponder.strategies.details import Details
from ponder.strategies.limits import Limits
from ponder.strategies.stopping import agreed


class SRParams(DraftingParams, EarlyExitParams):
    rounds: int = Field(2, ge=1, le=32, description="refinements after the first draft")
    error_analysis: bool = Field(False, description="an error-analysis call before each refinement")


class SRDetails(Details):
    """With early_exit: the round after which the run stopped (its refinement kept the
    answer before it) and that answer."""

    stopped_after_round: int
    agreed_answer: str


class SequentialRefinement(Strategy[SRParams]):
    name: ClassVar[str] = "sr"
    Params: ClassVar[type[SRParams]] = SRParams
    description: ClassVar[str] = "one draft, then rounds of refinement"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_rounds(self.params.rounds + 1, "sr.rounds")
        super().check_limits(limits, max_tokens)

    def planned_samples(self) -> int:
        return 1 + self.params.rounds * (2 if self.params.error_analysis else 1)

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        # The first draft is sampled (the parameter's temperature); refinements follow the
        # request, and the error analysis is greedy unless the request sets a temperature.
        sampling = ctx.request_sampling(self.params)
        critique_sampling = ctx.auxiliary_sampling(self.params)
        note = noting(self.params.answer_format)
        question = ctx.question
        await ctx.progress(f"round 1 of {self.params.rounds + 1}: draft")
        draft = await ctx.generate(
            ctx.chat(prompts.solve(question)),
            role="draft",
            round=1,
            sampling=ctx.sampling_for(self.params),
            annotate=note,
        )
        solution = draft.choices[0]
        ctx.offer(Answer.from_choice(solution, self.params.answer_format))
        for step in range(1, self.params.rounds + 1):
            round_ = step + 1
            analysis = None
            if self.params.error_analysis:
                critique = await ctx.generate(
                    ctx.chat(prompts.error_analysis(question, solution.text)),
                    role="verify",
                    round=round_,
                    sampling=critique_sampling,
                )
                analysis = critique.choices[0].text
            prompt = ctx.chat(prompts.refinement(question, solution.text, analysis))
            if step == self.params.rounds:
                solution = await ctx.final(
                    prompt,
                    role="refine",
                    round=round_,
                    sampling=sampling,
                    annotate=note,
                )
            else:
                await ctx.progress(f"round {round_} of {self.params.rounds + 1}: refine")
                refined = await ctx.generate(
                    prompt,
                    role="refine",
                    round=round_,
                    sampling=sampling,
                    annotate=note,
                )
                previous, solution = solution, refined.choices[0]
                ctx.offer(Answer.from_choice(solution, self.params.answer_format))
                kept = self._kept_answer(previous.text, solution.text)
                if kept is not None:
                    await ctx.progress(f"round {round_} kept the answer {kept}: done")
                    return StrategyResult(
                        answers=[Answer.from_choice(solution, self.params.answer_format)],
                        details=SRDetails(stopped_after_round=round_, agreed_answer=kept),
                    )
        return StrategyResult(answers=[Answer.from_choice(solution, self.params.answer_format)])

    def _kept_answer(self, before: str, after: str) -> str | None:
        """With early_exit, the answer a refinement kept from the solution before it."""
        if not self.params.early_exit:
            return None
        fmt = self.params.answer_format
        return agreed([stated(before, fmt), stated(after, fmt)])
