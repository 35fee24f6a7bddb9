"""cot and plan_and_solve: the triggers verbatim, and the answer-extraction stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.strategies import prompts
from ponder.strategies.base import StrategyInputError
from ponder.strategies.cot import Cot, CotParams
from ponder.strategies.demos import Demo, Resources, UnknownResource
from ponder.strategies.engine import Sampling
from ponder.strategies.plan_and_solve import PlanAndSolve, PlanAndSolveParams
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import by_rules, context, user_text

QUESTION = "What is 6 times 7?"


async def test_zero_shot_cot_with_a_stated_answer_makes_one_call() -> None:
    engine = ScriptedEngine(script=by_rules(default="6 times 7 is 42. The answer is 42."))
    ctx = context(engine, QUESTION)
    result = await Cot(CotParams()).run(ctx)
    assert len(engine.calls) == 1
    assert user_text(engine.calls[0].prompt) == f"Q: {QUESTION}\nA: Let's think step by step."
    assert engine.calls[0].prompt.startswith("system: Be brief.\nuser: ")
    assert result.answers[0].answer == "42"
    assert ctx.budget.records[0].meta == {"answer": "42"}


async def test_zero_shot_cot_without_an_answer_adds_the_extraction_call() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Therefore, the answer (arabic numerals) is", " 42."),
            default="Six sevens make forty-two",
        )
    )
    ctx = context(engine, QUESTION)
    result = await Cot(CotParams()).run(ctx)
    assert [c.kind for c in engine.calls] == ["generate", "generate"]
    second = user_text(engine.calls[1].prompt)
    assert second == (
        f"Q: {QUESTION}\nA: Let's think step by step. Six sevens make forty-two\n"
        "Therefore, the answer (arabic numerals) is"
    )
    assert engine.calls[1].sampling.max_tokens == 32
    answer = result.answers[0]
    assert answer.answer == "42"
    assert answer.text == (
        "Six sevens make forty-two\n\nTherefore, the answer (arabic numerals) is 42."
    )
    usage = ctx.budget.usage()
    assert usage.calls == 2
    assert [r.role for r in ctx.budget.records] == ["draft", "extract"]
    assert usage.sequential_tokens == usage.all_tokens  # two steps, one after the other


async def test_a_statement_with_no_answer_in_it_is_extracted_in_the_format() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Therefore, among A through E, the answer is", " (C), because 3 and 4 fail."),
            default="Options 3 and 4 look close. The answer is not obvious yet.",
        )
    )
    ctx = context(engine, QUESTION)
    result = await Cot(CotParams(answer_format="choice")).run(ctx)
    assert len(engine.calls) == 2  # "not obvious yet" is no answer: the second stage ran
    assert engine.calls[1].sampling.temperature == 0.0  # extraction is greedy
    assert result.answers[0].answer == "c"
    assert ctx.budget.records[-1].meta == {"answer": "c"}


@pytest.mark.parametrize(
    ("answer_format", "trigger"),
    [
        ("yes_no", "Therefore, the answer (Yes or No) is"),
        ("choice", "Therefore, among A through E, the answer is"),
        ("free", "Therefore, the answer is"),
    ],
)
async def test_the_extraction_trigger_fits_the_answer_format(
    answer_format: str, trigger: str
) -> None:
    engine = ScriptedEngine(script=by_rules(default="hmm"))
    await Cot(CotParams(answer_format=answer_format)).run(context(engine))
    assert user_text(engine.calls[1].prompt).endswith(trigger)


async def test_few_shot_inline_demos_come_first_in_autocots_format() -> None:
    engine = ScriptedEngine(script=by_rules(default="The answer is 42."))
    demos = [
        Demo(question="What is 1+1?", rationale="One and one is two.", answer="2"),
        Demo(question="What is 2+2?", rationale="Two and two.", answer="4"),
    ]
    await Cot(CotParams(mode="few_shot", demos=demos, n_demos=1)).run(context(engine, QUESTION))
    assert user_text(engine.calls[0].prompt) == (
        "Q: What is 1+1?\nA: Let's think step by step. One and one is two. The answer is 2."
        f"\n\nQ: {QUESTION}\nA: Let's think step by step."
    )


async def test_few_shot_demo_sets_are_named_not_given_as_paths(tmp_path: Path) -> None:
    demo_file = tmp_path / "demos.jsonl"
    demo_file.write_text(json.dumps({"question": "Q1?", "rationale": "R.", "answer": "1"}) + "\n")
    engine = ScriptedEngine(script=by_rules(default="The answer is 42."))
    ctx = context(engine, resources=Resources(demo_sets={"gsm": demo_file}))
    result = await Cot(CotParams(mode="few_shot", demos="gsm")).run(ctx)
    assert user_text(engine.calls[0].prompt).startswith("Q: Q1?\nA: Let's think step by step. R.")
    assert details_json(result) == {"demos": 1}
    with pytest.raises(StrategyInputError, match="unknown demo set 'other'"):
        await Cot(CotParams(mode="few_shot", demos="other")).run(ctx)


def test_modes_need_their_inputs() -> None:
    with pytest.raises(ValueError, match="needs demos"):
        CotParams(mode="few_shot")
    with pytest.raises(ValueError, match="needs pool"):
        CotParams(mode="auto")


async def test_auto_cot_clusters_filters_and_caches(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    questions = [
        "How many apples are in 3 bags of 4 apples?",
        "How many apples are in 5 bags of 2 apples?",
        "A train goes 60 km per hour for 2 hours. How far does it go?",
        "A car goes 50 km per hour for 3 hours. How far does it go?",
        "word " * 80,  # over 60 tokens: never a demo
    ]
    pool.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions))

    def rationale(prompt: str, index: int) -> str:
        if "60 km" in prompt:  # more than 5 steps: filtered out
            return "\n".join(f"Step {i}." for i in range(7)) + "\nThe answer is 120."
        return "Multiply the two numbers. The answer is 12."

    engine = ScriptedEngine(script=by_rules((QUESTION, "The answer is 42."), default=rationale))
    resources = Resources(question_pools={"math": pool}, cache_dir=tmp_path / "cache")
    ctx = context(engine, QUESTION, resources=resources)
    ctx.sampling = Sampling(max_tokens=256, temperature=1.3, extra={"grammar": 'root ::= "666"'})
    result = await Cot(CotParams(mode="auto", pool="math", n_demos=2)).run(ctx)
    demo_calls = [r for r in ctx.budget.records if r.role == "demo"]
    assert demo_calls, "demonstrations were built with engine calls"
    assert details_json(result)["demos"] == 2
    final_prompt = user_text(engine.calls[-1].prompt)
    assert final_prompt.count("A: Let's think step by step.") == 3  # 2 demos + the question
    assert "60 km" not in final_prompt  # its rationale had too many steps
    assert "word word" not in final_prompt
    cached = list((tmp_path / "cache" / "autocot").glob("*.json"))
    assert len(cached) == 1
    # Shared by every later user: built from the operator's configuration alone, not from
    # the first requester's system prompt, sampling or engine fields.
    demos_asked = [c for c in engine.calls if c.prompt.startswith("user: Q: How many apples")]
    assert demos_asked
    assert all(c.sampling.temperature == 0.0 and not c.sampling.extra for c in demos_asked)
    assert all("Be brief." not in c.prompt for c in demos_asked)
    # A second request reads the cache: no demo calls.
    again = context(engine, QUESTION, resources=resources)
    await Cot(CotParams(mode="auto", pool="math", n_demos=2)).run(again)
    assert [r.role for r in again.budget.records] == ["draft"]


@pytest.mark.parametrize(
    ("variant", "trigger"), [("ps", prompts.PS_TRIGGER), ("ps_plus", prompts.PS_PLUS_TRIGGER)]
)
async def test_plan_and_solve_triggers_are_the_authors(variant: str, trigger: str) -> None:
    engine = ScriptedEngine(script=by_rules(default="Plan: multiply. The answer is 42."))
    await PlanAndSolve(PlanAndSolveParams(variant=variant)).run(context(engine, QUESTION))
    assert user_text(engine.calls[0].prompt) == f"Q: {QUESTION}\nA: {trigger}"


def test_trigger_texts_verbatim() -> None:
    assert prompts.PS_TRIGGER == (
        "Let's first understand the problem and devise a plan to solve the problem. "
        "Then, let's carry out the plan to solve the problem step by step."
    )
    assert prompts.PS_PLUS_TRIGGER == (
        "Let's first understand the problem, extract relevant variables and their corresponding "
        "numerals, and devise a plan. Then, let's carry out the plan, calculate intermediate "
        "variables (pay attention to correct numeral calculation and commonsense), solve the "
        "problem step by step, and show the answer."
    )
    assert prompts.COT_TRIGGER == "Let's think step by step."


async def test_auto_cot_clusters_the_engines_embeddings_when_it_has_them(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"question": f"Question {i}?"}) + "\n" for i in range(6)))

    embedded: list[str] = []

    class EmbeddingEngine(ScriptedEngine):
        async def embed(self, texts: list[str]) -> list[list[float]] | None:
            embedded.extend(texts)
            # Two obvious clusters: questions 0-2 and 3-5.
            return [[0.0, float(i)] if i < 3 else [100.0, float(i)] for i in range(len(texts))]

    engine = EmbeddingEngine(script=by_rules(default="Add them. The answer is 3."))
    ctx = context(engine, QUESTION, resources=Resources(question_pools={"p": pool}))
    result = await Cot(CotParams(mode="auto", pool="p", n_demos=2)).run(ctx)
    assert len(embedded) == 6
    assert details_json(result)["demos"] == 2
    demo_questions = [r.prompt for r in ctx.budget.records if r.role == "demo"]
    assert any("Question 1?" in p for p in demo_questions)  # the centre of 0-2
    assert any("Question 4?" in p for p in demo_questions)  # the centre of 3-5


def test_operator_files_are_parsed_once_per_version(tmp_path: Path) -> None:
    demo_file = tmp_path / "demos.jsonl"
    row = {"question": "1+1?", "rationale": "One and one.", "answer": "2"}
    demo_file.write_text(json.dumps(row) + "\n")
    resources = Resources(demo_sets={"gsm": demo_file})
    first = resources.demos("gsm")
    assert resources.demos("gsm") is first  # not read again
    demo_file.write_text(json.dumps(row) + "\n" + json.dumps({**row, "answer": "two"}) + "\n")
    assert [d.answer for d in resources.demos("gsm")] == ["2", "two"]  # the file changed
    with pytest.raises(UnknownResource, match="known: gsm"):
        resources.demos("math")
