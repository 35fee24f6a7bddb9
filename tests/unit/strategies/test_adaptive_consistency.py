"""Adaptive self-consistency: votes as samples finish, the rest cancelled once decided."""

from __future__ import annotations

import pytest

from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ponder.strategies.stopping import decided, majority_confidence
from ponder.strategies.testing import ScriptedEngine, count_words, details_json
from tests.unit.strategies.scripts import context


def padded(answer: str, words: int) -> str:
    """A rationale of ``words`` filler words, then the answer (longer: finishes later)."""
    return " ".join(["so"] * words) + f" The answer is {answer}."


def test_the_beta_criterion_is_exact() -> None:
    assert majority_confidence(0, 0) == 0.5
    assert majority_confidence(3, 0) == 1 - 0.5**4
    assert majority_confidence(2, 1) == pytest.approx(0.6875)  # Beta(3, 2) past one half
    assert decided(["4", "4", "4", "4"], 4, 0.95) == "confident"
    assert decided(["4", "4", "4"], 5, 0.95) is None
    assert decided(["4", "4", "4", "5", None], 1, 0.99) == "unbeatable"
    assert decided(["4", "4", "5", None], 1, 0.99) is None  # a tie is still possible
    assert decided([None, None], 6, 0.95) is None


async def test_agreeing_samples_stop_the_run_and_cancel_the_rest() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: padded("42", 10 + index))
    ctx = context(engine)
    result = await SelfConsistency(SelfConsistencyParams(n=8, adaptive=True)).run(ctx)
    assert [(call.kind, call.n) for call in engine.calls] == [("generate_until", 8)]
    details = details_json(result)
    # Four agreeing votes: P(majority) = 1 - 0.5**5 >= 0.95.
    assert (details["stopped"], details["finished"], details["cancelled"]) == ("confident", 4, 4)
    assert details["votes"] == {"42": 4}
    assert engine.cancelled == 4
    records = ctx.budget.records
    assert [r.meta["answer"] for r in records[4:]] == [None] * 4  # cut short: no vote
    full = [count_words(padded("42", 10 + i)) for i in range(4)]
    halves = [count_words(padded("42", 10 + i)) // 2 for i in range(4, 8)]
    assert ctx.budget.usage().completion_tokens == sum(full) + sum(halves)


async def test_a_split_vote_runs_every_sample() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: padded(str(index % 4), 5 + index))
    ctx = context(engine)
    result = await SelfConsistency(SelfConsistencyParams(n=8, adaptive=True)).run(ctx)
    details = details_json(result)
    assert "stopped" not in details  # every sample finished
    assert (details["finished"], details["cancelled"]) == (8, 0)
    assert engine.cancelled == 0


async def test_a_leader_nobody_can_catch_stops_the_run() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: padded("7", 3 + index))
    ctx = context(engine)
    params = SelfConsistencyParams(n=3, adaptive=True, confidence=0.99)
    details = details_json(await SelfConsistency(params).run(ctx))
    assert (details["stopped"], details["finished"], details["cancelled"]) == ("unbeatable", 2, 1)


def test_adaptive_weighted_votes_are_refused() -> None:
    with pytest.raises(ValueError, match="adaptive stops on plain votes"):
        SelfConsistencyParams(adaptive=True, weighted=True)
