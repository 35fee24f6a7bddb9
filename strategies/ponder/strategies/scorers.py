"""Scoring candidate solutions: one seam, three real scorers.

- ``judge``: the engine grades each candidate (pointwise: a score from 1 to 10,
  parsed strictly) or compares two at a time (pairwise: a knockout, each
  comparison answered A or B); the calls of one step run side by side.
- ``reward``: a reward or classification model served by vLLM's pooling runner
  (``/classify`` or ``/pooling``), reached through :class:`RewardModel`.
- ``confidence``: from the candidates' own token log-probabilities: the
  geometric mean token probability (exp of the mean log-probability), or the
  lowest mean confidence over a sliding window of tokens, as in DeepConf
  (Fu et al. 2025), where a token's confidence is the negative mean
  log-probability of the engine's top alternatives.

Scores are never negative and higher is better, so they can weight votes. A
candidate a scorer cannot read (an unparseable grade, no log-probabilities)
scores 0, and the trace says why.
"""

from __future__ import annotations

import asyncio
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from ponder.strategies.base import StrategyContext, StrategyInputError
from ponder.strategies.engine import Choice, Generation, Sampling
from ponder.workspace import verification_prompt, verified

ScorerName = Literal["judge", "reward", "confidence"]

#: Alternatives per token asked of the engine for the confidence scorer.
TOP_LOGPROBS = 5

#: Output tokens of a judge's reply: a grade or a letter, nothing more.
JUDGE_MAX_TOKENS = 8


class ScoringParams(BaseModel):
    """How a scorer is configured; strategies that score mix these into their parameters."""

    judge_mode: Literal["pointwise", "pairwise"] = Field(
        "pointwise", description="judge: grade each candidate, or compare two at a time"
    )
    confidence_method: Literal["mean", "lowest_window"] = Field(
        "lowest_window",
        description="confidence: mean token log-probability, or DeepConf's lowest window",
    )
    confidence_window: int = Field(
        16, ge=1, le=4096, description="confidence: tokens per window (lowest_window)"
    )


class Scorer(ABC):
    name: ClassVar[str]
    #: The candidates' generation must ask the engine for log-probabilities.
    wants_logprobs: ClassVar[bool] = False

    @abstractmethod
    async def score(
        self, ctx: StrategyContext, candidates: Sequence[Choice], *, round: int
    ) -> list[float]:
        """One score per candidate, higher is better."""

    def prepare(self, sampling: Sampling) -> Sampling:
        """The sampling of the call that writes the candidates."""
        return sampling


def judge_prompt(question: str, solution: str) -> str:
    return (
        f"Problem:\n{question}\n\nProposed solution:\n{solution.strip()}\n\n"
        "Grade the proposed solution: is its reasoning sound and its final answer correct? "
        "Give a score from 1 (certainly wrong) to 10 (certainly correct). "
        "Reply with the number only."
    )


def comparison_prompt(question: str, first: str, second: str) -> str:
    return (
        f"Problem:\n{question}\n\nSolution A:\n{first.strip()}\n\nSolution B:\n{second.strip()}\n\n"
        "Which solution is more likely correct? Reply with A or B only."
    )


_GRADE = re.compile(r"\s*(?:score\s*:?\s*)?(10|[1-9])(?:\s*/\s*10)?\s*\.?\s*$", re.IGNORECASE)
_PICK = re.compile(r"\s*(?:solution\s+)?\(?([AB])\)?\s*\.?\s*$", re.IGNORECASE)


def parse_grade(reply: str) -> int | None:
    """A grade from 1 to 10, and nothing else ("7", "Score: 7", "7/10"); None otherwise."""
    match = _GRADE.fullmatch(reply.strip().splitlines()[0] if reply.strip() else "")
    return int(match.group(1)) if match else None


def parse_pick(reply: str) -> str | None:
    """ "A" or "B", and nothing else; None otherwise."""
    match = _PICK.fullmatch(reply.strip().splitlines()[0] if reply.strip() else "")
    return match.group(1).upper() if match else None


class JudgeScorer(Scorer):
    name: ClassVar[str] = "judge"

    def __init__(self, mode: Literal["pointwise", "pairwise"] = "pointwise") -> None:
        self.mode = mode

    async def score(
        self, ctx: StrategyContext, candidates: Sequence[Choice], *, round: int
    ) -> list[float]:
        texts = [candidate.text for candidate in candidates]
        if self.mode == "pairwise":
            return await self._knockout(ctx, texts, round)
        replies = await one_call_each(
            ctx,
            [judge_prompt(ctx.question, text) for text in texts],
            role="judge",
            round=round,
            sampling=ctx.auxiliary_sampling(max_tokens=JUDGE_MAX_TOKENS),
            note=lambda reply: {"grade": parse_grade(reply)},
        )
        grades = [parse_grade(reply) for reply in replies]
        return [float(grade) if grade is not None else 0.0 for grade in grades]

    async def _knockout(
        self, ctx: StrategyContext, candidates: Sequence[str], round: int
    ) -> list[float]:
        """A single-elimination bracket; a candidate's score is the comparisons it won."""
        sampling = ctx.auxiliary_sampling(max_tokens=JUDGE_MAX_TOKENS)
        wins = [0.0] * len(candidates)
        alive = list(range(len(candidates)))
        while len(alive) > 1:
            pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
            with ctx.budget.parallel():
                replies = await asyncio.gather(
                    *(
                        ctx.generate(
                            ctx.chat(comparison_prompt(ctx.question, candidates[a], candidates[b])),
                            role="judge",
                            round=round,
                            sampling=sampling,
                            annotate=lambda choice: {"pick": parse_pick(choice.text)},
                        )
                        for a, b in pairs
                    )
                )
            survivors = []
            for (a, b), reply in zip(pairs, replies, strict=True):
                winner = b if parse_pick(reply.choices[0].text) == "B" else a  # unreadable: A
                wins[winner] += 1
                survivors.append(winner)
            if len(alive) % 2:
                survivors.append(alive[-1])  # a bye
            alive = survivors
        return wins


class VerifyScorer(Scorer):
    """A yes/no self-verification call per candidate (PDR's original scorer): 1 or 0."""

    name: ClassVar[str] = "verify"

    async def score(
        self, ctx: StrategyContext, candidates: Sequence[Choice], *, round: int
    ) -> list[float]:
        replies = await one_call_each(
            ctx,
            [verification_prompt(ctx.question, c.text) for c in candidates],
            role="verify",
            round=round,
            sampling=ctx.auxiliary_sampling(max_tokens=16),
            note=lambda reply: {"score": verified(reply)},
        )
        return [verified(reply) for reply in replies]


async def one_call_each(
    ctx: StrategyContext,
    prompts: Sequence[str],
    *,
    role: str,
    round: int,
    sampling: Sampling,
    note: Callable[[str], dict[str, Any]],
) -> list[str]:
    """One call per prompt, side by side in one step of the critical path; the replies."""
    with ctx.budget.parallel():
        generations = await asyncio.gather(
            *(
                ctx.generate(
                    ctx.chat(prompt),
                    role=role,
                    round=round,
                    index=i,
                    sampling=sampling,
                    annotate=lambda choice: note(choice.text),
                )
                for i, prompt in enumerate(prompts)
            )
        )
    return [generation.choices[0].text for generation in generations]


class RewardScorer(Scorer):
    name: ClassVar[str] = "reward"

    async def score(
        self, ctx: StrategyContext, candidates: Sequence[Choice], *, round: int
    ) -> list[float]:
        if ctx.reward is None:
            raise StrategyInputError(
                "the reward scorer needs a reward model; start the server with --reward-url"
            )
        texts = [f"Question: {ctx.question}\nAnswer: {c.text.strip()}" for c in candidates]
        scores, prompt_tokens = await ctx.reward.score(texts)
        if len(scores) != len(texts):
            raise StrategyInputError(
                f"the reward model gave {len(scores)} scores for {len(texts)} candidates"
            )
        generation = Generation(
            choices=tuple(Choice(f"{score:.6g}", 0, "stop") for score in scores),
            prompt_tokens=prompt_tokens,
            model="reward",
        )
        # Recorded like a call: its input tokens count, and the trace shows each score.
        ctx.budget.record(generation, role="reward", round=round, prompt="\n---\n".join(texts))
        return scores


class ConfidenceScorer(Scorer):
    name: ClassVar[str] = "confidence"
    wants_logprobs: ClassVar[bool] = True

    def __init__(
        self, method: Literal["mean", "lowest_window"] = "lowest_window", window: int = 16
    ) -> None:
        self.method = method
        self.window = window

    def prepare(self, sampling: Sampling) -> Sampling:
        return replace(sampling, logprobs=TOP_LOGPROBS)

    async def score(
        self, ctx: StrategyContext, candidates: Sequence[Choice], *, round: int
    ) -> list[float]:
        return [self.of(candidate) for candidate in candidates]

    def of(self, choice: Choice) -> float:
        if not choice.logprobs:
            return 0.0
        if self.method == "mean":
            return math.exp(sum(t.logprob for t in choice.logprobs) / len(choice.logprobs))
        tops = [t.top_values or (t.logprob,) for t in choice.logprobs]
        return lowest_window_confidence(tops, self.window)


def token_confidence(top: Sequence[float]) -> float:
    """DeepConf's token confidence: the negative mean log-probability of the top tokens."""
    return -sum(top) / len(top)


def lowest_window_confidence(tops: Sequence[Sequence[float]], window: int) -> float:
    """The lowest mean token confidence over windows of ``window`` tokens (DeepConf's
    lowest group confidence); the whole text when it is shorter than a window."""
    confidences = [token_confidence(top) for top in tops if top]
    if not confidences:
        return 0.0
    size = min(window, len(confidences))
    running = sum(confidences[:size])
    lowest = running
    for i in range(size, len(confidences)):
        running += confidences[i] - confidences[i - size]
        lowest = min(lowest, running)
    return lowest / size


def make_scorer(name: ScorerName | Literal["verify"], params: ScoringParams) -> Scorer:
    if name == "verify":
        return VerifyScorer()
    if name == "judge":
        return JudgeScorer(params.judge_mode)
    if name == "reward":
        return RewardScorer()
    return ConfidenceScorer(params.confidence_method, params.confidence_window)
