from __future__ import annotations

import pytest

from ponder.strategies.limits import Limits
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ponder.strategies.sr import SequentialRefinement, SRParams
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import by_rules, context, user_text

QUESTION = "What is 6 times 7?"
ANSWERS = [
    "The answer is 42.",
    "So 41. The answer is 41.",
    "It is $42.00. The answer is 42.",
    "The answer is 41",
    "no idea",
]


async def test_self_consistency_samples_in_one_call_and_votes() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: ANSWERS[index])
    ctx = context(engine, QUESTION)
    result = await SelfConsistency(SelfConsistencyParams(n=5)).run(ctx)
    assert len(engine.calls) == 1
    assert engine.calls[0].n == 5
    assert engine.calls[0].sampling.temperature == 0.7  # the request set none
    assert user_text(engine.calls[0].prompt) == f"Q: {QUESTION}\nA: Let's think step by step."
    assert details_json(result)["votes"] == {"42": 2, "41": 2}
    assert details_json(result)["winner"] == "42"  # a tie: the answer seen first
    assert result.answers[0].text == ANSWERS[0]
    assert [r.meta["answer"] for r in ctx.budget.records] == ["42", "41", "42", "41", None]
    usage = ctx.budget.usage()
    assert (usage.calls, usage.drafts, usage.rounds) == (1, 5, 1)


@pytest.mark.parametrize(("requested", "drafts"), [(0.0, 0.7), (None, 0.7), (1.1, 0.7)])
async def test_self_consistency_samples_at_its_own_temperature(
    requested: float | None, drafts: float
) -> None:
    engine = ScriptedEngine(script=lambda prompt, index: "The answer is 1.")
    ctx = context(engine)
    ctx.sampling = ctx.sampling.__class__(max_tokens=64, temperature=requested)
    await SelfConsistency(SelfConsistencyParams(n=2)).run(ctx)
    assert engine.calls[0].sampling.temperature == drafts
    await SelfConsistency(SelfConsistencyParams(n=2, temperature=1.0)).run(ctx)
    assert engine.calls[1].sampling.temperature == 1.0


async def test_sr_samples_its_first_draft_and_refines_as_the_request_asks() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: "The answer is 1.")
    ctx = context(engine)
    ctx.sampling = ctx.sampling.__class__(max_tokens=64, temperature=0.0)
    await SequentialRefinement(SRParams(rounds=1, error_analysis=True)).run(ctx)
    assert [call.sampling.temperature for call in engine.calls] == [0.7, 0.0, 0.0]


def test_self_consistency_temperature_above_two_is_refused() -> None:
    with pytest.raises(ValueError, match="less than or equal to 2"):
        SelfConsistencyParams(temperature=2.5)


def test_self_consistency_over_the_draft_cap_names_it() -> None:
    with pytest.raises(ValueError, match="max_drafts_per_round"):
        SelfConsistency(SelfConsistencyParams(n=20)).check_limits(Limits(), 100)
    with pytest.raises(ValueError, match="max_all_tokens"):
        SelfConsistency(SelfConsistencyParams(n=8)).check_limits(Limits(max_all_tokens=1000), 200)


async def test_sr_refines_each_round_from_the_previous_solution_only() -> None:
    solutions = iter(
        ["draft one. The answer is 40.", "second. The answer is 41.", "third. The answer is 42."]
    )
    engine = ScriptedEngine(script=lambda prompt, index: next(solutions))
    ctx = context(engine, QUESTION)
    result = await SequentialRefinement(SRParams(rounds=2)).run(ctx)
    assert [(r.role, r.round) for r in ctx.budget.records] == [
        ("draft", 1),
        ("refine", 2),
        ("refine", 3),
    ]
    third_prompt = user_text(engine.calls[2].prompt)
    assert "second. The answer is 41." in third_prompt
    assert "draft one" not in third_prompt  # only the previous solution
    assert QUESTION in third_prompt
    assert result.answers[0].answer == "42"
    usage = ctx.budget.usage()
    assert usage.sequential_tokens == usage.all_tokens  # strictly sequential


async def test_sr_with_error_analysis_puts_a_verify_call_before_each_refinement() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Find the errors", "Step 2 is wrong."), default="A solution. The answer is 42."
        )
    )
    ctx = context(engine, QUESTION)
    await SequentialRefinement(SRParams(rounds=2, error_analysis=True)).run(ctx)
    assert [r.role for r in ctx.budget.records] == ["draft", "verify", "refine", "verify", "refine"]
    assert "Errors found in it:\nStep 2 is wrong." in user_text(engine.calls[2].prompt)


def test_sr_rounds_over_the_cap_names_it() -> None:
    with pytest.raises(ValueError, match="max_rounds"):
        SequentialRefinement(SRParams(rounds=8)).check_limits(Limits(max_rounds=8), 10)
