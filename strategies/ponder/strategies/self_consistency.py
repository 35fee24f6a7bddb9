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


class SelfConsistencyParams(DraftingParams):
    n: int = Field(8, ge=1, le=64, description="rationales sampled and voted on")


class VoteDetails(Details):
    """The vote: count per normalised answer, the winner, the first sample that reached it."""

    votes: dict[str, int]
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
        sampling = ctx.sampling_for(self.params)
        fmt = self.params.answer_format
        await ctx.progress(f"sampling {self.params.n} rationales")
        prompt = ctx.chat(prompts.qa(ctx.question, prompts.COT_TRIGGER))
        generation = await ctx.generate(
            prompt, role="draft", round=1, n=self.params.n, sampling=sampling, annotate=noting(fmt)
        )
        answers = [extract_answer(choice.text, fmt) for choice in generation.choices]
        result = vote(answers)
        chosen = generation.choices[result.winner_index or 0]
        return StrategyResult(
            answers=[Answer(chosen.text, chosen.finish_reason, result.winner)],
            details=VoteDetails(
                votes=result.counts, winner=result.winner, winner_index=result.winner_index
            ),
        )
