"""PDR's call graph, budget arithmetic, workspace bound, and operators."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ponder.strategies.engine import EngineError, Generation, Prompt, Sampling
from ponder.strategies.limits import Limits
from ponder.strategies.pdr import PDR, PDRParams
from ponder.strategies.testing import ScriptedEngine, details_json
from tests.unit.strategies.scripts import by_rules, context, user_text

QUESTION = "What is 6 times 7?"
LONG_SUMMARY = " ".join(f"Fact {i} is that the product is forty two." for i in range(40))


def drafts_by_index(prompt: str, index: int) -> str:
    return f"Attempt {index}: 6 times 7. The answer is {42 if index % 2 == 0 else 41}."


def engine_for_summary(summary: str = "Most attempts say 42.") -> ScriptedEngine:
    return ScriptedEngine(
        script=by_rules(("Write a concise summary", summary), default=drafts_by_index)
    )


async def test_pdr_421_with_global_summary() -> None:
    engine = engine_for_summary()
    ctx = context(engine, QUESTION)
    result = await PDR(PDRParams(schedule=[4, 2, 1], workspace_tokens=64)).run(ctx)
    records = ctx.budget.records
    assert [(c.kind, c.n) for c in engine.calls] == [
        ("generate", 4),
        ("generate", 1),
        ("generate", 2),
        ("generate", 1),
        ("generate", 1),
    ]
    drafts_per_round = [
        sum(1 for r in records if r.role == "draft" and r.round == k) for k in (1, 2, 3)
    ]
    assert drafts_per_round == [4, 2, 1]
    assert [(r.role, r.round) for r in records if r.role == "distill"] == [
        ("distill", 1),
        ("distill", 2),
    ]
    usage = ctx.budget.usage()
    assert (usage.calls, usage.rounds, usage.drafts) == (5, 3, 7)
    assert usage.all_tokens == sum(r.prompt_tokens + r.completion_tokens for r in records)
    by_step: dict[int, int] = {}
    for r in records:
        by_step[r.step] = max(by_step.get(r.step, 0), r.tokens)
    assert usage.sequential_tokens == sum(by_step.values())
    assert len(by_step) == 5  # drafts, distill, drafts, distill, final
    assert result.answers[0].answer in {"42", "41"}


async def test_round_prompts_read_only_the_latest_workspace() -> None:
    summaries = iter(["Summary A: 42 is likely.", "Summary B: check 41."])
    engine = ScriptedEngine(
        script=by_rules(
            ("Write a concise summary", lambda p, i: next(summaries)), default=drafts_by_index
        )
    )
    await PDR(PDRParams(schedule=[3, 2, 1])).run(context(engine, QUESTION))
    round1, round2, round3 = (user_text(engine.calls[i].prompt) for i in (0, 2, 4))
    assert "Notes from earlier attempts" not in round1  # round 1: an empty workspace
    assert "Summary A" in round2
    assert "Summary B" in round3
    assert "Summary A" not in round3  # rebuilt, not accumulated
    assert "Attempt 0" not in round3  # drafts reach later rounds only through the workspace
    summary_prompt = user_text(engine.calls[1].prompt)
    assert summary_prompt.count("### Attempt") == 3


def long_draft(index: int) -> str:
    steps = " ".join(f"Step {n} of attempt {index} adds more words." for n in range(30))
    return f"Attempt {index} reads the problem. {steps} So the answer is {40 + index}."


async def test_every_kept_draft_and_its_answer_reach_the_next_round_within_the_bound() -> None:
    # The case: 4 drafts of ~300 words, k=2 kept, a 256-token workspace; before the
    # fix the next round read the first 256 tokens of one draft and no answer at all.
    engine = ScriptedEngine(script=lambda prompt, index: long_draft(index))
    ctx = context(engine, QUESTION)
    result = await PDR(
        PDRParams(schedule=[4, 1], distill="shared_top_k", k=2, workspace_tokens=256)
    ).run(ctx)
    final_prompt = user_text(engine.calls[-1].prompt)
    notes = final_prompt.split("(they may contain errors):\n", 1)[1].split("\n\nUsing what", 1)[0]
    assert len(notes.split()) <= 256  # the scripted engine counts words as tokens
    assert notes.count("### Attempt") == 2
    assert "So the answer is 40." in notes
    assert "So the answer is 41." in notes
    assert notes.count("tokens elided ...]") == 2
    note = ctx.budget.records[-1].meta["workspace"]
    assert note["tokens"] <= 256
    assert note["cut"]["at"] == "per-draft"
    assert [cut["at"] for cut in note["draft_cuts"]] == ["middle", "middle"]
    assert all(cut["kept_tokens"] <= 128 for cut in note["draft_cuts"])
    assert details_json(result)["rounds"][0]["workspaces"] == [note]


def test_a_workspace_too_small_for_k_conclusions_names_the_smallest_workable() -> None:
    with pytest.raises(ValueError, match="smallest workable workspace_tokens is 144"):
        PDRParams(schedule=[4, 1], distill="shared_top_k", k=3, workspace_tokens=100)
    PDRParams(schedule=[4, 1], distill="global_summary", workspace_tokens=100)  # no k there


async def test_the_summary_reads_every_draft_within_its_input_bound() -> None:
    engine = engine_for_summary("The drafts agree on 41.")
    engine.script = by_rules(
        ("Write a concise summary", lambda p, i: "The drafts agree on 41."),
        default=lambda p, i: long_draft(i),
    )
    ctx = context(engine, QUESTION)
    result = await PDR(PDRParams(schedule=[4, 1], summary_input_tokens=200)).run(ctx)
    summary_prompt = user_text(engine.calls[1].prompt)
    for index in range(4):
        assert f"So the answer is {40 + index}." in summary_prompt
    read = details_json(result)["rounds"][0]["summary_input"]
    assert read["tokens"] <= 200
    assert len(read["draft_cuts"]) == 4


async def test_drafts_are_sampled_and_the_distill_call_is_greedy_for_a_greedy_request() -> None:
    engine = engine_for_summary("Short summary.")
    ctx = context(engine, QUESTION)
    ctx.sampling = ctx.sampling.__class__(max_tokens=64, temperature=0)
    await PDR(PDRParams(schedule=[2, 1])).run(ctx)
    temperatures = [(call.n, call.sampling.temperature) for call in engine.calls]
    assert temperatures == [(2, 0.7), (1, 0.0), (1, 0.7)]


async def test_the_summary_is_bounded_by_its_call_and_traced_on_the_next_round() -> None:
    engine = engine_for_summary(LONG_SUMMARY)
    ctx = context(engine, QUESTION)
    await PDR(PDRParams(schedule=[2, 1], workspace_tokens=40)).run(ctx)
    distill = next(r for r in ctx.budget.records if r.role == "distill")
    assert distill.completion_tokens <= 40  # the summary call's own max_tokens
    assert ctx.budget.records[-1].meta["workspace"]["tokens"] <= 40


async def test_shared_top_k_by_agreement_shares_one_batched_call() -> None:
    def drafts(prompt: str, index: int) -> str:  # three say 42, one says 41
        return f"Attempt {index}: 6 times 7. The answer is {41 if index == 1 else 42}."

    engine = ScriptedEngine(script=drafts)
    ctx = context(engine, QUESTION)
    result = await PDR(PDRParams(schedule=[4, 2, 1], distill="shared_top_k", k=2)).run(ctx)
    assert [c.n for c in engine.calls] == [4, 2, 1]  # no distill call
    round2 = user_text(engine.calls[1].prompt)
    assert "Attempt 0: 6 times 7. The answer is 42." in round2  # the majority first
    assert "Attempt 2: 6 times 7. The answer is 42." in round2
    assert (
        "The answer is 41"
        not in round2.split("Notes from earlier attempts")[1].split("Using what")[0]
    )
    assert details_json(result)["rounds"][0]["selections"] == [[0, 2], [0, 2]]


async def test_per_sample_top_k_gives_each_call_its_own_drafts_in_one_step() -> None:
    engine = ScriptedEngine(script=drafts_by_index)
    ctx = context(engine, QUESTION)
    await PDR(PDRParams(schedule=[4, 3, 1], distill="per_sample_top_k", k=2)).run(ctx)
    round2 = [r for r in ctx.budget.records if r.round == 2]
    assert len(round2) == 3
    assert len({r.step for r in round2}) == 1  # three calls side by side
    assert len({r.prompt for r in round2}) == 3
    assert [c.n for c in engine.calls] == [4, 1, 1, 1, 1]


async def test_random_k_is_seeded() -> None:
    async def selections(seed: int) -> list[list[int]]:
        ctx = context(ScriptedEngine(script=drafts_by_index), QUESTION, seed=seed)
        result = await PDR(PDRParams(schedule=[6, 3, 1], distill="random_k", k=2)).run(ctx)
        chosen: list[list[int]] = details_json(result)["rounds"][0]["selections"]
        return chosen

    assert await selections(7) == await selections(7)
    assert await selections(7) != await selections(8)


async def test_verify_scorer_makes_one_verification_per_draft() -> None:
    engine = ScriptedEngine(
        script=by_rules(
            ("Is its final answer correct?", lambda p, i: "Yes" if "answer is 42" in p else "No"),
            default=drafts_by_index,
        )
    )
    ctx = context(engine, QUESTION)
    await PDR(PDRParams(schedule=[4, 1], distill="shared_top_k", k=1, scorer="verify")).run(ctx)
    verifies = [r for r in ctx.budget.records if r.role == "verify"]
    assert len(verifies) == 4
    assert len({r.step for r in verifies}) == 1
    assert [r.meta["score"] for r in verifies] == [1.0, 0.0, 1.0, 0.0]
    assert "Attempt 0:" in user_text(engine.calls[-1].prompt)


@pytest.mark.parametrize("schedule", [[4, 2], [0, 1], []])
def test_schedule_must_end_in_one_and_be_positive(schedule: list[int]) -> None:
    with pytest.raises(ValidationError):
        PDRParams(schedule=schedule)


def test_caps_name_themselves() -> None:
    with pytest.raises(ValueError, match="max_drafts_per_round"):
        PDR(PDRParams(schedule=[32, 1])).check_limits(Limits(), 64)
    with pytest.raises(ValueError, match="max_rounds"):
        PDR(PDRParams(schedule=[1] * 9)).check_limits(Limits(), 64)
    with pytest.raises(ValueError, match="max_all_tokens"):
        PDR(PDRParams(schedule=[8, 4, 1])).check_limits(Limits(max_all_tokens=5000), 512)
    assert PDR(PDRParams(schedule=[8, 4, 1])).planned_samples() == 13 + 2


@pytest.mark.parametrize(("own", "expected"), [(None, 300), (64, 64)])
async def test_the_summary_call_has_its_own_output_bound(own: int | None, expected: int) -> None:
    engine = ScriptedEngine()
    params = PDRParams(schedule=[2, 1], workspace_tokens=300, summary_max_tokens=own)
    await PDR(params).run(context(engine))
    summary = engine.calls[1]
    assert summary.sampling.max_tokens == expected
    assert [c.sampling.max_tokens for c in (engine.calls[0], engine.calls[2])] != [expected] * 2


def test_the_summary_bound_is_held_to_the_per_call_cap() -> None:
    limits = Limits(max_tokens_per_call=4096)
    with pytest.raises(ValueError, match=r"ponder\.summary_max_tokens 8192") as error:
        PDR(PDRParams(schedule=[2, 1], summary_max_tokens=8192)).check_limits(limits, 256)
    assert error.value.param == "ponder.summary_max_tokens"  # type: ignore[attr-defined]


async def test_a_large_workspace_does_not_pass_the_cap_to_the_summary_call() -> None:
    engine = ScriptedEngine()
    ctx = context(engine)
    ctx.limits = Limits(max_tokens_per_call=500)
    await PDR(PDRParams(schedule=[2, 1], workspace_tokens=8192)).run(ctx)
    assert engine.calls[1].sampling.max_tokens == 500


async def test_a_draft_quorum_distills_the_first_drafts_and_cancels_the_rest() -> None:
    # Shorter drafts finish first in the scripted engine: drafts 0 and 1 of 4.
    engine = ScriptedEngine(
        script=lambda prompt, index: " ".join(["step"] * (5 + 10 * index)) + " The answer is 7."
    )
    ctx = context(engine)
    params = PDRParams(schedule=[4, 1], draft_quorum=0.5, trace=True)
    result = await PDR(params).run(ctx)
    assert (engine.calls[0].kind, engine.calls[0].n) == ("generate_until", 4)
    assert details_json(result)["rounds"][0]["cancelled"] == 2
    drafts = [r for r in ctx.budget.records if r.role == "draft" and r.round == 1]
    assert [r.meta.get("cancelled", False) for r in drafts] == [False, False, True, True]
    summary = next(r for r in ctx.budget.records if r.role == "distill")
    assert summary.prompt.count("The answer is 7.") == 2  # only the finished drafts


class EngineFailed(EngineError):
    pass


class FailingCalls(ScriptedEngine):
    """Fails the calls whose number (from 0) is in ``failing``."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__(script=drafts_by_index)
        self.failing = failing
        self.seen = 0

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        number, self.seen = self.seen, self.seen + 1
        if number in self.failing:
            raise EngineFailed("replica went away")
        return await super().generate(prompt, n=n, sampling=sampling)


async def test_a_failed_draft_is_left_out_and_traced_and_the_round_goes_on() -> None:
    engine = FailingCalls(failing={2})  # the second of round 2's three draft calls
    ctx = context(engine, QUESTION)
    result = await PDR(PDRParams(schedule=[4, 3, 1], distill="per_sample_top_k", k=2)).run(ctx)
    round2 = [r for r in ctx.budget.records if r.round == 2]
    assert [r.meta.get("failed") for r in round2].count("replica went away") == 1
    failed = next(r for r in round2 if r.meta.get("failed"))
    assert (failed.index, failed.tokens, failed.output) == (1, 0, "")
    assert result.answers[0].text  # the last round answered from the drafts that succeeded
    assert ctx.budget.usage().drafts == 4 + 2 + 1  # in the trace, not among the drafts made


async def test_when_every_draft_of_a_round_fails_the_run_fails_with_the_engine_error() -> None:
    engine = FailingCalls(failing={1, 2, 3})
    with pytest.raises(EngineFailed, match="replica went away"):
        await PDR(PDRParams(schedule=[4, 3, 1], distill="per_sample_top_k", k=2)).run(
            context(engine, QUESTION)
        )
