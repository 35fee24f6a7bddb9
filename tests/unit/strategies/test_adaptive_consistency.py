"""Adaptive self-consistency: votes as samples finish, the rest cancelled once decided."""

from __future__ import annotations

import pytest

from ponder.strategies.engine import Sampling
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ponder.strategies.stopping import decided, decided_in_draw_order, majority_confidence
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
    # The fourth sample finished at its last word; the others had one word fewer each.
    cut = [full[-1] - 1] * 4
    assert [r.completion_tokens for r in records] == full + cut
    assert ctx.budget.usage().completion_tokens == sum(full) + sum(cut)


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


def confident_until(prompt: str, index: int) -> float:
    # DeepConf's token confidence is the negative mean of the top log-probabilities; the
    # scripted alternatives sit at value - 1, value - 2, ..., so -3.0 gives 5.0 (the first
    # two samples) and -0.1 gives 2.1 (the others).
    return -3.0 if index < 2 else -0.1


async def test_the_confidence_filter_cuts_unsure_samples_and_weighs_the_rest() -> None:
    engine = ScriptedEngine(
        script=lambda prompt, index: padded("42" if index < 2 else "41", 20 + 2 * index),
        token_logprob=confident_until,
    )
    ctx = context(engine)
    params = SelfConsistencyParams(n=6, confidence_filter=True, warmup=2, confidence_window=4)
    result = await SelfConsistency(params).run(ctx)
    assert [(c.kind, c.n) for c in engine.calls] == [("generate_until", 6)]
    assert engine.calls[0].sampling.logprobs  # the confidences need the top alternatives
    details = details_json(result)
    assert details["threshold"] > 0
    # The four unsure samples were cut once the warm-up had set the threshold.
    assert details["filtered"] == [2, 3, 4, 5]
    assert (details["finished"], details["cancelled"]) == (2, 4)
    assert details["votes"] == {"42": 2}
    assert set(details["weights"]) == {"42"}
    cut = [r.completion_tokens for r in ctx.budget.records[2:]]
    assert all(0 < tokens < count_words(padded("41", 20 + 2 * 5)) for tokens in cut)


async def test_a_sure_sample_after_the_warmup_keeps_its_vote() -> None:
    engine = ScriptedEngine(
        script=lambda prompt, index: padded("7", 10 + index), token_logprob=lambda p, i: -0.2
    )
    params = SelfConsistencyParams(n=4, confidence_filter=True, warmup=2, confidence_window=4)
    details = details_json(await SelfConsistency(params).run(context(engine)))
    assert "filtered" not in details or details["filtered"] == []
    assert details["votes"] == {"7": 4}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"confidence_filter": True, "adaptive": True}, "adaptive stops on plain votes"),
        ({"confidence_filter": True, "scorer": "judge"}, "confidence scorer"),
        ({"confidence_filter": True, "n": 2, "warmup": 2}, "must be below n"),
    ],
)
def test_confidence_filter_parameters_are_checked(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelfConsistencyParams.model_validate(params)


async def test_waves_start_only_while_the_vote_is_open() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: padded("42", 10 + index))
    ctx = context(engine)
    params = SelfConsistencyParams(n=8, adaptive=True, wave=4)
    details = details_json(await SelfConsistency(params).run(ctx))
    # Four agreeing votes decide it as the first wave ends: the second never starts.
    assert [(call.kind, call.n) for call in engine.calls] == [("generate_until", 4)]
    assert (details["stopped"], details["finished"], details["cancelled"]) == ("confident", 4, 0)
    assert details["waves"] == 1
    assert len(ctx.budget.records) == 4


async def test_an_open_vote_starts_the_next_wave_with_its_own_seed() -> None:
    engine = ScriptedEngine(script=lambda prompt, index: padded(str(index % 2), 3 + index))
    ctx = context(engine, sampling=Sampling(max_tokens=256, seed=7))
    params = SelfConsistencyParams(n=6, adaptive=True, wave=2)
    details = details_json(await SelfConsistency(params).run(ctx))
    # Each wave splits 1-1: every wave runs, and none draws another's samples again.
    assert [(call.kind, call.n) for call in engine.calls] == [("generate_until", 2)] * 3
    assert [call.sampling.seed for call in engine.calls] == [7, 9, 11]
    assert (details["finished"], details["cancelled"], details["waves"]) == (6, 0, 3)
    assert details["votes"] == {"0": 3, "1": 3}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"wave": 2}, "wave paces adaptive sampling"),
        ({"adaptive": True, "n": 4, "wave": 5}, r"wave \(5\) must be at most n \(4\)"),
    ],
)
def test_a_wave_needs_adaptive_and_fits_in_n(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelfConsistencyParams.model_validate(params)


async def test_the_first_to_finish_do_not_decide_for_the_samples_drawn_before_them() -> None:
    # Samples 4-7 are short and agree; 0-3 are long and agree on another answer. Judged in
    # the order they finish, the four short ones would stop the run with their answer.
    engine = ScriptedEngine(
        script=lambda prompt, index: padded("5", 2 + index) if index >= 4 else padded("42", 30)
    )
    ctx = context(engine)
    details = details_json(
        await SelfConsistency(SelfConsistencyParams(n=8, adaptive=True)).run(ctx)
    )
    assert "stopped" not in details  # the first drawn finished last: nothing left to save
    assert details["votes"] == {"42": 4, "5": 4}
    assert engine.cancelled == 0


def test_the_beta_criterion_reads_samples_in_draw_order() -> None:
    assert decided_in_draw_order({4: "5", 5: "5", 6: "5", 7: "5"}, 8, 0.95) is None
    assert decided_in_draw_order({0: "4", 1: "4", 2: "4", 3: "4", 6: "9"}, 8, 0.95) == "confident"
    assert decided_in_draw_order({3: "5", 4: "5", 5: "5", 6: "5", 7: "5"}, 8, 0.95) == "unbeatable"
