"""Running a strategy for a request without a gateway: n answers, usage, limits."""

from __future__ import annotations

import pytest

from ponder.strategies.budget import Budget
from ponder.strategies.cot import Cot, CotParams
from ponder.strategies.direct import Direct, DirectParams
from ponder.strategies.engine import Sampling
from ponder.strategies.limits import Limits, OverCap
from ponder.strategies.runs import run_strategy
from ponder.strategies.testing import ScriptedEngine
from tests.unit.strategies.scripts import context


async def test_n_answers_by_independent_runs_add_up_as_parallel_work() -> None:
    engine = ScriptedEngine(script=lambda prompt, i: "so the answer is 4.")
    run = await run_strategy(
        Cot(CotParams()), ["What is 2+2?"], engine=engine, sampling=Sampling(max_tokens=16), n=3
    )
    assert len(run.answers) == 3
    assert [a.answer for a in run.answers] == ["4", "4", "4"]
    assert len(engine.calls) == 3  # one rationale each, no extraction needed
    one_run = run.records[0].tokens
    assert run.usage.all_tokens == 3 * one_run
    assert run.usage.sequential_tokens == one_run  # side by side: the longest run's path


async def test_a_strategy_that_answers_n_is_one_batched_call_per_prompt() -> None:
    engine = ScriptedEngine()
    run = await run_strategy(
        Direct(DirectParams()), ["a", "b"], engine=engine, sampling=Sampling(max_tokens=8), n=2
    )
    assert [call.n for call in engine.calls] == [2, 2]
    assert [a.text.split(" to: ")[1] for a in run.answers] == ["a", "a", "b", "b"]


async def test_caps_are_checked_before_any_call() -> None:
    engine = ScriptedEngine()
    with pytest.raises(OverCap, match="max_n"):
        await run_strategy(
            Direct(DirectParams()),
            ["a"],
            engine=engine,
            sampling=Sampling(max_tokens=8),
            n=5,
            limits=Limits(max_n=4),
        )
    assert engine.calls == []


async def test_every_call_holds_to_the_per_call_cap_and_to_what_is_left() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: "one two three four five")
    ctx = context(engine)
    ctx.limits = Limits(max_tokens_per_call=300)
    ctx.budget = Budget(max_all_tokens=60)
    ctx.sampling = Sampling(max_tokens=1000)
    await ctx.generate("a b c d e", role="draft", round=1)  # 5 + 5 tokens spent
    assert engine.calls[0].sampling.max_tokens == 60  # what the request had left
    await ctx.generate("a b c d e", role="draft", round=1, n=2)
    assert engine.calls[1].sampling.max_tokens == 50 // 2  # shared by the two samples
    ctx.budget = Budget(max_all_tokens=None)
    await ctx.generate("a", role="draft", round=1)
    assert engine.calls[2].sampling.max_tokens == 300  # the server's per-call cap
