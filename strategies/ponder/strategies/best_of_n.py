"""``best_of_n``: n sampled solutions in ONE batched engine call; the best by a scorer.

The scorer is the LLM judge (pointwise grades or a pairwise knockout), a
reward model (``--reward-url``), or the samples' own token confidence
(DeepConf's lowest-window confidence, or the mean log-probability). The
chosen sample is the answer; every score is in ``ponder.details`` and in its
sample's trace entry.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ponder.strategies import prompts
from ponder.strategies.answers import noting
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


class BestOfNParams(DraftingParams, ScoringParams):
    n: int = Field(4, ge=1, le=64, description="solutions sampled in one batched call")
    scorer: ScorerName = Field(
        "judge", description="judge, reward (needs --reward-url) or confidence"
    )


class BestOfNDetails(Details):
    scorer: ScorerName
    scores: list[float]
    chosen: int


class BestOfN(Strategy[BestOfNParams]):
    name: ClassVar[str] = "best_of_n"
    Params: ClassVar[type[BestOfNParams]] = BestOfNParams
    description: ClassVar[str] = "n sampled solutions in one call, the best by a scorer"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_drafts(self.params.n, "best_of_n.n")
        super().check_limits(limits, max_tokens)

    def planned_samples(self) -> int:
        return self.params.n  # the judge's replies are a few tokens each

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        params = self.params
        scorer = make_scorer(params.scorer, params)
        await ctx.progress(f"sampling {params.n} solutions")
        generation = await ctx.generate(
            ctx.chat(prompts.qa(ctx.question, prompts.COT_TRIGGER)),
            role="draft",
            round=1,
            n=params.n,
            sampling=scorer.prepare(ctx.candidates_sampling(ctx.sampling_for(params))),
            annotate=noting(params.answer_format),
        )
        ctx.offer(Answer.leader(generation.choices, params.answer_format))
        await ctx.progress(f"scoring them ({params.scorer})")
        scores = await scorer.score(ctx, generation.choices, round=1)
        chosen = max(range(len(scores)), key=lambda i: (scores[i], -i))  # ties: the first
        shown = ", ".join(f"{_shown(s):g}" for s in scores)
        await ctx.progress(f"scores: {shown}; chosen: solution {chosen + 1}")
        for record, score in zip(
            [r for r in ctx.budget.records if r.role == "draft"], scores, strict=True
        ):
            record.meta["score"] = _shown(score)
        return StrategyResult(
            answers=[Answer.from_choice(generation.choices[chosen], params.answer_format)],
            details=BestOfNDetails(
                scorer=params.scorer, scores=[_shown(s) for s in scores], chosen=chosen
            ),
        )


def _shown(score: float) -> float:
    return round(score, 6)
