"""``self_consistency``: Self-Consistency (Wang et al. 2022).

n Chain-of-Thought rationales sampled in ONE batched engine call at a
temperature above zero; a majority vote over their extracted, normalised
answers (a tie goes to the answer seen first); the first rationale that
reached the winning answer is the response. The vote is in ``ponder.details``
and each sample's answer in its trace entry.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ponder.strategies import prompts
from ponder.strategies.answers import extract_answer, noting, vote
from ponder.strategies.base import (
    Answer,
    DraftingParams,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from ponder.strategies.details import Details
from ponder.strategies.limits import Limits
from ponder.strategies.scorers import ScorerName, ScoringParams, make_scorer


class SelfConsistencyParams(DraftingParams, ScoringParams):
    n: int = Field(8, ge=1, le=64, description="rationales sampled and voted on")
    weighted: bool = Field(False, description="weight each vote by the scorer's score")
    scorer: ScorerName = Field(
        "confidence", description="weighted votes: confidence, judge or reward"
    )


class VoteDetails(Details):
    """The vote: count per normalised answer, the winner, the first sample that reached it."""

    votes: dict[str, int]
    #: Weighted votes: the summed weight per answer.
    weights: dict[str, float] | None = None
    winner: str | None
    winner_index: int | None


class SelfConsistency(Strategy[SelfConsistencyParams]):
    name: ClassVar[str] = "self_consistency"
    Params: ClassVar[type[SelfConsistencyParams]] = SelfConsistencyParams
    description: ClassVar[str] = "n sampled rationales in one call, majority vote"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_drafts(self.params.n, "self_consistency.n")
        super().check_limits(limits, max_tokens)

    def planned_samples(self) -> int:
        return self.params.n

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        params = self.params
        scorer = make_scorer(params.scorer, params) if params.weighted else None
        sampling = ctx.candidates_sampling(ctx.sampling_for(params))
        if scorer is not None:
            sampling = scorer.prepare(sampling)
        fmt = params.answer_format
        await ctx.progress(f"sampling {self.params.n} rationales")
        prompt = ctx.chat(prompts.qa(ctx.question, prompts.COT_TRIGGER))
        generation = await ctx.generate(
            prompt, role="draft", round=1, n=self.params.n, sampling=sampling, annotate=noting(fmt)
        )
        samples = ctx.budget.records[-len(generation.choices) :]
        answers = [extract_answer(choice.text, fmt) for choice in generation.choices]
        weights = None
        if scorer is not None:
            weights = await scorer.score(ctx, generation.choices, round=1)
            for record, weight in zip(samples, weights, strict=True):
                record.meta["weight"] = round(weight, 6)
        result = vote(answers, weights)
        tally = ", ".join(f"{answer} x{count}" for answer, count in result.counts.items())
        await ctx.progress(f"votes: {tally or 'no answer found'}; chosen: {result.winner}")
        chosen = generation.choices[result.winner_index or 0]
        return StrategyResult(
            answers=[
                Answer(
                    chosen.text,
                    chosen.finish_reason,
                    result.winner,
                    logprobs=chosen.logprobs,
                    tokens=chosen.completion_tokens,
                )
            ],
            details=VoteDetails(
                votes=result.counts,
                weights=result.weights,
                winner=result.winner,
                winner_index=result.winner_index,
            ),
        )
