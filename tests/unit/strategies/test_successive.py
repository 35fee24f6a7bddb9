from __future__ import annotations

import json
from pathlib import Path

from ponder.strategies.demos import Resources
from ponder.strategies.successive import Successive, SuccessiveParams, is_stop, sub_question
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import by_rules, context, user_text

QUESTION = "Tom has 3 boxes of 4 pens and gives away 2 pens. How many are left?"


def decomposer(stop_after: int):  # type: ignore[no-untyped-def]
    def reply(prompt: str, index: int) -> str:
        asked = prompt.count("\nA")  # answered sub-questions so far
        if asked >= stop_after:
            return "There are no more questions left to ask."
        return f"Q{asked + 1}: Sub-question number {asked + 1}?"

    return reply


async def test_questions_accumulate_until_the_stop_signal() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Write only the next simple question", decomposer(2)),
            ("Answer the next simple question", lambda p, i: "12\nextra line"),
            default="So 10 are left. The answer is 10.",
        )
    )
    ctx = context(engine, QUESTION)
    result = await Successive(SuccessiveParams(max_steps=5)).run(ctx)
    roles = [(r.role, r.round) for r in ctx.budget.records]
    assert roles == [
        ("decompose", 1),
        ("answer", 1),
        ("decompose", 2),
        ("answer", 2),
        ("decompose", 3),
        ("answer", 3),
    ]
    third = user_text(engine.calls[4].prompt)
    assert third.endswith(
        f"Complex question: {QUESTION}\nQ1: Sub-question number 1?\nA1: 12\n"
        "Q2: Sub-question number 2?\nA2: 12"
    )
    assert "There are no more questions left to ask." in third
    assert details_json(result)["stopped_by_signal"] is True
    assert len(details_json(result)["pairs"]) == 2
    assert result.answers[0].answer == "10"


async def test_max_steps_bounds_the_decomposition() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Write only the next simple question", decomposer(100)), default="The answer is 10."
        )
    )
    ctx = context(engine, QUESTION)
    result = await Successive(SuccessiveParams(max_steps=3)).run(ctx)
    assert sum(1 for r in ctx.budget.records if r.role == "decompose") == 3
    assert details_json(result)["stopped_by_signal"] is False
    assert user_text(engine.calls[-1].prompt).startswith(f"Complex question: {QUESTION}\nQ1:")


async def test_decompositions_configured_on_the_server_are_shown(tmp_path: Path) -> None:
    demos = tmp_path / "decompositions.jsonl"
    demos.write_text(
        json.dumps(
            {
                "question": "How old is Ann's father?",
                "steps": [["Who is Ann's father?", "Bob"], ["How old is Bob?", "50"]],
            }
        )
        + "\n"
    )
    engine = ScriptedEngine(
        script=by_rules(
            ("Write only the next simple question", "There are no more questions left to ask."),
            default="The answer is 10.",
        )
    )
    ctx = context(engine, QUESTION, resources=Resources(decompositions=demos))
    await Successive(SuccessiveParams()).run(ctx)
    first = user_text(engine.calls[0].prompt)
    assert (
        "Complex question: How old is Ann's father?\nQ1: Who is Ann's father?\nA1: Bob\n"
        "Q2: How old is Bob?\nA2: 50\nThere are no more questions left to ask."
    ) in first


def test_signal_and_label_parsing() -> None:
    assert is_stop("there are no more  questions left to ask")
    assert not is_stop("Q2: How many more questions?")
    assert sub_question("Q3: How many pens?\nA3:") == "How many pens?"
    assert sub_question("  \nQuestion 2: Why?") == "Why?"
