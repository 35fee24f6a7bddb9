"""``self_consistency``: Self-Consistency (Wang et al. 2022).

n Chain-of-Thought rationales sampled in ONE batched engine call at a
temperature above zero; a majority vote over their extracted, normalised
answers (a tie goes to the answer seen first); the first rationale that
reached the winning answer is the response. The vote is in ``ponder.details``
and each sample's answer in its trace entry.

With ``adaptive`` (Adaptive-Consistency, Aggarwal et al. 2023) the samples
are streamed and each votes as it finishes; once the vote is decided (see
:mod:`ponder.strategies.stopping`) the samples still running are cancelled
at the engine, and only the tokens generated are paid for. All n samples run at
once unless ``wave`` says how many to start at a time: Aggarwal et al. sample
one at a time, and a batch saves only the tokens its samples have still to
write when the vote is decided, which are few when they finish together.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.strategies import prompts
from ponder.strategies.answers import extract_answer, noting, vote
from ponder.strategies.base import (
    Answer,
    DraftingParams,
    Strategy,
    StrategyContext,
    StrategyResult,
)
from ponder.strategies.confidence_filter import ConfidenceFilter
from ponder.strategies.details import Details
from ponder.strategies.engine import ABORTED, Choice, Generation, Prompt, Sampling
from ponder.strategies.limits import Limits
from ponder.strategies.scorers import ScorerName, ScoringParams, make_scorer
from ponder.strategies.stopping import StopReason, decided_in_draw_order


class SelfConsistencyParams(DraftingParams, ScoringParams):
    n: int = Field(8, ge=1, le=64, description="rationales sampled and voted on")
    weighted: bool = Field(False, description="weight each vote by the scorer's score")
    scorer: ScorerName = Field(
        "confidence", description="weighted votes: confidence, judge or reward"
    )
    adaptive: bool = Field(
        False,
        description="stop once the vote is decided: the samples still running are cancelled "
        "at the engine (Adaptive-Consistency)",
    )
    wave: int | None = Field(
        None,
        ge=1,
        le=64,
        description="adaptive: samples started at a time; the next ones start only while "
        "the vote is still open (1: one at a time, as in the paper; default: all n at once, "
        "which is fastest but saves only the tokens of samples still running when it is "
        "decided)",
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1.0,
        description="adaptive: stop when the leader is the majority with this probability "
        "(Beta posterior over the two most common answers)",
    )

    confidence_filter: bool = Field(
        False,
        description="DeepConf online: cut samples whose running confidence falls under a "
        "threshold set by the first finished ones; the survivors vote, weighted by confidence",
    )
    warmup: int = Field(
        2, ge=1, le=63, description="confidence_filter: finished samples that set the threshold"
    )
    filter_keep: float = Field(
        0.9,
        gt=0.0,
        lt=1.0,
        description="confidence_filter: share of the warm-up samples the threshold keeps "
        "(0.9: DeepConf-high, 0.1: DeepConf-low)",
    )

    @model_validator(mode="after")
    def _one_way_to_stop(self) -> SelfConsistencyParams:
        if self.adaptive and (self.weighted or self.confidence_filter):
            raise ValueError(
                "adaptive stops on plain votes; weighted or filtered votes need every sample scored"
            )
        if self.wave is not None and not self.adaptive:
            raise ValueError("wave paces adaptive sampling: it needs adaptive")
        if self.wave is not None and self.wave > self.n:
            raise ValueError(f"wave ({self.wave}) must be at most n ({self.n})")
        if self.confidence_filter:
            if self.scorer != "confidence":
                raise ValueError("confidence_filter weighs votes with the confidence scorer")
            if self.warmup >= self.n:
                raise ValueError(f"warmup ({self.warmup}) must be below n ({self.n})")
        return self


class VoteDetails(Details):
    """The vote: count per normalised answer, the winner, the first sample that reached it."""

    votes: dict[str, int]
    #: Weighted votes: the summed weight per answer.
    weights: dict[str, float] | None = None
    winner: str | None
    winner_index: int | None
    #: Adaptive runs: why sampling stopped early (None: every sample finished), how many
    #: samples finished and how many were cancelled.
    stopped: StopReason | None = None
    finished: int | None = None
    cancelled: int | None = None
    #: Adaptive runs in waves: how many were started.
    waves: int | None = None
    #: Confidence-filtered runs: the threshold the warm-up set, and the samples cut while
    #: generating or left out when they finished.
    threshold: float | None = None
    filtered: list[int] | None = None


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
        weighted = params.weighted or params.confidence_filter
        scorer = make_scorer(params.scorer, params) if weighted else None
        sampling = ctx.candidates_sampling(ctx.sampling_for(params))
        if scorer is not None:
            sampling = scorer.prepare(sampling)
        fmt = params.answer_format
        await ctx.progress(f"sampling {self.params.n} rationales")
        prompt = ctx.chat(prompts.qa(ctx.question, prompts.COT_TRIGGER))
        stopped: list[StopReason] = []
        kept = ConfidenceFilter(params.warmup, params.filter_keep, params.confidence_window)
        waves = 1
        if params.adaptive:
            generation, waves = await self._until_decided(ctx, prompt, sampling, stopped)
        elif params.confidence_filter:
            generation = await self._filtered(ctx, prompt, sampling, kept)
        else:
            generation = await ctx.generate(
                prompt, role="draft", round=1, n=params.n, sampling=sampling, annotate=noting(fmt)
            )
        samples = ctx.budget.records[-len(generation.choices) :]
        answers = [
            None
            if choice.finish_reason == ABORTED or index in kept.filtered
            else extract_answer(choice.text, fmt)
            for index, choice in enumerate(generation.choices)
        ]
        weights = None
        if scorer is not None:
            ctx.offer(Answer.leader(generation.choices, fmt))
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
                **self._adaptive_details(generation, stopped, waves),
                **self._filter_details(kept),
            ),
        )

    async def _filtered(
        self, ctx: StrategyContext, prompt: Prompt, sampling: Sampling, kept: ConfidenceFilter
    ) -> Generation:
        """The samples, streamed one request each so that one can be cut alone."""

        finished: dict[int, Choice] = {}

        def done(index: int, choice: Choice) -> bool:
            kept.finished(index, choice)
            finished[index] = choice
            self._offer_leader(ctx, finished, kept.filtered)
            return False

        return await ctx.generate_until(
            prompt,
            role="draft",
            round=1,
            n=self.params.n,
            done=done,
            keep=kept.watch,
            sampling=sampling,
            annotate=noting(self.params.answer_format),
            last=True,  # the confidence scorer reads the samples' own log-probabilities
        )

    def _filter_details(self, kept: ConfidenceFilter) -> dict[str, Any]:
        if not self.params.confidence_filter:
            return {}
        threshold = None if kept.threshold is None else round(kept.threshold, 6)
        return {"threshold": threshold, "filtered": sorted(kept.filtered)}

    async def _until_decided(
        self,
        ctx: StrategyContext,
        prompt: Prompt,
        sampling: Sampling,
        stopped: list[StopReason],
    ) -> tuple[Generation, int]:
        """The samples, streamed in waves, and how many waves ran. Each sample votes as it
        finishes; once the vote is decided the samples still running are cancelled and no
        more are started (why is appended to ``stopped``)."""
        params = self.params
        wave = params.wave or params.n
        # A judge or reward model weighs the votes afterwards: that takes calls, and time.
        calls_after = params.weighted and params.scorer != "confidence"
        votes: dict[int, str | None] = {}  # by index: a sample shown twice votes once
        finished: dict[int, Choice] = {}
        waves: list[Generation] = []
        while len(votes) < params.n and not stopped:
            first = sum(len(g.choices) for g in waves)
            size = min(wave, params.n - first)

            def done(index: int, choice: Choice, first: int = first) -> bool:
                votes[first + index] = extract_answer(choice.text, params.answer_format)
                finished[first + index] = choice
                self._offer_leader(ctx, finished)
                reason = decided_in_draw_order(votes, params.n, params.confidence)
                if reason is not None and len(votes) < params.n:
                    stopped.append(reason)
                    return True
                return False

            # A later wave with the request's seed would draw the first wave's samples again.
            seeded = sampling
            if sampling.seed is not None and first:
                seeded = replace(sampling, seed=sampling.seed + first)
            waves.append(
                await ctx.generate_until(
                    prompt,
                    role="draft",
                    round=1,
                    n=size,
                    done=done,
                    sampling=seeded,
                    annotate=noting(params.answer_format),
                    last=not calls_after,
                )
            )
        merged = Generation(
            choices=tuple(choice for g in waves for choice in g.choices),
            prompt_tokens=waves[0].prompt_tokens,
            model=waves[0].model,
        )
        return merged, len(waves)

    def _offer_leader(
        self, ctx: StrategyContext, finished: dict[int, Choice], left_out: set[int] | None = None
    ) -> None:
        """The leader of the samples finished so far: what a deadline that comes before the
        vote is decided answers with."""
        voting = [finished[i] for i in sorted(finished) if not left_out or i not in left_out]
        if voting:
            ctx.offer(Answer.leader(voting, self.params.answer_format))

    def _adaptive_details(
        self, generation: Generation, stopped: list[StopReason], waves: int
    ) -> dict[str, Any]:
        if not (self.params.adaptive or self.params.confidence_filter):
            return {}
        cancelled = sum(1 for c in generation.choices if c.finish_reason == ABORTED)
        details: dict[str, Any] = {
            "stopped": stopped[-1] if stopped else None,
            "finished": len(generation.choices) - cancelled,
            "cancelled": cancelled,
        }
        if self.params.wave is not None:
            details["waves"] = waves
        return details
