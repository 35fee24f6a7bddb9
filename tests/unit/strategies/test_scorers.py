"""The scorers and the strategies that use them: which calls, which choice, what is traced."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.strategies.engine import Choice
from ponder.strategies.pdr import PDR, PDRParams
from ponder.strategies.scorers import (
    ConfidenceScorer,
    JudgeScorer,
    lowest_window_confidence,
    parse_grade,
    parse_pick,
)
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import by_rules, context


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("7", 7),
        (" 10.", 10),
        ("Score: 3", 3),
        ("8/10", 8),
        ("7 because it is right", None),
        ("eleven", None),
        ("", None),
        ("0", None),
    ],
)
def test_grades_are_parsed_strictly(reply: str, grade: int | None) -> None:
    assert parse_grade(reply) == grade


def test_picks_are_parsed_strictly() -> None:
    assert [parse_pick(r) for r in ("A", " b.", "(B)", "Solution A", "AB", "maybe A")] == [
        "A",
        "B",
        "B",
        "A",
        None,
        None,
    ]


def test_deepconf_lowest_window_is_the_least_confident_stretch() -> None:
    sure, unsure = [0.0, -8.0], [-1.0, -1.5]  # peaked, then flat, top-2 log-probabilities
    tops: list[Sequence[float]] = [*[sure] * 6, *[unsure] * 2, *[sure] * 6]
    whole = lowest_window_confidence(tops, window=100)
    assert lowest_window_confidence(tops, window=2) == pytest.approx(1.25)
    assert lowest_window_confidence(tops, window=2) < whole
    assert lowest_window_confidence([], window=4) == 0.0


def grades(prompt: str, index: int) -> str:
    if "Grade the proposed solution" not in prompt:
        return f"Solution {index}: The answer is {index}."
    return "9" if "Solution 2:" in prompt else ("bad reply" if "Solution 0:" in prompt else "4")


async def test_best_of_n_judge_grades_each_sample_in_one_step_and_takes_the_best() -> None:
    engine = ScriptedEngine(script=grades)
    ctx = context(engine)
    result = await BestOfN(BestOfNParams(n=3)).run(ctx)
    assert [c.n for c in engine.calls] == [3, 1, 1, 1]  # one batched call, then the judge
    assert engine.calls[0].sampling.temperature == 0.7
    assert {c.sampling.temperature for c in engine.calls[1:]} == {0.0}
    assert {c.sampling.max_tokens for c in engine.calls[1:]} == {8}
    assert result.answers[0].answer == "2"
    assert details_json(result) == {"scorer": "judge", "scores": [0.0, 4.0, 9.0], "chosen": 2}
    judge_steps = {r.step for r in ctx.budget.records if r.role == "judge"}
    assert len(judge_steps) == 1  # side by side: one step of the critical path
    assert [r.meta.get("grade") for r in ctx.budget.records if r.role == "judge"] == [None, 4, 9]


async def test_pairwise_judge_is_a_knockout() -> None:
    def script(prompt: str, index: int) -> str:
        if "Which solution is more likely correct?" in prompt:
            return "B" if "Solution A:\nSolution 0" in prompt else "A"
        return f"Solution {index}"

    engine = ScriptedEngine(script=script)
    ctx = context(engine)
    scores = await JudgeScorer("pairwise").score(
        ctx, (await ctx.generate("q", role="draft", round=1, n=4)).choices, round=1
    )
    # 0-1: B wins (1); 2-3: A wins (2); final 1-2: A wins (1).
    assert scores == [0.0, 2.0, 1.0, 0.0]
    assert len(engine.calls) == 1 + 3


async def test_confidence_scores_the_samples_own_logprobs() -> None:
    engine = ScriptedEngine(
        script=lambda p, i: f"The answer is {i}.", token_logprob=lambda p, i: [-2.0, -0.1][i]
    )
    ctx = context(engine)
    result = await BestOfN(BestOfNParams(n=2, scorer="confidence", confidence_method="mean")).run(
        ctx
    )
    assert engine.calls[0].sampling.logprobs == 5
    assert len(engine.calls) == 1  # no call to score
    assert result.answers[0].answer == "1"
    assert details_json(result)["scores"] == [round(math.exp(-2.0), 6), round(math.exp(-0.1), 6)]
    assert ConfidenceScorer().of(Choice("no logprobs asked", 3)) == 0.0


class FixedReward:
    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.texts: list[str] = []

    async def score(self, texts: Sequence[str]) -> tuple[list[float], int]:
        self.texts = list(texts)
        return self.scores[: len(texts)], 10 * len(texts)


async def test_reward_scores_come_from_the_reward_model_and_are_billed() -> None:
    engine = ScriptedEngine(script=lambda p, i: f"The answer is {i}.")
    reward = FixedReward([0.2, 0.9, 0.5])
    ctx = context(engine, reward=reward)
    result = await BestOfN(BestOfNParams(n=3, scorer="reward")).run(ctx)
    assert result.answers[0].answer == "1"
    assert reward.texts[1].startswith("Question: What is 6 times 7?\nAnswer: The answer is 1.")
    scored = [r for r in ctx.budget.records if r.role == "reward"]
    assert [r.output for r in scored] == ["0.2", "0.9", "0.5"]
    assert ctx.budget.usage().prompt_tokens >= 30


async def test_reward_without_a_model_is_an_input_error() -> None:
    with pytest.raises(ValueError, match="--reward-url"):
        await BestOfN(BestOfNParams(n=2, scorer="reward")).run(context(ScriptedEngine()))


async def test_weighted_self_consistency_lets_confident_samples_outvote() -> None:
    answers = ["The answer is 5.", "The answer is 5.", "The answer is 7."]
    engine = ScriptedEngine(
        script=lambda p, i: answers[i], token_logprob=lambda p, i: [-3.0, -3.0, -0.01][i]
    )
    plain = await SelfConsistency(SelfConsistencyParams(n=3)).run(context(engine))
    weighted = await SelfConsistency(
        SelfConsistencyParams(n=3, weighted=True, confidence_method="mean")
    ).run(context(engine))
    assert plain.answers[0].answer == "5"
    assert weighted.answers[0].answer == "7"  # exp(-0.01) > 2 * exp(-3)
    assert details_json(weighted)["weights"]["7"] > details_json(weighted)["weights"]["5"]


async def test_pdr_top_k_ranks_drafts_with_the_judge() -> None:
    def script(prompt: str, index: int) -> str:
        if "Grade the proposed solution" in prompt:
            return "9" if "Attempt 3" in prompt else "2"
        return f"Attempt {index}. The answer is {index}."

    engine = ScriptedEngine(script=by_rules(default=script))
    ctx = context(engine)
    result = await PDR(PDRParams(schedule=[4, 1], distill="shared_top_k", k=1, scorer="judge")).run(
        ctx
    )
    assert details_json(result)["rounds"][0]["selections"] == [[3]]
    assert sum(1 for r in ctx.budget.records if r.role == "judge") == 4
