"""PDR and SR skip the rounds left once the answer is settled (early_exit)."""

from __future__ import annotations

from ponder.strategies.pdr import PDR, PDRParams
from ponder.strategies.sr import SequentialRefinement, SRParams
from ponder.strategies.stopping import agreed
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import context


def test_agreement_needs_every_answer_and_one_value() -> None:
    assert agreed(["4", "4"]) == "4"
    assert agreed(["4", "5"]) is None
    assert agreed(["4", None]) is None
    assert agreed([]) is None


async def test_pdr_stops_after_a_round_whose_drafts_agree() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: f"Work {index}. The answer is 42.")
    ctx = context(engine)
    params = PDRParams(schedule=[4, 2, 1], early_exit=True)
    result = await PDR(params).run(ctx)
    assert [(c.kind, c.n) for c in engine.calls] == [("generate", 4)]  # no distill, no round 2
    details = details_json(result)
    assert (details["stopped_after_round"], details["agreed_answer"]) == (1, "42")
    assert result.answers[0].answer == "42"


async def test_pdr_runs_every_round_when_drafts_differ_or_early_exit_is_off() -> None:
    differ = ScriptedEngine(script=lambda prompt, index: f"The answer is {index}.")
    await PDR(PDRParams(schedule=[3, 1], early_exit=True)).run(context(differ))
    assert [c.n for c in differ.calls] == [3, 1, 1]  # drafts, distill, last draft
    agree = ScriptedEngine(script=lambda prompt, index: "The answer is 42.")
    result = await PDR(PDRParams(schedule=[3, 1])).run(context(agree))
    assert len(agree.calls) == 3
    assert "stopped_after_round" not in details_json(result)


async def test_sr_stops_once_a_refinement_keeps_the_answer() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: "The answer is 7.")
    ctx = context(engine)
    result = await SequentialRefinement(SRParams(rounds=4, early_exit=True)).run(ctx)
    assert [r.role for r in ctx.budget.records] == ["draft", "refine"]
    assert details_json(result) == {"stopped_after_round": 2, "agreed_answer": "7"}


async def test_sr_refines_on_while_the_answer_changes() -> None:
    answers = iter(["The answer is 1.", "The answer is 2.", "The answer is 3."])
    engine = ScriptedEngine(script=lambda prompt, index: next(answers))
    ctx = context(engine)
    result = await SequentialRefinement(SRParams(rounds=2, early_exit=True)).run(ctx)
    assert [r.role for r in ctx.budget.records] == ["draft", "refine", "refine"]
    assert result.details is None
